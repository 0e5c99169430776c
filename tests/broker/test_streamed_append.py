"""A large append is written to storage as it arrives, and is still all or nothing.

The Journal service holds an append in memory up to one message's size; past
that it hands the core the rest of the stream (`MoreContent`), and the core
writes it batch by batch into the spool under the journal's lock. These
tests drive the core with a scripted stream, on both storages, and check
what the contract promises: the commit covers exactly the bytes sent, a
stream that fails or is cancelled leaves nothing (the write head stays, the
next append takes the same offset), and with files the uncommitted bytes are
a torn tail that a restart cuts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from gazette_trio import aio
from gazette_trio.broker.fragments import sha1_digest
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import upsert
from gazette_trio.broker.server import FileStorage, JournalServerCore, MemoryStorage
from gazette_trio.broker.server.core import MIN_APPEND_RATE, STREAM_BATCH, UNDERFLOW
from gazette_trio.protocol import protocol as pb

S = pb.Status
MiB = 1 << 20
JOURNAL = "streamed/journal"


class Scripted:
    """The rest of an Append stream: `chunks`, then the commit (None), or
    `error` raised after them; `gate`, if set, is awaited before each chunk."""

    def __init__(
        self,
        chunks: list[bytes],
        *,
        error: BaseException | None = None,
        gate: trio.Event | None = None,
        pauses: list[float] | None = None,
    ) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._error = error
        self.gate = gate
        self._pauses = iter(pauses or [])
        self.taken = 0

    async def next_chunk(self) -> bytes | None:
        if self.gate is not None:
            await self.gate.wait()
        await trio.sleep(next(self._pauses, 0.0))
        await trio.lowlevel.checkpoint()
        chunk = next(self._chunks, None)
        if chunk is None and self._error is not None:
            raise self._error
        if chunk is not None:
            self.taken += 1
        return chunk


def commit_of(response: pb.AppendResponse) -> pb.Fragment:
    assert response.commit is not None, response
    return response.commit


def span(response: pb.AppendResponse) -> tuple[int, int]:
    """The offsets an acknowledged append took."""
    commit = commit_of(response)
    return commit.begin, commit.end


def payload(n: int, seed: int = 0) -> list[bytes]:
    return [bytes([(seed + i) % 251]) * MiB for i in range(n)]


class Cores:
    """Makes cores over one storage kind; a new one replaces (closes) the
    last, as a restart would."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self._root = root
        self._made: list[JournalServerCore] = []

    def __call__(self) -> JournalServerCore:
        self.close()
        storage = MemoryStorage() if self.kind == "memory" else FileStorage(self._root / "data")
        core = JournalServerCore(storage)
        self._made.append(core)
        return core

    def close(self) -> None:
        for core in self._made:
            core.close()
        self._made.clear()


@pytest.fixture(params=["memory", "file"])
def make_core(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cores]:
    cores = Cores(request.param, tmp_path)
    yield cores
    cores.close()


async def created(core: JournalServerCore) -> None:
    response = await core.apply(pb.ApplyRequest(changes=[upsert(new_journal_spec(JOURNAL))]))
    assert response.status == S.OK


async def content(core: JournalServerCore) -> bytes:
    sent: list[bytes] = []

    async def send(response: pb.ReadResponse) -> None:
        sent.append(response.content)

    await core.read(pb.ReadRequest(journal=JOURNAL, offset=0, block=False), send)
    return b"".join(sent)


async def test_a_streamed_append_commits_exactly_what_was_sent(make_core: Cores) -> None:
    core = make_core()
    await created(core)
    await core.append(pb.AppendRequest(journal=JOURNAL), [b"before\n"])
    chunks = payload(3 * STREAM_BATCH // MiB + 1)
    rest = Scripted(chunks[1:])
    response = await core.append(
        pb.AppendRequest(
            journal=JOURNAL, union_registers=pb.LabelSet(labels=[pb.Label("owner", "me")])
        ),
        chunks[:1],
        more=rest,
    )
    body = b"".join(chunks)
    assert response.status == S.OK
    assert span(response) == (7, 7 + len(body))
    assert sha1_digest(commit_of(response).sum) == hashlib.sha1(body).digest()
    assert response.registers == pb.LabelSet(labels=[pb.Label("owner", "me")])
    assert rest.taken == len(chunks) - 1
    assert await content(core) == b"before\n" + body
    assert core.stats.append_bytes == 7 + len(body)

    # It survives a restart (files) or a new core on the same storage (memory).
    if make_core.kind == "file":
        core = make_core()
        assert await content(core) == b"before\n" + body
        assert core.registers(JOURNAL) == pb.LabelSet(labels=[pb.Label("owner", "me")])


async def test_a_stream_that_fails_midway_appends_nothing_and_its_offset_is_reused(
    make_core: Cores,
) -> None:
    core = make_core()
    await created(core)
    await core.append(pb.AppendRequest(journal=JOURNAL), [b"acked\n"])
    broken = Scripted(payload(3)[1:], error=aio.InvalidArgument("stream ended uncommitted"))
    with pytest.raises(aio.InvalidArgument, match="ended uncommitted"):
        await core.append(pb.AppendRequest(journal=JOURNAL), payload(1), more=broken)
    assert core.write_head(JOURNAL) == 6
    after = await core.append(pb.AppendRequest(journal=JOURNAL), [b"after\n"])
    assert span(after) == (6, 12)
    assert await content(core) == b"acked\nafter\n"
    if make_core.kind == "file":
        # Nothing of the failed append is left in the spool either.
        assert isinstance(core.storage, FileStorage)
        spool = next(core.storage.journal_dir(JOURNAL).glob("*.spool"))
        assert spool.stat().st_size == 12
        core = make_core()
        assert await content(core) == b"acked\nafter\n"


async def test_a_cancelled_stream_appends_nothing_and_releases_the_journal(
    make_core: Cores,
) -> None:
    core = make_core()
    await created(core)
    stalled = Scripted(payload(4)[1:])
    stalled.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: core.append(pb.AppendRequest(journal=JOURNAL), payload(1), more=stalled)
        )
        await trio.testing.wait_all_tasks_blocked()
        # The streamed append holds the journal: a small one waits behind it.
        small_done = trio.Event()

        async def small() -> None:
            response = await core.append(pb.AppendRequest(journal=JOURNAL), [b"small\n"])
            assert span(response) == (0, 6)
            small_done.set()

        nursery.start_soon(small)
        await trio.testing.wait_all_tasks_blocked()
        assert not small_done.is_set()
        nursery.cancel_scope.cancel()
    # The cancelled streamed append left nothing; the journal is free.
    response = await core.append(pb.AppendRequest(journal=JOURNAL), [b"whole\n"])
    assert span(response) == (0, 6)
    assert await content(core) == b"whole\n"


