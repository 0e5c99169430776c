"""The Shard gRPC API, called as Gazette's tools call it.

The member runs in-process (journal server core, MemoryEtcd, the real
runtime) and serves `consumer.Shard` over HTTP/2 on loopback. Every call here
is made with grpclib's stock protobuf codec and classes compiled by the
official `protobuf` runtime from our `.proto` files, not with our client, so
what is checked is the wire behaviour a Go `gazctl` would see.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpclib.client
import grpclib.const
import pytest
import trio
import trio_asyncio
from grpclib.encoding.proto import ProtoCodec

from gazette_trio import aio
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.consumer.stores.memory import MemoryDatabase
from gazette_trio.protocol import consumer as pc
from gazette_trio.testing.cluster import Cluster
from tests.consumer.test_e2e import COUNTS, LINES, NDJSON, WordCount, open_word_count
from tests.official import official

OTHER = "lines/part-001"


def spec(shard_id: str, journal: str) -> pc.ShardSpec:
    return pc.ShardSpec(
        id=shard_id,
        sources=[pc.ShardSpecSource(journal=journal)],
        max_txn_duration=datetime.timedelta(seconds=1),
    )


class Peer:
    """A grpclib client with official protobuf messages."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.pb = official()

    async def call(self, method: str, request: Any, reply: type) -> Any:
        async def run() -> Any:
            channel = grpclib.client.Channel("127.0.0.1", self.port, codec=ProtoCodec())
            try:
                async with channel.request(
                    f"/consumer.Shard/{method}",
                    grpclib.const.Cardinality.UNARY_UNARY,
                    type(request),
                    reply,
                    timeout=10,
                ) as stream:
                    await stream.send_message(request, end=True)
                    return await stream.recv_message()
            finally:
                channel.close()

        return await trio_asyncio.aio_as_trio(run)()


@pytest.fixture
async def served(island: None, tmp_path: Path) -> AsyncIterator[tuple[Cluster, Peer]]:
    async with open_word_count(
        tmp_path,
        sources=[LINES, OTHER],
        shards=[spec("count-000", LINES), spec("count-001", OTHER)],
    ) as (cluster, _):
        member = await cluster.add_member("alpha")
        await cluster.wait_for_primary("count-000")
        await cluster.wait_for_primary("count-001")
        assert member.consumer is not None
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                aio.serve, [member.consumer.api.grpc_service()], "127.0.0.1", 0
            )
            yield cluster, Peer(port)
            nursery.cancel_scope.cancel()


async def test_list_selects_by_label_and_meta_label_and_reports_routes(
    served: tuple[Cluster, Peer],
) -> None:
    _, peer = served
    o = peer.pb
    everything = await peer.call("List", o.consumer.ListRequest(), o.consumer.ListResponse)
    assert everything.status == o.consumer.OK
    assert [s.spec.id for s in everything.shards] == ["count-000", "count-001"]
    shard = everything.shards[0]
    assert shard.mod_revision > 0
    assert [(m.zone, m.suffix) for m in shard.route.members] == [("local", "alpha")]
    assert shard.route.primary == 0
    assert shard.route.endpoints == ["http://alpha.in-process.invalid:8080"]
    assert shard.status[0].code == o.consumer.ReplicaStatus.PRIMARY

    selector = o.protocol.LabelSelector(
        include=o.protocol.LabelSet(labels=[o.protocol.Label(name="id", value="count-001")])
    )
    one = await peer.call(
        "List", o.consumer.ListRequest(selector=selector), o.consumer.ListResponse
    )
    assert [s.spec.id for s in one.shards] == ["count-001"]


