"""The Shard API verifies every call as Gazette's consumers do: the
capability each RPC requires, then the token's selector over the shard's
labels and its `id`. A shard the selector does not reach is SHARD_NOT_FOUND
to Stat and GetHints and missing from List; an Apply or Unassign of one is
UNAUTHENTICATED and changes nothing."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from gazette_trio import aio
from gazette_trio.auth import capabilities as caps
from gazette_trio.auth.claims import Claims
from gazette_trio.auth.tokens import Keys
from gazette_trio.auth.verifier import Verifier
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import labels as lbl
from gazette_trio.runtime.shard_client import ShardClient
from gazette_trio.testing.cluster import Cluster
from tests.consumer.test_e2e import LINES, open_word_count

from .conftest import bearer, signed

OTHER = "lines/part-001"


def spec(shard_id: str, journal: str, team: str) -> pc.ShardSpec:
    return pc.ShardSpec(
        id=shard_id,
        sources=[pc.ShardSpecSource(journal=journal)],
        max_txn_duration=datetime.timedelta(seconds=1),
        labels=lbl.label_set({"team": team}),
    )


@pytest.fixture
async def served(island: None, tmp_path: Path, keys: Keys) -> AsyncIterator[tuple[Cluster, str]]:
    async with open_word_count(
        tmp_path,
        sources=(LINES, OTHER),
        shards=[spec("count-000", LINES, "a"), spec("count-001", OTHER, "b")],
    ) as (cluster, _):
        member = await cluster.add_member("alpha")
        await cluster.wait_for_primary("count-000")
        await cluster.wait_for_primary("count-001")
        assert member.consumer is not None
        member.consumer.api.verifier = Verifier(keys)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                aio.serve, [member.consumer.api.grpc_service()], "127.0.0.1", 0
            )
            yield cluster, f"http://127.0.0.1:{port}"
            nursery.cancel_scope.cancel()


def client(endpoint: str, credentials: aio.DialCredentials) -> aio.Channel:
    return aio.Channel(endpoint, credentials=credentials)


def scoped(keys: Keys, cap: int, selector: str) -> aio.DialCredentials:
    return bearer(keys.sign(Claims(cap, lbl.parse_selector(selector)), 600))


async def test_a_signed_client_sees_every_shard(served: tuple[Cluster, str], keys: Keys) -> None:
    _, endpoint = served
    async with client(endpoint, signed(keys)) as channel:
        shards = ShardClient(channel)
        listed = await shards.list(pc.ListRequest())
        assert [s.spec.id for s in listed.shards if s.spec] == ["count-000", "count-001"]
        stat = await shards.stat(pc.StatRequest(shard="count-001"))
        assert stat.status == pc.Status.OK
        hints = await shards.get_hints(pc.GetHintsRequest(shard="count-001"))
        assert hints.status == pc.Status.OK


async def test_no_token_is_refused(served: tuple[Cluster, str]) -> None:
    _, endpoint = served
    async with client(endpoint, aio.DialCredentials()) as channel:
        with pytest.raises(aio.Unauthenticated, match="missing or empty Authorization token"):
            await ShardClient(channel).list(pc.ListRequest())


async def test_shards_outside_the_selector_do_not_exist_for_the_token(
    served: tuple[Cluster, str], keys: Keys
) -> None:
    _, endpoint = served
    async with client(endpoint, scoped(keys, caps.ALL, "team=a")) as channel:
        shards = ShardClient(channel)
        listed = await shards.list(pc.ListRequest())
        assert [s.spec.id for s in listed.shards if s.spec] == ["count-000"]
        assert (await shards.stat(pc.StatRequest(shard="count-001"))).status == (
            pc.Status.SHARD_NOT_FOUND
        )
        assert (await shards.get_hints(pc.GetHintsRequest(shard="count-001"))).status == (
            pc.Status.SHARD_NOT_FOUND
        )
        assert (await shards.stat(pc.StatRequest(shard="count-000"))).status == pc.Status.OK


async def test_apply_and_unassign_outside_the_selector_are_unauthenticated(
    served: tuple[Cluster, str], keys: Keys
) -> None:
    _, endpoint = served
    async with client(endpoint, scoped(keys, caps.ALL, "id=count-000")) as channel:
        shards = ShardClient(channel)
        with pytest.raises(aio.Unauthenticated, match="not authorized to count-001"):
            await shards.apply(pc.ApplyRequest(changes=[pc.ApplyRequestChange(delete="count-001")]))
        with pytest.raises(aio.Unauthenticated, match="not authorized to count-009"):
            await shards.apply(
                pc.ApplyRequest(
                    changes=[
                        pc.ApplyRequestChange(
                            upsert=spec("count-009", LINES, "a"), expect_mod_revision=0
                        )
                    ]
                )
            )
        with pytest.raises(aio.Unauthenticated, match="not authorized to count-001"):
            await shards.unassign(pc.UnassignRequest(shards=["count-000", "count-001"]))
    async with client(endpoint, signed(keys)) as channel:
        listed = await ShardClient(channel).list(pc.ListRequest())
    assert [s.spec.id for s in listed.shards if s.spec] == ["count-000", "count-001"]
    assert all(s.status and s.status[0].code == pc.ReplicaStatusCode.PRIMARY for s in listed.shards)


async def test_a_missing_capability_is_named(served: tuple[Cluster, str], keys: Keys) -> None:
    _, endpoint = served
    async with client(endpoint, scoped(keys, caps.READ, "")) as channel:
        with pytest.raises(aio.Unauthenticated, match="missing required LIST capability"):
            await ShardClient(channel).list(pc.ListRequest())
        with pytest.raises(aio.Unauthenticated, match="missing required APPLY capability"):
            await ShardClient(channel).unassign(pc.UnassignRequest(shards=["count-000"]))