async def test_a_waiting_append_lands_after_the_streamed_one_commits(
    make_core: Cores,
) -> None:
    core = make_core()
    await created(core)
    gate = trio.Event()
    stream = Scripted(payload(2)[1:], gate=gate)
    order: list[str] = []

    async def big() -> None:
        await core.append(pb.AppendRequest(journal=JOURNAL), payload(1), more=stream)
        order.append("big")

    async def small() -> None:
        response = await core.append(pb.AppendRequest(journal=JOURNAL), [b"small\n"])
        assert span(response)[0] == 2 * MiB
        order.append("small")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(big)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(small)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert order == ["big", "small"]
    assert (await content(core))[-6:] == b"small\n"


async def test_uncommitted_streamed_bytes_are_a_torn_tail_at_restart(tmp_path: Path) -> None:
    # A crash while a large append streams: its bytes are in the spool with
    # no record vouching for them. Restart cuts them; nothing acked is lost.
    storage = FileStorage(tmp_path / "data")
    core = JournalServerCore(storage)
    await created(core)
    await core.append(pb.AppendRequest(journal=JOURNAL), [b"acked\n"])
    spool = next(storage.journal_dir(JOURNAL).glob("*.spool"))
    pending = storage.begin_append(JOURNAL, 0, 6)
    await pending.write(payload(3))
    assert spool.stat().st_size == 6 + 3 * MiB  # on disk, never committed
    # The process dies here: no commit, no abort.
    storage._lock.release()  # what the kernel does for a dead process

    restarted = JournalServerCore(FileStorage(tmp_path / "data"))
    try:
        assert restarted.write_head(JOURNAL) == 6
        assert await content(restarted) == b"acked\n"
        assert spool.stat().st_size == 6
    finally:
        restarted.close()
        core.close()


async def test_a_client_that_keeps_the_minimum_rate_may_stream_for_as_long_as_it_likes(
    autojump_clock: trio.abc.Clock,
) -> None:
    core = JournalServerCore(MemoryStorage())
    await created(core)
    # 64 KiB every half second is twice the minimum, for a minute.
    quantum = MIN_APPEND_RATE
    chunks = [b"s" * quantum for _ in range(120)]
    steady = Scripted(chunks, pauses=[0.5] * 121)
    response = await core.append(pb.AppendRequest(journal=JOURNAL), [b"first"], more=steady)
    assert span(response) == (0, 5 + 120 * quantum)
    assert trio.current_time() >= 60


async def test_a_client_that_stalls_is_cut_off_and_the_appends_behind_it_proceed(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Gazette's MinAppendRate: a streamed append holds its journal, so a
    # client that stops sending must not hold it for good.
    core = JournalServerCore(MemoryStorage())
    await created(core)
    stalling = Scripted(payload(3)[1:], pauses=[0.0, 30.0])
    outcome: list[aio.UnknownError] = []

    async def big() -> None:
        try:
            await core.append(pb.AppendRequest(journal=JOURNAL), payload(1), more=stalling)
        except aio.UnknownError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(big)
        await trio.testing.wait_all_tasks_blocked()
        started = trio.current_time()
        small = await core.append(pb.AppendRequest(journal=JOURNAL), [b"small\n"])
    assert span(small) == (0, 6)  # the stalled append left nothing
    assert trio.current_time() - started < 30  # it did not wait out the stall
    assert len(outcome) == 1 and outcome[0].message == UNDERFLOW
    assert await content(core) == b"small\n"
