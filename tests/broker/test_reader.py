"""The reader: chunks at their offsets, offset jumps, retries that resume exactly."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from gazette_trio import aio
from gazette_trio.broker.appender import append
from gazette_trio.broker.errors import JournalError
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.reader import Backoff, open_reader, read_journal
from gazette_trio.broker.server import Faults, JournalServerCore, MemoryStorage
from gazette_trio.protocol import protocol as pb

from .conftest import Broker, ServerProcess


class BreakReadsAt(Faults):
    """Breaks a Read stream, once, where it is about to send each offset."""

    def __init__(self, *offsets: int) -> None:
        self.offsets = set(offsets)
        self.broken: list[int] = []

    async def before_read(self, journal: str, offset: int, size: int) -> None:
        if offset in self.offsets:
            self.offsets.discard(offset)
            self.broken.append(offset)
            raise aio.Unavailable(f"injected: connection lost at offset {offset}")


async def test_chunks_carry_their_offsets_and_a_non_blocking_reader_ends_at_the_head(
    broker: Broker,
) -> None:
    await broker.create("a/journal")
    await append(broker.client, "a/journal", b"hello ")
    await append(broker.client, "a/journal", b"world")
    async with open_reader(broker.client, "a/journal", 3, block=False) as reader:
        chunks = [chunk async for chunk in reader]
    assert b"".join(c.content for c in chunks) == b"lo world"
    assert chunks[0].offset == 3 and chunks[0].journal == "a/journal"
    assert all(a.end == b.offset for a, b in itertools.pairwise(chunks))
    assert chunks[-1].write_head == 11
    assert reader.offset == 11 and reader.write_head == 11 and reader.jumps == []


async def test_a_blocking_reader_from_the_head_sees_only_new_content(
    core: JournalServerCore, autojump_clock: trio.testing.MockClock
) -> None:
    client = LocalJournalClient(core)
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    await append(client, "a/journal", b"old")
    async with trio.open_nursery() as nursery:

        async def writer() -> None:
            for word in (b"new", b"er"):
                await trio.sleep(1)
                await append(client, "a/journal", word)

        nursery.start_soon(writer)
        got = b""
        async with open_reader(client, "a/journal", -1, block=True) as reader:
            async for chunk in reader:
                got += chunk.content
                if got == b"newer":
                    break
    assert reader.offset == 8


async def test_offset_jumps_are_followed_and_recorded(broker: Broker) -> None:
    await broker.create("a/journal", fragment_length=1024)
    for part in (b"a" * 1024, b"b" * 1024, b"c" * 1024):
        await append(broker.client, "a/journal", part)
    await broker.core.remove_fragments("a/journal", before=2048)
    async with open_reader(broker.client, "a/journal", 0, block=False) as reader:
        chunks = [chunk async for chunk in reader]
    assert chunks[0].offset == 2048  # beyond the previous end (0): a jump
    assert b"".join(c.content for c in chunks) == b"c" * 1024
    assert [(j.from_offset, j.to_offset) for j in reader.jumps] == [(0, 2048)]


async def test_transport_failures_are_retried_resuming_at_the_next_unread_offset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    faults = BreakReadsAt(8, 20)
    core = JournalServerCore(MemoryStorage(), faults=faults, read_chunk_size=4)
    client = LocalJournalClient(core)
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    content = bytes(range(32))
    await append(client, "a/journal", content)
    async with open_reader(client, "a/journal", 0, block=False) as reader:
        chunks = [chunk async for chunk in reader]
    assert faults.broken == [8, 20]
    assert b"".join(c.content for c in chunks) == content  # nothing lost, nothing twice
    assert [c.offset for c in chunks] == list(range(0, 32, 4))
    assert reader.retries == 2 and reader.jumps == []


async def test_give_up_after_the_configured_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class AlwaysBroken(Faults):
        async def before_read(self, journal: str, offset: int, size: int) -> None:
            raise aio.Unavailable("injected: always down")

    core = JournalServerCore(MemoryStorage(), faults=AlwaysBroken())
    client = LocalJournalClient(core)
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    await append(client, "a/journal", b"x")
    with pytest.raises(aio.Unavailable, match="always down"):
        async with open_reader(client, "a/journal", backoff=Backoff(attempts=3)) as reader:
            async for _ in reader:
                pass
    assert reader.retries == 3


async def test_verdict_statuses_raise_journal_errors(broker: Broker) -> None:
    with pytest.raises(JournalError) as missing:
        await read_journal(broker.client, "no/such/journal")
    assert missing.value.status == pb.Status.JOURNAL_NOT_FOUND
    assert missing.value.journal == "no/such/journal"
    await broker.create("write/only", flags=int(pb.JournalSpecFlag.O_WRONLY))
    with pytest.raises(JournalError) as refused:
        async with open_reader(broker.client, "write/only") as reader:
            async for _ in reader:
                pass
    assert refused.value.status == pb.Status.NOT_ALLOWED


async def test_a_journal_created_just_after_the_read_began_is_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A broker whose view of etcd lags a journal's creation answers
    # JOURNAL_NOT_FOUND for a moment; the reader retries a few times first.
    core = JournalServerCore(MemoryStorage())
    client = LocalJournalClient(core)

    async def create_soon() -> None:
        await trio.sleep(0.06)
        await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
        await append(client, "a/journal", b"hello")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(create_soon)
        async with open_reader(client, "a/journal", block=True, end_offset=5) as reader:
            assert await reader.read_all() == b"hello"
    assert reader.retries >= 1


async def test_end_offset_stops_a_blocking_reader(broker: Broker) -> None:
    await broker.create("a/journal")
    await append(broker.client, "a/journal", b"0123456789")
    with trio.fail_after(10):
        async with open_reader(broker.client, "a/journal", 2, block=True, end_offset=6) as reader:
            assert await reader.read_all() == b"2345"


async def test_a_reader_rides_out_a_server_restart(
    island: None, server_process: ServerProcess
) -> None:
    """Over real gRPC: the server process is killed mid-read and restarted on
    the same port and data; the reader resumes exactly where it was."""
    got = b""
    with trio.fail_after(30):
        async with aio.Channel(server_process.endpoint) as channel:
            client = GrpcJournalClient(channel)
            await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
            await append(client, "a/journal", b"before ")
            async with open_reader(
                client, "a/journal", 0, backoff=Backoff(initial=0.05, maximum=0.2)
            ) as reader:
                async for chunk in reader:
                    got += chunk.content
                    if got == b"before ":
                        server_process.kill()
                        await server_process.start()
                        await append(client, "a/journal", b"after")
                    if got.endswith(b"after"):
                        break
    assert got == b"before after"
    assert reader.retries >= 1