async def test_stat_waits_for_a_transaction_past_the_requested_offset(
    served: tuple[Cluster, Peer],
) -> None:
    cluster, peer = served
    o = peer.pb
    await cluster.publish(LINES, [{"text": "one two"}, {"text": "three"}])
    head = cluster.core.write_head(LINES)
    reply = await peer.call(
        "Stat",
        o.consumer.StatRequest(shard="count-000", read_through={LINES: head}),
        o.consumer.StatResponse,
    )
    assert reply.status == o.consumer.OK
    assert reply.read_through[LINES] >= head
    assert reply.publish_at[COUNTS] > 0
    assert (reply.header.process_id.zone, reply.header.process_id.suffix) == ("local", "alpha")


async def test_stat_of_an_unknown_shard_is_shard_not_found(served: tuple[Cluster, Peer]) -> None:
    _, peer = served
    o = peer.pb
    reply = await peer.call(
        "Stat", o.consumer.StatRequest(shard="no-such-shard"), o.consumer.StatResponse
    )
    assert reply.status == o.consumer.SHARD_NOT_FOUND


async def test_apply_with_a_stale_revision_fails_the_etcd_transaction(
    served: tuple[Cluster, Peer],
) -> None:
    _, peer = served
    o = peer.pb
    listed = await peer.call("List", o.consumer.ListRequest(), o.consumer.ListResponse)
    current = listed.shards[0]
    current.spec.hot_standbys = 2
    stale = o.consumer.ApplyRequest(
        changes=[
            o.consumer.ApplyRequest.Change(
                expect_mod_revision=current.mod_revision - 1, upsert=current.spec
            )
        ]
    )
    reply = await peer.call("Apply", stale, o.consumer.ApplyResponse)
    assert reply.status == o.consumer.ETCD_TRANSACTION_FAILED

    fresh = o.consumer.ApplyRequest(
        changes=[
            o.consumer.ApplyRequest.Change(
                expect_mod_revision=current.mod_revision, upsert=current.spec
            )
        ]
    )
    reply = await peer.call("Apply", fresh, o.consumer.ApplyResponse)
    assert reply.status == o.consumer.OK
    relisted = await peer.call("List", o.consumer.ListRequest(), o.consumer.ListResponse)
    assert relisted.shards[0].spec.hot_standbys == 2


async def apply_shard(peer: Peer, shard: str, source: str) -> Any:
    """Apply (upsert) a shard reading `source`, through the peer's stubs."""
    o = peer.pb
    spec_ = o.consumer.ShardSpec(id=shard, sources=[o.consumer.ShardSpec.Source(journal=source)])
    spec_.max_txn_duration.seconds = 1
    return await peer.call(
        "Apply",
        o.consumer.ApplyRequest(changes=[o.consumer.ApplyRequest.Change(upsert=spec_)]),
        o.consumer.ApplyResponse,
    )


async def test_apply_of_an_invalid_spec_is_invalid_argument_naming_the_field(
    served: tuple[Cluster, Peer],
) -> None:
    _, peer = served
    o = peer.pb
    with pytest.raises(grpclib.exceptions.GRPCError) as info:
        await apply_shard(peer, "count-002", "bad journal")
    assert info.value.status == grpclib.const.Status.INVALID_ARGUMENT
    assert (
        "Changes[0].Upsert.Sources[0].Journal: not a valid token (bad journal)"
        in info.value.message
    )
    # The server goes on.
    reply = await peer.call("List", o.consumer.ListRequest(), o.consumer.ListResponse)
    assert reply.status == o.consumer.OK


async def test_apply_of_a_shard_reading_a_missing_journal_names_it(
    served: tuple[Cluster, Peer],
) -> None:
    _, peer = served
    with pytest.raises(grpclib.exceptions.GRPCError) as info:
        await apply_shard(peer, "count-003", "no/such/journal")
    assert "source journal no/such/journal does not exist" in info.value.message


async def test_unassign_dry_run_reports_without_moving(served: tuple[Cluster, Peer]) -> None:
    cluster, peer = served
    o = peer.pb
    reply = await peer.call(
        "Unassign",
        o.consumer.UnassignRequest(shards=["count-000"], dry_run=True),
        o.consumer.UnassignResponse,
    )
    assert reply.status == o.consumer.OK
    assert list(reply.shards) == ["count-000"]
    assert cluster.primary_of("count-000") is not None
    # Only failed assignments: none here.
    reply = await peer.call(
        "Unassign",
        o.consumer.UnassignRequest(shards=["count-000"], only_failed=True),
        o.consumer.UnassignResponse,
    )
    assert list(reply.shards) == []


