"""gazette-trio's journal clients against Gazette's brokers: routing, watched
listings and the statuses a broker answers mid-append.

Two real `gazette serve` brokers in two zones (the `gazette` fixture); the
clients under test are `RoutedJournalClient` and `gazette_trio.client`.
"""

from __future__ import annotations

import uuid

import trio

from gazette_trio import aio
from gazette_trio.broker import (
    apply_journals,
    list_journals,
    new_journal_spec,
    open_routed_client,
    read_journal,
    upsert,
)
from gazette_trio.protocol import protocol as pb

from .conftest import GazetteCluster


def unique(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:8]}"


async def test_a_broker_refusing_a_large_append_mid_stream_answers_with_its_status(
    gazette: GazetteCluster,
) -> None:
    # A broker that refuses an append before reading its content answers and
    # then resets the stream (HTTP/2 NO_ERROR). The answer is what counts,
    # whatever the append's size, not a transport error.
    async with aio.asyncio_island(), open_routed_client(gazette.endpoint, timeout=30) as client:
        for size in (10, 100_000, 4 << 20):
            response = await client.append(
                pb.AppendRequest(journal=unique("interop/missing")), [b"x" * size]
            )
            assert response.status == pb.Status.JOURNAL_NOT_FOUND, size


async def test_routed_appends_and_reads_go_to_each_journals_own_broker(
    gazette: GazetteCluster,
) -> None:
    base = unique("interop/routed")
    names = [f"{base}/j-{i}" for i in range(6)]
    async with aio.asyncio_island(), open_routed_client(gazette.endpoint, timeout=30) as client:
        await apply_journals(client, [upsert(new_journal_spec(n, replication=1)) for n in names])
        with trio.fail_after(30):
            while True:  # until the brokers have assigned every journal a primary
                listed = await list_journals(client, f"name:prefix={base}/")
                if len(listed) == len(names) and all(j.route.primary >= 0 for j in listed):
                    break
                await trio.sleep(0.1)
        endpoints = {j.route.endpoints[j.route.primary] for j in listed}
        assert len(endpoints) == 2, "the journals are spread over both brokers"
        for name in names:
            route = client.route(name)  # learned from the listing
            assert route is not None and route.primary >= 0
            response = await client.append(pb.AppendRequest(journal=name), [name.encode()])
            assert response.status == pb.Status.OK
            assert response.header is not None
            assert response.header.process_id == route.members[route.primary]
        for name in names:
            assert await read_journal(client, name) == name.encode()
        # Journals whose primary is the other broker were sent to it
        # directly, over a channel of the client's own (no proxy hop).
        others = {e for e in endpoints if e.removeprefix("http://") != gazette.endpoint}
        assert {e.removeprefix("http://") for e in client._clients} == {
            e.removeprefix("http://") for e in others
        }
