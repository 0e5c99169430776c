"""The fast decoders of etcd's Range and Watch replies read exactly what the
generated classes read (the generated classes encode, ours decode)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gazette_trio.etcd import EventType, KeyValue, ResponseHeader
from gazette_trio.etcd.wire import RangeReply, WatchReply
from gazette_trio.protocol import etcdserverpb as rpc
from gazette_trio.protocol import mvccpb

int64 = st.integers(-(2**63), 2**63 - 1)
revision = st.integers(0, 2**40)

keyvalues = st.builds(
    mvccpb.KeyValue,
    key=st.binary(max_size=40),
    value=st.binary(max_size=200),
    create_revision=revision,
    mod_revision=revision,
    version=int64,
    lease=int64,
)


def ours(m: mvccpb.KeyValue) -> KeyValue:
    return KeyValue(m.key, m.value, m.create_revision, m.mod_revision, m.version, m.lease)


@settings(max_examples=200, deadline=None)
@given(st.lists(keyvalues, max_size=20), revision, st.booleans(), int64)
def test_range_reply_decodes_as_the_generated_class(
    kvs: list[mvccpb.KeyValue], rev: int, more: bool, count: int
) -> None:
    message = rpc.RangeResponse(
        header=rpc.ResponseHeader(cluster_id=2**64 - 1, member_id=7, revision=rev, raft_term=3),
        kvs=kvs,
        more=more,
        count=count,
    )
    reply = RangeReply.parse(bytes(message))
    assert reply.revision == rev
    # All four header fields: Gazette's API headers carry them, uint64 ids
    # beyond int64 included.
    assert reply.header == ResponseHeader(2**64 - 1, 7, rev, 3)
    assert reply.kvs == [ours(kv) for kv in kvs]
    assert (reply.more, reply.count) == (more, count)


events = st.builds(
    mvccpb.Event,
    type=st.sampled_from([mvccpb.EventEventType.PUT, mvccpb.EventEventType.DELETE]),
    kv=keyvalues,
    prev_kv=st.one_of(st.none(), keyvalues),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(events, max_size=10),
    revision,
    int64,
    st.booleans(),
    st.booleans(),
    revision,
    st.text(max_size=30),
)
def test_watch_reply_decodes_as_the_generated_class(
    evs: list[mvccpb.Event],
    rev: int,
    watch_id: int,
    created: bool,
    canceled: bool,
    compact: int,
    reason: str,
) -> None:
    message = rpc.WatchResponse(
        header=rpc.ResponseHeader(cluster_id=11, member_id=2**63, revision=rev, raft_term=9),
        watch_id=watch_id,
        created=created,
        canceled=canceled,
        compact_revision=compact,
        cancel_reason=reason,
        events=evs,
    )
    reply = WatchReply.parse(bytes(message))
    assert (reply.revision, reply.watch_id, reply.created, reply.canceled) == (
        rev,
        watch_id,
        created,
        canceled,
    )
    assert (reply.compact_revision, reply.cancel_reason) == (compact, reason)
    assert reply.header == ResponseHeader(11, 2**63, rev, 9)
    assert len(reply.events) == len(evs)
    for got, want in zip(reply.events, evs, strict=True):
        kind = EventType.DELETE if want.type == mvccpb.EventEventType.DELETE else EventType.PUT
        assert got.type == kind
        assert want.kv is not None and got.kv == ours(want.kv)
        assert got.prev_kv == (ours(want.prev_kv) if want.prev_kv is not None else None)


def test_unknown_fields_are_skipped() -> None:
    """Fields a newer etcd adds (any wire type) do not disturb decoding."""
    kv = mvccpb.KeyValue(key=b"k", value=b"v", create_revision=2, mod_revision=3, version=1)
    body = bytes(rpc.RangeResponse(kvs=[kv], count=1))
    extra = (
        bytes([(99 << 3 | 0) & 0x7F | 0x80, 99 >> 4, 0x05])  # varint field 99
        + bytes([(98 << 3 | 1) & 0x7F | 0x80, 98 >> 4])
        + b"\x00" * 8  # fixed64 field 98
        + bytes([(97 << 3 | 5) & 0x7F | 0x80, 97 >> 4])
        + b"\x00" * 4  # fixed32 field 97
        + bytes([(96 << 3 | 2) & 0x7F | 0x80, 96 >> 4, 0x02])
        + b"zz"  # bytes field 96
    )
    reply = RangeReply.parse(extra + body)
    assert reply.kvs == [ours(kv)] and reply.count == 1