async def test_get_hints_of_a_shard_without_a_recovery_log_is_empty(
    served: tuple[Cluster, Peer],
) -> None:
    _, peer = served
    o = peer.pb
    reply = await peer.call(
        "GetHints", o.consumer.GetHintsRequest(shard="count-000"), o.consumer.GetHintsResponse
    )
    assert reply.status == o.consumer.OK
    assert not reply.primary_hints.HasField("hints")
    reply = await peer.call(
        "GetHints", o.consumer.GetHintsRequest(shard="nope-000"), o.consumer.GetHintsResponse
    )
    assert reply.status == o.consumer.SHARD_NOT_FOUND


async def test_a_malformed_message_fails_its_shard_naming_journal_and_offset(
    served: tuple[Cluster, Peer],
) -> None:
    cluster, peer = served
    o = peer.pb
    good = b'{"text": "fine"}\n'
    await cluster.journals.append(_append_request(OTHER), [good + b'{"text": broken\n'])
    with trio.fail_after(20):
        while True:
            listed = await peer.call("List", o.consumer.ListRequest(), o.consumer.ListResponse)
            failed = listed.shards[1].status[0]
            if failed.code == o.consumer.ReplicaStatus.FAILED:
                break
            await trio.sleep(0.05)
    assert OTHER in failed.errors[0]
    assert f"offset {len(good)}" in failed.errors[0]
    # The other shard goes on.
    await cluster.publish(LINES, [{"text": "still counting"}])
    head = cluster.core.write_head(LINES)
    reply = await peer.call(
        "Stat",
        o.consumer.StatRequest(shard="count-000", read_through={LINES: head}),
        o.consumer.StatResponse,
    )
    assert reply.status == o.consumer.OK
    # A Stat of the failed shard does not hang: it reports the stop.
    reply = await peer.call(
        "Stat",
        o.consumer.StatRequest(shard="count-001", read_through={OTHER: 10_000}),
        o.consumer.StatResponse,
    )
    assert reply.status == o.consumer.SHARD_STOPPED


def _append_request(journal: str) -> Any:
    from gazette_trio.protocol import protocol as pb

    return pb.AppendRequest(journal=journal)


# ---------------------------------------------------------------------------
# Against a real etcd: headers Gazette's clients accept, primary hints, and
# etcd's transaction limit.


def header_problems(header: Any) -> list[str]:
    """Gazette's `Header.Validate`, applied to a header decoded by the
    official protobuf classes: what a Go client would refuse (empty: none)."""
    from urllib.parse import urlsplit

    from gazette_trio.protocol.validation import ValidationError, validate_token

    problems: list[str] = []

    def process_id(pid: Any, where: str) -> None:
        for field, low, high in (("zone", 1, 32), ("suffix", 4, 128)):
            try:
                validate_token(getattr(pid, field), "-_+/.", low, high)
            except ValidationError as exc:
                problems.append(f"{where}.{field}: {exc}")

    pid = header.process_id
    if pid.zone or pid.suffix:
        process_id(pid, "ProcessId")
    route = header.route
    members = [(m.zone, m.suffix) for m in route.members]
    for i, m in enumerate(route.members):
        process_id(m, f"Route.Members[{i}]")
    if members != sorted(set(members)):
        problems.append("Route.Members not in unique, sorted order")
    if not -1 <= route.primary < len(members):
        problems.append(f"Route: invalid Primary ({route.primary})")
    if route.endpoints and len(route.endpoints) != len(members):
        problems.append("Route: len(Endpoints) != 0, and != len(Members)")
    for i, endpoint in enumerate(route.endpoints):
        if endpoint:
            parts = urlsplit(endpoint)
            if not parts.scheme or not parts.netloc:
                problems.append(f"Route.Endpoints[{i}]: not absolute, or missing host")
    etcd = header.etcd
    if etcd.cluster_id == 0:
        problems.append("Etcd: invalid ClusterId (expected != 0)")
    if etcd.member_id == 0:
        problems.append("Etcd: invalid MemberId (expected != 0)")
    if etcd.revision <= 0:
        problems.append(f"Etcd: invalid Revision ({etcd.revision}; expected 0 < revision)")
    if etcd.raft_term == 0:
        problems.append("Etcd: invalid RaftTerm (expected != 0)")
    return problems


