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
from gazette_trio.testing.cluster import Cluster, open_cluster
from tests.consumer.test_e2e import COUNTS, LINES, NDJSON, WordCount
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
    db = MemoryDatabase()
    async with open_cluster(
        lambda: WordCount(db),  # type: ignore[arg-type,return-value]
        data_dir=tmp_path,
        journals=[
            new_journal_spec(LINES, content_type=NDJSON),
            new_journal_spec(OTHER, content_type=NDJSON),
            new_journal_spec(COUNTS, content_type=NDJSON),
        ],
        shards=[spec("count-000", LINES), spec("count-001", OTHER)],
    ) as cluster:
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
