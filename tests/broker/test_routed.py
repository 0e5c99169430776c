"""RoutedJournalClient: a journal's reads and appends go where its route says.

Two journal servers on loopback stand for two brokers: `home` is the
client's default endpoint, `away` the broker that a route names. Each
holds its own journals, so where a request landed shows in which one has
the content.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
import trio

from gazette_trio import aio
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, list_journals, upsert
from gazette_trio.broker.reader import read_journal
from gazette_trio.broker.routed import RoutedJournalClient
from gazette_trio.broker.server import JournalServerCore, MemoryStorage
from gazette_trio.protocol import protocol as pb

from .conftest import served


@contextlib.asynccontextmanager
async def two_brokers() -> AsyncIterator[
    tuple[JournalServerCore, JournalServerCore, RoutedJournalClient, GrpcJournalClient]
]:
    home = JournalServerCore(MemoryStorage(), process_id=pb.ProcessSpecId(zone="a", suffix="home"))
    away = JournalServerCore(MemoryStorage(), process_id=pb.ProcessSpecId(zone="b", suffix="away"))
    async with aio.asyncio_island(), served(home) as home_client, served(away) as away_client:
        routed = RoutedJournalClient(home_client, zone="a")
        try:
            yield home, away, routed, away_client
        finally:
            await routed.aclose()


async def test_without_a_route_requests_go_to_the_default_endpoint() -> None:
    async with two_brokers() as (home, away, routed, _):
        await apply_journals(routed, [upsert(new_journal_spec("a/journal"))])
        response = await routed.append(pb.AppendRequest(journal="a/journal"), [b"hello"])
        assert response.status == pb.Status.OK
        assert home.write_head("a/journal") == 5 and away.spec("a/journal") is None


async def test_appends_go_to_the_primary_a_listing_or_response_named() -> None:
    async with two_brokers() as (home, away, routed, away_client):
        await apply_journals(away_client, [upsert(new_journal_spec("b/journal"))])
        # The route comes from a listing (here, the away broker's own).
        [listed] = await list_journals(away_client)
        routed.update_route("b/journal", listed.route)
        response = await routed.append(pb.AppendRequest(journal="b/journal"), [b"there"])
        assert response.status == pb.Status.OK
        assert away.write_head("b/journal") == 5 and home.spec("b/journal") is None
        assert await read_journal(routed, "b/journal") == b"there"


async def test_a_listing_through_the_client_teaches_it_routes() -> None:
    async with two_brokers() as (_, _, routed, _):
        await apply_journals(routed, [upsert(new_journal_spec("a/journal"))])
        assert routed.route("a/journal") is None
        await list_journals(routed)
        route = routed.route("a/journal")
        assert route is not None and [m.suffix for m in route.members] == ["home"]


async def test_a_stale_route_is_forgotten_and_the_default_broker_used_next() -> None:
    async with two_brokers() as (home, away, routed, away_client):
        await apply_journals(routed, [upsert(new_journal_spec("a/journal"))])
        # A route naming a broker that no longer has the journal (it moved).
        await apply_journals(away_client, [upsert(new_journal_spec("other/journal"))])
        [elsewhere] = await list_journals(away_client)
        routed.update_route("a/journal", elsewhere.route)
        gone = await routed.append(pb.AppendRequest(journal="a/journal"), [b"x"])
        assert gone.status == pb.Status.JOURNAL_NOT_FOUND
        assert routed.route("a/journal") is None
        # The default broker answers, and its route is taken up.
        response = await routed.append(pb.AppendRequest(journal="a/journal"), [b"y"])
        assert response.status == pb.Status.OK and home.write_head("a/journal") == 1
        route = routed.route("a/journal")
        assert route is not None and [m.suffix for m in route.members] == ["home"]
        assert away.spec("a/journal") is None


async def test_an_unreachable_routed_broker_drops_the_route() -> None:
    async with two_brokers() as (_, _, routed, _):
        await apply_journals(routed, [upsert(new_journal_spec("a/journal"))])
        unreachable = pb.Route(
            members=[pb.ProcessSpecId(zone="b", suffix="gone")],
            primary=0,
            endpoints=["127.0.0.1:1"],
        )
        routed.update_route("a/journal", unreachable)
        with pytest.raises(aio.Unavailable):
            await routed.append(pb.AppendRequest(journal="a/journal"), [b"x"])
        assert routed.route("a/journal") is None
        with trio.fail_after(10):
            response = await routed.append(pb.AppendRequest(journal="a/journal"), [b"x"])
        assert response.status == pb.Status.OK
        # The unreachable broker is passed over for a while, even when a
        # response names it again.
        routed.update_route("a/journal", unreachable)
        response = await routed.append(pb.AppendRequest(journal="a/journal"), [b"x"])
        assert response.status == pb.Status.OK


async def test_reads_prefer_a_member_in_the_clients_zone() -> None:
    async with two_brokers() as (_, away, routed, away_client):
        await apply_journals(away_client, [upsert(new_journal_spec("b/journal"))])
        await away_client.append(pb.AppendRequest(journal="b/journal"), [b"near"])
        [listed] = await list_journals(away_client)
        # Primary elsewhere (index 0, an unreachable zone-c broker); the zone-b
        # member (away) is a replica. A client in zone b reads from it.
        route = pb.Route(
            members=[
                pb.ProcessSpecId(zone="b", suffix="away"),
                pb.ProcessSpecId(zone="c", suffix="x"),
            ],
            primary=1,
            endpoints=[listed.route.endpoints[0], "127.0.0.1:1"],
        )
        routed.zone = "b"
        routed.update_route("b/journal", route)
        async with routed.read(pb.ReadRequest(journal="b/journal")) as stream:
            first = await anext(stream)
        assert first.status == pb.Status.OK and away.write_head("b/journal") == 4