async def test_headers_of_the_in_process_etcd_name_one_stable_cluster(
    served: tuple[Cluster, Peer],
) -> None:
    """MemoryEtcd answers as a one-member cluster with the embedded journal
    server's cluster id, so one process presents one cluster."""
    _, peer = served
    o = peer.pb
    listed = await peer.call("List", o.consumer.ListRequest(), o.consumer.ListResponse)
    assert header_problems(listed.header) == []
    etcd = listed.header.etcd
    assert (etcd.cluster_id, etcd.member_id, etcd.raft_term) == (0x67617A6574746521, 1, 1)
    assert (listed.header.process_id.zone, listed.header.process_id.suffix) == ("local", "alpha")
    assert listed.header.route.primary == -1 and not listed.header.route.members


@pytest.fixture
async def on_etcd(
    island: None, tmp_path: Path, etcd_endpoint: str
) -> AsyncIterator[tuple[Cluster, Peer, Any]]:
    """One member over the session's real etcd (a root of its own), serving
    the Shard API on loopback; also etcd's own response header, read with
    the official classes."""
    import uuid

    from gazette_trio.broker.server import JournalServerCore, MemoryStorage
    from gazette_trio.etcd import GrpcEtcd

    db = MemoryDatabase()
    core = JournalServerCore(MemoryStorage())
    root = f"/test-{uuid.uuid4().hex[:12]}/consumers/wc"
    async with GrpcEtcd.open(etcd_endpoint) as etcd, trio.open_nursery() as nursery:
        cluster = Cluster(
            nursery,
            lambda: WordCount(db),  # type: ignore[arg-type,return-value]
            core,
            etcd,  # type: ignore[arg-type]
            tmp_path,
            root,
        )
        await cluster.apply_journals(
            [
                new_journal_spec(LINES, content_type=NDJSON),
                new_journal_spec(COUNTS, content_type=NDJSON),
                new_journal_spec(
                    "recovery/wc/count-009", content_type="application/x-gazette-recoverylog"
                ),
            ]
        )
        await cluster.apply_shards([spec("count-000", LINES)])
        member = await cluster.add_member("alpha")
        await cluster.wait_for_primary("count-000")
        assert member.consumer is not None
        port = await nursery.start(aio.serve, [member.consumer.api.grpc_service()], "127.0.0.1", 0)
        peer = Peer(port)
        host, etcd_port = etcd_endpoint.rsplit(":", 1)

        async def etcd_header() -> Any:
            async def run() -> Any:
                channel = grpclib.client.Channel(
                    host.split("//")[-1], int(etcd_port), codec=ProtoCodec()
                )
                try:
                    async with channel.request(
                        "/etcdserverpb.KV/Range",
                        grpclib.const.Cardinality.UNARY_UNARY,
                        peer.pb.rpc.RangeRequest,
                        peer.pb.rpc.RangeResponse,
                        timeout=10,
                    ) as stream:
                        await stream.send_message(peer.pb.rpc.RangeRequest(key=b"/"), end=True)
                        return (await stream.recv_message()).header
                finally:
                    channel.close()

            return await trio_asyncio.aio_as_trio(run)()

        yield cluster, peer, await etcd_header()
        nursery.cancel_scope.cancel()


