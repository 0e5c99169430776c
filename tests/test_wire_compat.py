"""Our generated classes speak the wire format of Gazette's own `.proto` files.

The reference is upstream, not `proto/`: `tests/upstream.py` compiles
Gazette's `broker/protocol/protocol.proto`, `consumer/protocol/protocol.proto`
and `consumer/recoverylog/recorded_op.proto` at the pinned version
(v0.103.0) with the official `protobuf` runtime. For every message type of
those files (nested ones included) an instance with every field set (nested
messages populated, repeated fields and maps with two entries, enums
non-zero) is encoded by the official runtime, decoded by our betterproto2
class and compared field by field, re-encoded by ours and decoded by the
official runtime again, which must give back the original. Neither side may
see a field it does not know. Two sets of values are used: small distinct
ones, and extremes (negative and maximal integers, non-ASCII text).

Every RPC of upstream's services must exist in our grpclib stubs with the
same path, message types and streaming shape, and `proto/` must declare
what upstream's files declare (fields, enum values, reserved ranges, RPCs),
its only extras being upstream main's additions since v0.103.0. Golden bytes pin a few
messages whose encoding Gazette's peers rely on. The etcd subset under
`proto/etcd` has no Gazette upstream; its codegen is fuzzed against
`proto/` itself.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator
from typing import Any

import grpclib.const
import pytest
from google.protobuf import unknown_fields
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor

import gazette_trio.protocol.consumer
import gazette_trio.protocol.etcdserverpb
import gazette_trio.protocol.mvccpb
import gazette_trio.protocol.protocol
import gazette_trio.protocol.recoverylog  # noqa: F401 (registers the classes)
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.message_pool import default_message_pool
from tests.official import official
from tests.upstream import find_module_root, upstream_protos

# --------------------------------------------------------------------------
# Descriptors


def _is_repeated(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _walk(files: list[Any]) -> list[Descriptor]:
    found: list[Descriptor] = []

    def walk(desc: Descriptor) -> None:
        if desc.GetOptions().map_entry:
            return
        found.append(desc)
        for nested in desc.nested_types:
            walk(nested)

    for file in files:
        for desc in file.message_types_by_name.values():
            walk(desc)
    return found


def upstream_message_names() -> list[str]:
    """Full names of every message of upstream's three files (empty if the
    module source is absent: the tests below then skip, or fail under CI)."""
    if find_module_root() is None:
        return ["(upstream module source absent)"]
    u = upstream_protos()
    return [d.full_name for d in _walk([u.protocol, u.consumer, u.recoverylog])]


def ours_for(full_name: str) -> type:
    cls = default_message_pool.url_to_type.get(f"type.googleapis.com/{full_name}")
    assert cls is not None, f"upstream message {full_name} has no class of ours"
    return cls


# --------------------------------------------------------------------------
# Populating an official message with every field set

SMALL, EXTREME = "small", "extreme"


def _scalar(field: FieldDescriptor, index: int, flavor: str) -> Any:
    """A value for `field` that differs by field and by element index, so
    that a swapped field number or element order shows."""
    t, n = field.type, field.number * 10 + index + 1
    signed64 = (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
    )
    signed32 = (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
    )
    if t in signed64:
        return n if flavor == SMALL else [-(2**63), 2**63 - 1, -n][index % 3]
    if t in signed32:
        return n if flavor == SMALL else [-(2**31), 2**31 - 1, -n][index % 3]
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return n if flavor == SMALL else 2**64 - 1 - index
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return n if flavor == SMALL else 2**32 - 1 - index
    if t == FieldDescriptor.TYPE_BOOL:
        return True
    if t == FieldDescriptor.TYPE_STRING:
        return (
            f"{field.name}-{index}" if flavor == SMALL else f"{field.name}/Grüße/日本語/🚀/{index}"
        )
    if t == FieldDescriptor.TYPE_BYTES:
        return f"{field.name}{index}".encode() + (b"" if flavor == SMALL else b"\x00\xff\x80")
    if t == FieldDescriptor.TYPE_ENUM:
        nonzero = sorted(v.number for v in field.enum_type.values if v.number != 0)
        assert nonzero, f"{field.full_name}: enum {field.enum_type.full_name} has no non-zero value"
        return (
            nonzero[index % len(nonzero)] if flavor == SMALL else nonzero[-1 - index % len(nonzero)]
        )
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 1.5 + index
    raise AssertionError(f"unhandled field type {t} of {field.full_name}")


def populate(msg: Any, flavor: str, depth: int = 0) -> Any:
    """Set every field of the official message `msg`, recursively."""
    assert depth < 10, f"{msg.DESCRIPTOR.full_name}: recursive message types need a depth rule"
    desc = msg.DESCRIPTOR
    if desc.full_name == "google.protobuf.Duration":
        # betterproto2 maps Duration to datetime.timedelta, which holds whole
        # microseconds (see docs/compatibility.md).
        msg.seconds = 3600 * 24 * 3 + depth if flavor == EXTREME else 1 + depth
        msg.nanos = 999_999_000 if flavor == EXTREME else 250_000_000
        return msg
    assert not desc.oneofs, f"{desc.full_name} has oneofs: populate one member per variant"
    for field in desc.fields:
        if _is_map(field):
            key_f = field.message_type.fields_by_name["key"]
            val_f = field.message_type.fields_by_name["value"]
            target = getattr(msg, field.name)
            for i in range(2):
                key = _scalar(key_f, i, flavor)
                if val_f.type == FieldDescriptor.TYPE_MESSAGE:
                    populate(target[key], flavor, depth + 1)
                else:
                    target[key] = _scalar(val_f, i, flavor)
        elif _is_repeated(field):
            target = getattr(msg, field.name)
            for i in range(2):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    populate(target.add(), flavor, depth + 1)
                else:
                    target.append(_scalar(field, i, flavor))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            populate(getattr(msg, field.name), flavor, depth + 1)
            getattr(msg, field.name).SetInParent()
        else:
            setattr(msg, field.name, _scalar(field, 0, flavor))
    return msg


# --------------------------------------------------------------------------
# Comparing


def compare(official_msg: Any, ours: Any, path: str) -> None:
    """Assert `ours` carries exactly the values of `official_msg`, by field number."""
    desc = official_msg.DESCRIPTOR
    if desc.full_name == "google.protobuf.Duration":
        assert isinstance(ours, datetime.timedelta), path
        assert ours == official_msg.ToTimedelta(), path
        return
    assert not ours._unknown_fields, (
        f"{path}: our class kept unknown fields {ours._unknown_fields!r}"
    )
    names = type(ours)._betterproto.field_name_by_number
    for field in desc.fields:
        where = f"{path}.{field.name}"
        assert field.number in names, f"{where} (field {field.number}) is missing from our class"
        mine = getattr(ours, names[field.number])
        theirs = getattr(official_msg, field.name)
        if _is_map(field):
            assert set(mine) == set(theirs), where
            val_f = field.message_type.fields_by_name["value"]
            for key in theirs:
                if val_f.type == FieldDescriptor.TYPE_MESSAGE:
                    compare(theirs[key], mine[key], f"{where}[{key!r}]")
                else:
                    assert mine[key] == theirs[key], f"{where}[{key!r}]"
        elif _is_repeated(field):
            assert len(mine) == len(theirs), where
            for i, (m, t) in enumerate(zip(mine, theirs, strict=True)):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    compare(t, m, f"{where}[{i}]")
                elif field.type == FieldDescriptor.TYPE_ENUM:
                    assert int(m) == t, f"{where}[{i}]"
                else:
                    assert m == t, f"{where}[{i}]"
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if official_msg.HasField(field.name):
                assert mine is not None, f"{where} is set upstream, None in ours"
                compare(theirs, mine, where)
            else:
                assert mine is None, f"{where} is unset upstream, {mine!r} in ours"
        elif field.type == FieldDescriptor.TYPE_ENUM:
            assert int(mine) == theirs, where
        else:
            assert mine == theirs, where


def official_unknown_fields(msg: Any, path: str) -> Iterator[str]:
    """Paths of every (nested) official message that parsed unknown fields."""
    if len(unknown_fields.UnknownFieldSet(msg)):
        yield path
    for field, value in msg.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if _is_map(field):
            if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                for key, item in value.items():
                    yield from official_unknown_fields(item, f"{path}.{field.name}[{key!r}]")
        elif _is_repeated(field):
            for i, item in enumerate(value):
                yield from official_unknown_fields(item, f"{path}.{field.name}[{i}]")
        else:
            yield from official_unknown_fields(value, f"{path}.{field.name}")


# --------------------------------------------------------------------------
# Upstream's messages


def test_upstream_files_hold_every_message_gazette_trio_relies_on() -> None:
    names = set(upstream_message_names())
    if "(upstream module source absent)" in names:
        upstream_protos()  # skips, or fails under CI, naming the download command
    for required in [
        "protocol.JournalSpec",
        "protocol.JournalSpec.Fragment",
        "protocol.ReadRequest",
        "protocol.AppendRequest",
        "protocol.ListRequest",
        "protocol.ListResponse.Journal",
        "protocol.ApplyRequest.Change",
        "protocol.Header.Etcd",
        "protocol.LabelSelector",
        "protocol.FragmentStoreHealthRequest",
        "consumer.ShardSpec.Source",
        "consumer.ConsumerSpec",
        "consumer.ReplicaStatus",
        "consumer.Checkpoint.Source.ProducerEntry",
        "consumer.ApplyRequest.Change",
        "consumer.GetHintsResponse.ResponseHints",
        "recoverylog.RecordedOp",
        "recoverylog.FSMHints",
    ]:
        assert required in names, required
    assert len(names) >= 60


@pytest.mark.parametrize("flavor", [SMALL, EXTREME])
@pytest.mark.parametrize("full_name", upstream_message_names())
def test_every_upstream_message_round_trips_through_our_class(full_name: str, flavor: str) -> None:
    u = upstream_protos()
    official_cls = u.message(full_name)
    ours_cls = ours_for(full_name)

    original = populate(official_cls(), flavor)
    wire = original.SerializeToString()

    ours = ours_cls.parse(wire)
    compare(original, ours, full_name)

    again = official_cls.FromString(bytes(ours))
    assert list(official_unknown_fields(again, full_name)) == []
    assert again == original, f"{full_name} did not survive our re-encoding"
    # Ours from ours: the same bytes decode to an equal object.
    assert ours_cls.parse(bytes(ours)) == ours


@pytest.mark.parametrize("full_name", upstream_message_names())
def test_every_upstream_message_round_trips_empty(full_name: str) -> None:
    official_cls = upstream_protos().message(full_name)
    ours = ours_for(full_name).parse(b"")
    assert bytes(ours) == b""
    assert official_cls.FromString(bytes(ours)) == official_cls()


def _services() -> list[ServiceDescriptor]:
    u = upstream_protos()
    return [*u.protocol.services_by_name.values(), *u.consumer.services_by_name.values()]


_CARDINALITY = {
    (False, False): grpclib.const.Cardinality.UNARY_UNARY,
    (False, True): grpclib.const.Cardinality.UNARY_STREAM,
    (True, False): grpclib.const.Cardinality.STREAM_UNARY,
    (True, True): grpclib.const.Cardinality.STREAM_STREAM,
}


def test_every_upstream_rpc_has_our_stub_with_the_same_shape() -> None:
    ours: dict[str, grpclib.const.Handler] = {
        **pb.JournalBase().__mapping__(),
        **pc.ShardBase().__mapping__(),
    }
    names_of = {cls: url.rsplit("/", 1)[1] for url, cls in default_message_pool.url_to_type.items()}
    methods = 0
    for service in _services():
        stub = {"protocol.Journal": pb.JournalStub, "consumer.Shard": pc.ShardStub}[
            service.full_name
        ]
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            assert path in ours, f"{path} is not served by our generated base class"
            handler = ours[path]
            shape = _CARDINALITY[(method.client_streaming, method.server_streaming)]
            assert handler.cardinality == shape, (
                f"{path}: ours {handler.cardinality}, upstream {shape}"
            )
            assert names_of[handler.request_type] == method.input_type.full_name, path
            assert names_of[handler.reply_type] == method.output_type.full_name, path
            snake = "".join("_" + c.lower() if c.isupper() else c for c in method.name).lstrip("_")
            assert callable(getattr(stub, snake, None)), f"{path}: no {stub.__name__}.{snake}"
            methods += 1
    assert methods >= 12


def test_list_is_server_streaming_upstream() -> None:
    journal = upstream_protos().protocol.services_by_name["Journal"]
    assert journal.methods_by_name["List"].server_streaming


# --------------------------------------------------------------------------
# Golden bytes, derived by hand from the protobuf encoding rules (tag =
# field_number << 3 | wire_type; varints little-endian base 128; int64 -1 is
# ten bytes) and cross-checked with upstream's classes.


def test_golden_shard_spec() -> None:
    spec = pc.ShardSpec(
        id="s-1",
        sources=[pc.ShardSpecSource(journal="a/b", min_offset=-1)],
        hint_backups=2,
        max_txn_duration=datetime.timedelta(seconds=1),
        hot_standbys=1,
        labels=pb.LabelSet(labels=[pb.Label(name="k", value="v")]),
    )
    golden = (
        b"\x0a\x03s-1"  # 1 id
        + b"\x12\x10"  # 2 sources, 16 bytes:
        + b"\x0a\x03a/b"  #   1 journal
        + b"\x18"
        + b"\xff" * 9
        + b"\x01"  #   3 min_offset = -1 (ten-byte varint)
        + b"\x28\x02"  # 5 hint_backups = 2
        + b"\x32\x02\x08\x01"  # 6 max_txn_duration {seconds: 1}
        + b"\x48\x01"  # 9 hot_standbys = 1
        + b"\x52\x08\x0a\x06\x0a\x01k\x12\x01v"  # 10 labels {labels {name k value v}}
    )
    assert bytes(spec) == golden
    assert (
        upstream_protos().message("consumer.ShardSpec").FromString(golden).sources[0].min_offset
        == -1
    )
    assert pc.ShardSpec.parse(golden) == spec


def test_golden_checkpoint() -> None:
    checkpoint = pc.Checkpoint(
        sources={
            "j": pc.CheckpointSource(
                read_through=300,
                producers=[
                    pc.CheckpointSourceProducerEntry(
                        id=b"\x01\x02\x03\x04\x05\x06",
                        state=pc.CheckpointProducerState(last_ack=0x0102030405060708, begin=-1),
                    )
                ],
            )
        },
        ack_intents={"out": b"ACK"},
    )
    producer = (
        b"\x0a\x06\x01\x02\x03\x04\x05\x06"  # 1 id
        + b"\x12\x14"  # 2 state, 20 bytes:
        + b"\x09\x08\x07\x06\x05\x04\x03\x02\x01"  #   1 last_ack, fixed64 little-endian
        + b"\x10"
        + b"\xff" * 9
        + b"\x01"  #   2 begin = -1
    )
    source = b"\x08\xac\x02" + b"\x12" + bytes([len(producer)]) + producer  # read_through 300
    entry = b"\x0a\x01j" + b"\x12" + bytes([len(source)]) + source
    intent = b"\x0a\x03out\x12\x03ACK"
    golden = b"\x0a" + bytes([len(entry)]) + entry + b"\x12" + bytes([len(intent)]) + intent
    assert bytes(checkpoint) == golden
    assert pc.Checkpoint.parse(golden) == checkpoint
    theirs = upstream_protos().message("consumer.Checkpoint").FromString(golden)
    assert theirs.sources["j"].producers[0].state.last_ack == 0x0102030405060708


def test_golden_append_request() -> None:
    request = pb.AppendRequest(
        journal="x/y",
        check_registers=pb.LabelSelector(
            include=pb.LabelSet(labels=[pb.Label(name="author", value="1")])
        ),
        union_registers=pb.LabelSet(labels=[pb.Label(name="author", value="2")]),
    )
    label1 = b"\x0a\x06author\x12\x011"
    label2 = b"\x0a\x06author\x12\x012"
    golden = (
        b"\x12\x03x/y"  # 2 journal
        + b"\x32"
        + bytes([len(label1) + 4])
        + b"\x0a"
        + bytes([len(label1) + 2])
        + b"\x0a"
        + bytes([len(label1)])
        + label1  # 6 check_registers.include.labels[0]
        + b"\x3a"
        + bytes([len(label2) + 2])
        + b"\x0a"
        + bytes([len(label2)])
        + label2  # 7
    )
    assert bytes(request) == golden
    assert pb.AppendRequest.parse(golden) == request
    theirs = upstream_protos().message("protocol.AppendRequest").FromString(golden)
    assert theirs.union_registers.labels[0].value == "2"
    # A content chunk is only field 4.
    assert bytes(pb.AppendRequest(content=b"hello")) == b"\x22\x05hello"


def test_golden_prefix_label_selector() -> None:
    # `name:prefix=a/` in a selector is Label{name, value, prefix: true}; field 3.
    selector = pb.LabelSelector(
        include=pb.LabelSet(labels=[pb.Label(name="name", value="a/", prefix=True)])
    )
    label = b"\x0a\x04name\x12\x02a/\x18\x01"
    golden = b"\x0a" + bytes([len(label) + 2]) + b"\x0a" + bytes([len(label)]) + label
    assert bytes(selector) == golden
    theirs = upstream_protos().message("protocol.LabelSelector").FromString(golden)
    assert theirs.include.labels[0].prefix is True


# --------------------------------------------------------------------------
# The etcd subset: no Gazette upstream, so fuzz our codegen against proto/.


def _etcd_descriptors() -> list[Descriptor]:
    mods = official()
    return _walk([mods.rpc.DESCRIPTOR, mods.kv.DESCRIPTOR])


def _random_populate(msg: Any, rng: random.Random, depth: int = 0) -> Any:
    desc = msg.DESCRIPTOR
    chosen = {o.name: rng.choice(o.fields).name for o in desc.oneofs}
    for field in desc.fields:
        if field.containing_oneof is not None and chosen[field.containing_oneof.name] != field.name:
            continue
        nested = field.type == FieldDescriptor.TYPE_MESSAGE
        if nested and depth >= 3 and not _is_map(field):
            continue
        if _is_repeated(field) and not _is_map(field):
            target = getattr(msg, field.name)
            for i in range(rng.randint(1, 3)):
                if nested:
                    _random_populate(target.add(), rng, depth + 1)
                else:
                    target.append(_scalar(field, i, rng.choice([SMALL, EXTREME])))
        elif nested:
            _random_populate(getattr(msg, field.name), rng, depth + 1)
            getattr(msg, field.name).SetInParent()
        else:
            setattr(
                msg, field.name, _scalar(field, rng.randint(0, 2), rng.choice([SMALL, EXTREME]))
            )
    return msg


@pytest.mark.parametrize("desc", _etcd_descriptors(), ids=lambda d: d.full_name)
def test_etcd_messages_round_trip_through_our_classes(desc: Descriptor) -> None:
    from google.protobuf import message_factory

    cls = ours_for(desc.full_name)
    official_cls = message_factory.GetMessageClass(desc)
    for seed in range(4):
        original = _random_populate(official_cls(), random.Random(f"{desc.full_name}/{seed}"))
        ours = cls.parse(original.SerializeToString())
        again = official_cls.FromString(bytes(ours))
        assert again == original, f"{desc.full_name} seed {seed} did not round-trip"


# --------------------------------------------------------------------------
# proto/ against upstream's files, descriptor by descriptor.

# What upstream main added after v0.103.0 and proto/ already follows.
MAIN_ONLY_FIELDS = {
    "protocol.ReadRequest.min_etcd_revision",
    "protocol.AppendRequest.min_etcd_revision",
    "protocol.FragmentStoreHealthRequest.check_delete",
    "protocol.FragmentStoreHealthRequest.check_delete_prefix",
}
MAIN_ONLY_ENUM_VALUES = {"protocol.AppendRequest.Suspend.SUSPEND_KEEP"}


def _field_shape(field: FieldDescriptor) -> tuple[object, ...]:
    type_name = ""
    if field.message_type is not None:
        type_name = field.message_type.full_name
    elif field.enum_type is not None:
        type_name = field.enum_type.full_name
    return (field.name, field.number, field.type, _is_repeated(field), type_name)


def _reserved(desc: Any) -> tuple[list[tuple[int, int]], list[str]]:
    from google.protobuf import descriptor_pb2

    proto = (
        descriptor_pb2.DescriptorProto()
        if isinstance(desc, Descriptor)
        else descriptor_pb2.EnumDescriptorProto()
    )
    desc.CopyToProto(proto)
    ranges = sorted((r.start, r.end) for r in proto.reserved_range)
    return ranges, sorted(proto.reserved_name)


def _enums(files: list[Any]) -> list[Any]:
    found = []
    for desc in _walk(files):
        found.extend(desc.enum_types)
    for file in files:
        found.extend(file.enum_types_by_name.values())
    return found


def test_proto_dir_declares_what_upstream_declares() -> None:
    """proto/ has every message, field, enum value, reserved range and RPC of
    upstream's files, declared the same way; what it has beyond them is
    upstream main's, listed above."""
    from google.protobuf import descriptor_pool

    u = upstream_protos()
    upstream_files = [u.protocol, u.consumer, u.recoverylog]
    mods = official()
    ours_pool = descriptor_pool.Default()
    assert mods.protocol.DESCRIPTOR.pool is ours_pool

    for theirs in _walk(upstream_files):
        mine = ours_pool.FindMessageTypeByName(theirs.full_name)
        their_fields = {f.number: _field_shape(f) for f in theirs.fields}
        my_fields = {f.number: _field_shape(f) for f in mine.fields}
        for number, shape in their_fields.items():
            assert my_fields.get(number) == shape, f"{theirs.full_name} field {number}"
        extra = {f"{theirs.full_name}.{my_fields[n][0]}" for n in my_fields.keys() - their_fields}
        assert extra <= MAIN_ONLY_FIELDS, f"{theirs.full_name}: fields not upstream: {extra}"
        assert _reserved(mine) == _reserved(theirs), f"{theirs.full_name} reserved"
        assert [o.name for o in mine.oneofs] == [o.name for o in theirs.oneofs]

    for theirs in _enums(upstream_files):
        mine = ours_pool.FindEnumTypeByName(theirs.full_name)
        their_values = {v.name: v.number for v in theirs.values}
        my_values = {v.name: v.number for v in mine.values}
        for name, number in their_values.items():
            assert my_values.get(name) == number, f"{theirs.full_name}.{name}"
        extra = {f"{theirs.full_name}.{n}" for n in my_values.keys() - their_values.keys()}
        assert extra <= MAIN_ONLY_ENUM_VALUES, f"{theirs.full_name}: values not upstream: {extra}"
        assert _reserved(mine) == _reserved(theirs), f"{theirs.full_name} reserved"

    for service in _services():
        mine = ours_pool.FindServiceByName(service.full_name)
        assert [m.name for m in mine.methods] == [m.name for m in service.methods]
        for theirs_m in service.methods:
            mine_m = mine.methods_by_name[theirs_m.name]
            assert (
                mine_m.input_type.full_name,
                mine_m.output_type.full_name,
                mine_m.client_streaming,
                mine_m.server_streaming,
            ) == (
                theirs_m.input_type.full_name,
                theirs_m.output_type.full_name,
                theirs_m.client_streaming,
                theirs_m.server_streaming,
            ), f"{service.full_name}.{theirs_m.name}"