async def test_every_shard_api_header_carries_etcds_own_cluster_member_and_term(
    on_etcd: tuple[Cluster, Peer, Any],
) -> None:
    """List, Stat, Apply and GetHints answer with headers Gazette's
    `Header.Validate` accepts, naming the cluster, member and raft term the
    etcd itself reports, at a revision at least as new as what they show."""
    _, peer, etcd = on_etcd
    o = peer.pb
    assert etcd.cluster_id and etcd.member_id and etcd.raft_term

    listed = await peer.call("List", o.consumer.ListRequest(), o.consumer.ListResponse)
    stat = await peer.call(
        "Stat", o.consumer.StatRequest(shard="count-000"), o.consumer.StatResponse
    )
    hints = await peer.call(
        "GetHints", o.consumer.GetHintsRequest(shard="count-000"), o.consumer.GetHintsResponse
    )
    shard = listed.shards[0]
    shard.spec.hot_standbys = 0
    applied = await peer.call(
        "Apply",
        o.consumer.ApplyRequest(
            changes=[
                o.consumer.ApplyRequest.Change(
                    expect_mod_revision=shard.mod_revision, upsert=shard.spec
                )
            ]
        ),
        o.consumer.ApplyResponse,
    )
    for name, reply in (("List", listed), ("Stat", stat), ("GetHints", hints), ("Apply", applied)):
        assert reply.status == o.consumer.OK, name
        assert header_problems(reply.header) == [], name
        got = reply.header.etcd
        assert (got.cluster_id, got.member_id, got.raft_term) == (
            etcd.cluster_id,
            etcd.member_id,
            etcd.raft_term,
        ), name
    assert listed.header.etcd.revision >= shard.mod_revision
    assert applied.header.etcd.revision > shard.mod_revision
    assert shard.create_revision > 0 and shard.create_revision <= shard.mod_revision
    # Stat is routed: the primary, which is this member.
    assert list(stat.header.route.endpoints) == ["http://alpha.in-process.invalid:8080"]
    assert stat.header.route.primary == 0


def _hints(o: Any, log: str) -> Any:
    segment = o.recoverylog.Segment(
        author=0x1234,
        first_seq_no=1,
        first_offset=0,
        first_checksum=0x2A,
        last_seq_no=3,
        last_offset=300,
    )
    return o.recoverylog.FSMHints(
        log=log,
        live_nodes=[o.recoverylog.FnodeSegments(fnode=1, segments=[segment])],
        properties=[o.recoverylog.Property(path="/IDENTITY", content="abc\n")],
    )


async def test_apply_writes_primary_hints_with_the_spec_in_one_transaction(
    on_etcd: tuple[Cluster, Peer, Any],
) -> None:
    """An upsert with `primary_hints` writes Gazette's JSON of them at
    `{hint_prefix}/{id}.primary`, at the revision of the spec itself."""
    from gazette_trio.protocol.recoverylog import FsmHints
    from gazette_trio.recoverylog.hints import decode_hints, hints_to_json

    cluster, peer, _ = on_etcd
    o = peer.pb
    new = o.consumer.ShardSpec(
        id="count-009",
        sources=[o.consumer.ShardSpec.Source(journal=LINES)],
        recovery_log_prefix="recovery/wc",
        hint_prefix=f"{cluster.root}/hints",
        disable=True,  # not run: only its spec and hints are looked at
    )
    new.max_txn_duration.seconds = 1
    given = _hints(o, "recovery/wc/count-009")
    reply = await peer.call(
        "Apply",
        o.consumer.ApplyRequest(
            changes=[o.consumer.ApplyRequest.Change(upsert=new, primary_hints=given)]
        ),
        o.consumer.ApplyResponse,
    )
    assert reply.status == o.consumer.OK

    kv = await cluster.etcd.get(f"{cluster.root}/hints/count-009.primary")
    item = await cluster.etcd.get(f"{cluster.root}/items/count-009")
    assert kv is not None and item is not None
    assert kv.mod_revision == item.mod_revision == reply.header.etcd.revision
    ours = FsmHints.parse(given.SerializeToString())
    assert kv.value == hints_to_json(ours)
    assert bytes(decode_hints(kv.value)) == bytes(ours)

    fetched = await peer.call(
        "GetHints", o.consumer.GetHintsRequest(shard="count-009"), o.consumer.GetHintsResponse
    )
    assert fetched.primary_hints.hints == given


async def test_apply_refuses_hints_that_are_invalid_or_come_with_a_delete(
    on_etcd: tuple[Cluster, Peer, Any],
) -> None:
    cluster, peer, _ = on_etcd
    o = peer.pb
    new = o.consumer.ShardSpec(
        id="count-009",
        sources=[o.consumer.ShardSpec.Source(journal=LINES)],
        recovery_log_prefix="recovery/wc",
        hint_prefix=f"{cluster.root}/hints",
        disable=True,
    )
    new.max_txn_duration.seconds = 1
    bad = _hints(o, "recovery/wc/count-009")
    bad.live_nodes[0].segments[0].log = "recovery/wc/count-009"  # repeats hints.log
    with pytest.raises(grpclib.exceptions.GRPCError) as info:
        await peer.call(
            "Apply",
            o.consumer.ApplyRequest(
                changes=[o.consumer.ApplyRequest.Change(upsert=new, primary_hints=bad)]
            ),
            o.consumer.ApplyResponse,
        )
    assert info.value.status == grpclib.const.Status.INVALID_ARGUMENT
    assert "Changes[0].PrimaryHints: contained segment.Log duplicates FSMHints.Log" in str(
        info.value.message
    )
    with pytest.raises(grpclib.exceptions.GRPCError) as info:
        await peer.call(
            "Apply",
            o.consumer.ApplyRequest(
                changes=[
                    o.consumer.ApplyRequest.Change(
                        delete="count-000",
                        expect_mod_revision=-1,
                        primary_hints=_hints(o, "recovery/wc/count-000"),
                    )
                ]
            ),
            o.consumer.ApplyResponse,
        )
    assert "hints may be set only with an upsert, not a delete" in str(info.value.message)
    assert await cluster.etcd.get(f"{cluster.root}/items/count-009") is None


async def test_an_apply_larger_than_an_etcd_transaction_fails_as_etcd_says(
    on_etcd: tuple[Cluster, Peer, Any],
) -> None:
    """129 changes are one more than etcd takes in a transaction: the Apply
    fails with etcd's error (as Gazette's), and nothing is written."""
    cluster, peer, _ = on_etcd
    o = peer.pb
    changes = []
    for i in range(129):
        new = o.consumer.ShardSpec(
            id=f"many-{i:03d}", sources=[o.consumer.ShardSpec.Source(journal=LINES)], disable=True
        )
        new.max_txn_duration.seconds = 1
        changes.append(o.consumer.ApplyRequest.Change(upsert=new))
    with pytest.raises(grpclib.exceptions.GRPCError) as info:
        await peer.call("Apply", o.consumer.ApplyRequest(changes=changes), o.consumer.ApplyResponse)
    assert info.value.status == grpclib.const.Status.UNKNOWN
    assert info.value.message == "etcdserver: too many operations in txn request"
    assert await cluster.etcd.get(f"{cluster.root}/items/many-000") is None
    # Within the limit, the same changes go through.
    reply = await peer.call(
        "Apply", o.consumer.ApplyRequest(changes=changes[:128]), o.consumer.ApplyResponse
    )
    assert reply.status == o.consumer.OK


async def test_a_recovered_ack_intent_to_a_deleted_journal_is_discarded(
    island: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The last committed checkpoint holds an ACK intent to the output
    journal; the journal is deleted; the next primary recovers the shard,
    warns, and serves it (Gazette discards such an intent rather than
    failing the shard on every recovery)."""
    from gazette_trio.broker.list_apply import apply_journals, delete

    async with open_word_count(tmp_path, shards=[spec("count-000", LINES)]) as (cluster, db):
        await cluster.add_member("alpha")
        await cluster.publish(LINES, [{"text": "one two"}])
        shard = await cluster.wait_read_through(
            "count-000", {LINES: cluster.core.write_head(LINES)}
        )
        checkpoint = db.committed_checkpoint(shard.fqn)
        assert COUNTS in checkpoint.ack_intents
        await cluster.crash("alpha")
        await apply_journals(cluster.journals, [delete(COUNTS)])

        await cluster.add_member("beta")
        with trio.fail_after(20):
            _, recovered = await cluster.wait_for_primary("count-000")
        assert recovered.status.code == pc.ReplicaStatusCode.PRIMARY
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("discarding recovered ACK intent" in m and COUNTS in m for m in warned)


class HugeErrors(WordCount):
    """Fails a transaction with an error far longer than a status keeps."""

    async def consume_message(self, shard: Any, store: Any, envelope: Any, publisher: Any) -> None:
        if "HUGE" in envelope.message["text"]:
            raise ValueError("é" * 5000)
        await super().consume_message(shard, store, envelope, publisher)


async def test_a_failed_status_keeps_2048_characters_of_the_error(
    island: None, tmp_path: Path
) -> None:
    """As Gazette's MAX_ETCD_ERR_LEN: the error in a FAILED ReplicaStatus is
    cut to 2,048 characters (runes, not bytes) and marked as cut."""
    opened = open_word_count(tmp_path, HugeErrors, shards=[spec("count-000", LINES)])
    async with opened as (cluster, _):
        handle = await cluster.add_member("alpha")
        await cluster.wait_for_primary("count-000")
        await cluster.publish(LINES, [{"text": "HUGE"}])
        assert handle.consumer is not None
        session = handle.consumer.session
        with trio.fail_after(20):
            while True:
                (a,) = session.state.assignments_by_item["count-000"]
                if a.status.code == pc.ReplicaStatusCode.FAILED:
                    break
                await session.wait_for_change(session.state.revision)
        (error,) = a.status.errors
        assert error.endswith(" ...[truncated]")
        kept = error.removesuffix(" ...[truncated]")
        assert len(kept) == 2048
        assert kept.startswith("ValueError: éé")


async def test_shard_ids_are_tokens_but_label_values_may_hold_equals_and_percent(
    served: tuple[Cluster, Peer],
) -> None:
    """Gazette reverted '=' and '%' in shard ids, and allows them in label
    values: Apply refuses the one and takes the other, and List selects by
    such a value."""
    _, peer = served
    o = peer.pb
    for bad in ("count=001", "count%001"):
        with pytest.raises(grpclib.exceptions.GRPCError) as info:
            await apply_shard(peer, bad, LINES)
        assert info.value.status == grpclib.const.Status.INVALID_ARGUMENT
        assert "Changes[0].Upsert.Id: not a valid token" in str(info.value.message)

    labelled = o.consumer.ShardSpec(
        id="count-002",
        sources=[o.consumer.ShardSpec.Source(journal=LINES)],
        labels=o.protocol.LabelSet(labels=[o.protocol.Label(name="query", value="a=b%20c")]),
    )
    labelled.max_txn_duration.seconds = 1
    reply = await peer.call(
        "Apply",
        o.consumer.ApplyRequest(changes=[o.consumer.ApplyRequest.Change(upsert=labelled)]),
        o.consumer.ApplyResponse,
    )
    assert reply.status == o.consumer.OK
    selector = o.protocol.LabelSelector(
        include=o.protocol.LabelSet(labels=[o.protocol.Label(name="query", value="a=b%20c")])
    )
    listed = await peer.call(
        "List", o.consumer.ListRequest(selector=selector), o.consumer.ListResponse
    )
    assert [s.spec.id for s in listed.shards] == ["count-002"]
