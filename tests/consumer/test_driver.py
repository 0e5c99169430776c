"""The transaction driver on Trio's mock clock: durations, stalls, barriers.

Messages are fed to the driver as a source reader would (batches on a
channel); the application records which transaction consumed what; the
store is a `MemoryStore`. The appender below stands in for the journal
append service so that each test can make appends slow or failing at will;
it keeps the service's contract (futures resolve after `depends_on`, in
order, and `pending()` lists the unresolved ones).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from gazette_trio import aio
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.reader import read_journal
from gazette_trio.broker.server import JournalServerCore, MemoryStorage
from gazette_trio.consumer.driver import (
    CommitFailed,
    Hooks,
    Progress,
    ReadFailed,
    run_transactions,
)
from gazette_trio.consumer.stores.memory import MemoryDatabase, MemoryStore
from gazette_trio.opfuture import OpFuture
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb


@dataclass(frozen=True)
class Msg:
    journal: str
    end: int
    value: int


class Appender:
    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.delay = 0.0
        self.fail: set[str] = set()
        self.heads: dict[str, int] = {}
        self.log: list[tuple[float, str, bytes]] = []
        self._pending: set[OpFuture[Any]] = set()

    def append(
        self, journal: str, content: bytes, *, depends_on: OpFuture[Any] | None = None
    ) -> OpFuture[pb.AppendResponse]:
        future: OpFuture[pb.AppendResponse] = OpFuture()
        self._pending.add(future)

        async def run() -> None:
            try:
                if depends_on is not None:
                    await depends_on
                await trio.sleep(self.delay)
                if journal in self.fail:
                    raise RuntimeError(f"append to {journal} failed")
                begin = self.heads.get(journal, 0)
                self.heads[journal] = begin + len(content)
                self.log.append((trio.current_time(), journal, content))
                future.resolve(
                    pb.AppendResponse(
                        commit=pb.Fragment(journal=journal, begin=begin, end=begin + len(content))
                    )
                )
            except BaseException as exc:
                future.fail(exc)
            finally:
                self._pending.discard(future)

        self.nursery.start_soon(run)
        return future

    def pending(self) -> set[OpFuture[Any]]:
        return set(self._pending)


class Intake:
    """Every message is committed as soon as it is read."""

    def __init__(self) -> None:
        self.read_through: dict[str, int] = {}
        self.pending = False

    async def committed(self, batch: Sequence[Any]) -> Sequence[Any]:
        for msg in batch:
            self.read_through[msg.journal] = msg.end
        return batch

    def has_pending(self) -> bool:
        return self.pending

    def checkpoint_sources(self) -> dict[str, pc.CheckpointSource]:
        return {j: pc.CheckpointSource(read_through=o) for j, o in self.read_through.items()}


class Publisher:
    def __init__(self) -> None:
        self.intents: dict[str, bytes] = {}

    def build_ack_intents(self) -> dict[str, bytes]:
        intents, self.intents = self.intents, {}
        return intents


@dataclass
class App:
    appender: Appender | None = None
    raw_append_journal: str = ""
    txns: list[list[int]] = field(default_factory=lambda: [[]])
    finalized_at: list[float] = field(default_factory=list)
    fail_on: int | None = None
    consume_delay: float = 0.0

    async def new_store(self, shard: Any, recorder: Any) -> MemoryStore:
        raise NotImplementedError  # the driver is given its store

    def new_message(self, spec: pb.JournalSpec) -> Any:
        raise NotImplementedError  # the driver is given decoded messages

    async def consume_message(
        self, shard: Any, store: MemoryStore, envelope: Msg, publisher: Publisher
    ) -> None:
        if envelope.value == self.fail_on:
            raise ValueError(f"cannot consume {envelope.value}")
        if self.consume_delay:
            await trio.sleep(self.consume_delay)
        self.txns[-1].append(envelope.value)
        store.state["sum"] = store.state.get("sum", 0) + envelope.value
        publisher.intents["derived"] = b"ACK"
        if self.appender is not None and self.raw_append_journal:
            self.appender.append(self.raw_append_journal, b"raw")

    async def finalize_txn(self, shard: Any, store: MemoryStore, publisher: Publisher) -> None:
        self.finalized_at.append(trio.current_time())
        self.txns.append([])


class FakeShard:
    def __init__(self, nursery: trio.Nursery, spec: pc.ShardSpec, appender: Appender) -> None:
        self.id = spec.id
        self.fqn = f"/test/items/{spec.id}"
        self.spec = spec
        self.cancel_scope = nursery.cancel_scope
        self.nursery = nursery
        self.journal_client: Any = None
        self.append_service: Any = appender

    def progress(self) -> tuple[dict[str, int], dict[str, int]]:
        return {}, {}


@dataclass
class Harness:
    shard: FakeShard
    app: App
    db: MemoryDatabase
    store: MemoryStore
    appender: Appender
    intake: Intake
    send: trio.MemorySendChannel[Any]
    progress: Progress
    commits_started: list[tuple[float, pc.Checkpoint]]
    completed: list[float]
    error: list[BaseException]

    async def feed(self, *values: int, journal: str = "in") -> None:
        batch = []
        for v in values:
            end = self.intake_end.get(journal, 0) + 10
            self.intake_end[journal] = end
            batch.append(Msg(journal, end, v))
        await self.send.send(batch)

    intake_end: dict[str, int] = field(default_factory=dict)


def spec(min_s: float = 0.0, max_s: float = 1.0, **kw: Any) -> pc.ShardSpec:
    import datetime

    return pc.ShardSpec(
        id="s",
        min_txn_duration=datetime.timedelta(seconds=min_s),
        max_txn_duration=datetime.timedelta(seconds=max_s),
        **kw,
    )


@pytest.fixture
async def make(autojump_clock: trio.testing.MockClock) -> AsyncIterator[Any]:
    async with trio.open_nursery() as nursery:

        async def start(
            shard_spec: pc.ShardSpec,
            checkpoint: pc.Checkpoint | None = None,
            app_factory: Any = None,
            journal_client: Any = None,
        ) -> Harness:
            """`journal_client`: where recovered ACK intents are written."""
            appender = Appender(nursery)
            app = app_factory(appender) if app_factory else App(appender=appender)
            db = MemoryDatabase()
            store = MemoryStore(db)
            shard = FakeShard(nursery, shard_spec, appender)
            shard.journal_client = journal_client
            restored = await store.restore_checkpoint(shard)  # type: ignore[arg-type]
            send, receive = trio.open_memory_channel[Any](64)
            h = Harness(shard, app, db, store, appender, Intake(), send, Progress(), [], [], [])
            hooks = Hooks(
                on_started_commit=lambda txn, t, cp: h.commits_started.append(
                    (trio.current_time(), cp)
                ),
                on_complete=lambda c, p: h.completed.append(trio.current_time()),
            )

            async def run() -> None:
                try:
                    await run_transactions(
                        shard=shard,  # type: ignore[arg-type]
                        app=app,  # type: ignore[arg-type]
                        store=store,
                        publisher=Publisher(),
                        appender=appender,
                        intake=h.intake,
                        events=receive,
                        events_in=send,
                        checkpoint=checkpoint or restored,
                        progress=h.progress,
                        hooks=hooks,
                        task_nursery=nursery,
                    )
                except Exception as exc:
                    h.error.append(exc)

            nursery.start_soon(run)
            return h

        yield start
        nursery.cancel_scope.cancel()


async def test_a_burst_followed_by_a_stall_is_one_transaction(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=10))
    await h.feed(1, 2, 3)
    await h.feed(4)
    await trio.sleep(1)
    assert h.app.txns[0] == [1, 2, 3, 4]
    assert h.db.committed_state(h.shard.fqn) == {"sum": 10}
    assert h.db.committed_checkpoint(h.shard.fqn).sources["in"].read_through == 40


async def test_min_duration_keeps_a_transaction_open_across_stalls(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0.5, max_s=10))
    start = trio.current_time()
    await h.feed(1)
    await trio.sleep(0.2)
    await h.feed(2)
    await trio.sleep(1)
    assert h.app.txns[0] == [1, 2]
    assert h.app.finalized_at[0] == pytest.approx(start + 0.5)


async def test_max_duration_closes_a_transaction_that_never_stalls(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=1.0))
    h.app.consume_delay = 0.1  # each message takes 100ms: messages are always ready
    start = trio.current_time()
    for i in range(30):
        await h.feed(i)
    await trio.sleep(10)
    assert sum(len(t) for t in h.app.txns) == 30
    # The first transaction read for max_duration, then committed.
    assert h.app.finalized_at[0] == pytest.approx(start + 1.0, abs=0.11)
    assert len(h.app.txns[0]) in (10, 11)  # the boundary message, by float rounding


async def test_pending_acks_hold_the_transaction_until_max_duration(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=2.0))
    h.intake.pending = True
    start = trio.current_time()
    await h.feed(1)
    await trio.sleep(3)
    assert h.app.finalized_at[0] == pytest.approx(start + 2.0)


async def test_disable_wait_for_ack_commits_on_the_stall(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=2.0, disable_wait_for_ack=True))
    h.intake.pending = True
    start = trio.current_time()
    await h.feed(1)
    await trio.sleep(3)
    assert h.app.finalized_at[0] == pytest.approx(start)


async def test_a_slow_commit_pipelines_then_stalls_the_next_transaction(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=0.5))
    h.db.commit_delay = 2.0
    start = trio.current_time()
    await h.feed(1)
    await trio.sleep(0.1)
    # The first transaction is committing (for 2s). The next one consumes...
    await h.feed(2)
    await trio.sleep(0.1)
    assert h.app.txns[1] == [2]
    # ...until its max duration, then stalls: it reads nothing more...
    await trio.sleep(0.5)
    await h.feed(3)
    await trio.sleep(0.1)
    assert h.app.txns[1] == [2]
    # ...and commits only after its predecessor completed.
    await trio.sleep(2)
    assert len(h.commits_started) >= 2
    first_done = h.completed[1]  # [0] is the recovered checkpoint's ACKs
    assert h.commits_started[1][0] >= first_done
    assert first_done == pytest.approx(start + 2.0)
    await trio.sleep(5)
    assert h.db.committed_state(h.shard.fqn) == {"sum": 6}


async def test_the_commit_waits_for_appends_made_by_the_transaction(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=1))
    h.app.raw_append_journal = "raw"
    h.appender.delay = 3.0
    await h.feed(5)
    await trio.sleep(1)
    # The raw append is still in flight: nothing committed yet.
    assert h.db.commits == 0
    await trio.sleep(3)
    assert h.db.commits == 1


async def test_acks_are_written_only_after_the_store_commit(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=1))
    h.db.commit_delay = 1.5
    start = trio.current_time()
    await h.feed(1)
    await trio.sleep(3)
    acks = [t for t, journal, _ in h.appender.log if journal == "derived"]
    assert acks and acks[0] >= start + 1.5
    assert h.progress.publish_at == {"derived": 3}
    assert h.progress.read_through == {"in": 10}


async def test_recovered_ack_intents_are_rewritten_at_start(
    make: Any, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    client = LocalJournalClient(JournalServerCore(MemoryStorage()))
    await apply_journals(
        client,
        [upsert(new_journal_spec(name, content_type="text/plain")) for name in ("out-1", "out-2")],
    )
    cp = pc.Checkpoint(
        sources={"in": pc.CheckpointSource(read_through=100)},
        # A journal deleted since the checkpoint: its intent is discarded.
        ack_intents={"out-1": b"A1\n", "out-2": b"A2\n", "deleted": b"A3\n"},
    )
    h = await make(spec(), cp, journal_client=client)
    await trio.sleep(0.1)
    assert await read_journal(client, "out-1") == b"A1\n"
    assert await read_journal(client, "out-2") == b"A2\n"
    assert not h.error and h.progress.publish_at == {"out-1": 3, "out-2": 3}
    assert "discarding recovered ACK intent of journal deleted" in caplog.text
    # The first transaction runs as usual, through the append service.
    await h.feed(1)
    await trio.sleep(2)
    assert h.db.committed_state(h.shard.fqn) == {"sum": 1} and not h.error


class FlakyAppends:
    """A journal client whose first `failures` appends fail in transport."""

    def __init__(self, inner: LocalJournalClient, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def append(self, request: pb.AppendRequest, content: Any) -> pb.AppendResponse:
        if self.failures:
            self.failures -= 1
            raise aio.Unavailable("connection reset")
        return await self.inner.append(request, content)


async def test_a_recovered_ack_intent_is_retried_through_transport_failures(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    client = LocalJournalClient(JournalServerCore(MemoryStorage()))
    await apply_journals(client, [upsert(new_journal_spec("out-1", content_type="text/plain"))])
    flaky = FlakyAppends(client, failures=3)
    h = await make(spec(), pc.Checkpoint(ack_intents={"out-1": b"A1\n"}), journal_client=flaky)
    await trio.sleep(5)
    assert flaky.failures == 0 and not h.error
    assert await read_journal(client, "out-1") == b"A1\n"
    assert h.completed  # The recovered "transaction" completed.


async def test_a_recovered_ack_intent_that_cannot_be_written_fails_the_driver(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    client = LocalJournalClient(JournalServerCore(MemoryStorage()))
    await apply_journals(
        client,
        [
            upsert(
                new_journal_spec(
                    "out-1", content_type="text/plain", flags=int(pb.JournalSpecFlag.O_RDONLY)
                )
            )
        ],
    )
    h = await make(spec(), pc.Checkpoint(ack_intents={"out-1": b"A1\n"}), journal_client=client)
    await trio.sleep(0.1)
    assert isinstance(h.error[0], CommitFailed)
    assert "writing ACK to journal out-1 failed" in str(h.error[0])


async def test_a_failing_store_commit_fails_the_driver(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=0.5))
    h.db.fail_commits = OSError("disk full")
    await h.feed(1)
    await trio.sleep(1)
    await h.feed(2)
    await trio.sleep(1)
    assert h.error and isinstance(h.error[0], CommitFailed)
    assert "store commit failed: disk full" in str(h.error[0])


async def test_a_failing_ack_append_fails_the_driver(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=0.5))
    h.appender.fail.add("derived")
    await h.feed(1)
    await trio.sleep(1)
    await h.feed(2)
    await trio.sleep(1)
    assert h.error and isinstance(h.error[0], CommitFailed)
    assert "writing ACK to journal derived failed" in str(h.error[0])


async def test_an_application_error_fails_the_driver_with_that_error(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec())
    h.app.fail_on = 13
    await h.feed(1, 13)
    await trio.sleep(1)
    assert isinstance(h.error[0], ValueError) and "cannot consume 13" in str(h.error[0])


async def test_a_read_failure_fails_the_driver_with_that_error(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec())
    await h.send.send(ReadFailed(ValueError("journal in, offset 42: malformed message")))
    await trio.sleep(1)
    assert "offset 42" in str(h.error[0])


class BatchApp(App):
    """An application that takes whole batches (`BatchConsumer`)."""

    def __init__(self, appender: Appender) -> None:
        super().__init__(appender=appender)
        self.batches: list[list[int]] = []

    async def consume_messages(
        self, shard: Any, store: MemoryStore, envelopes: Any, publisher: Publisher
    ) -> None:
        self.batches.append([e.value for e in envelopes])
        for envelope in envelopes:
            await self.consume_message(shard, store, envelope, publisher)


async def test_a_batch_consumer_gets_each_read_batch_in_one_call(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=10), app_factory=BatchApp)
    await h.feed(1, 2, 3)
    await h.feed(4)
    await trio.sleep(1)
    assert h.app.batches == [[1, 2, 3], [4]]
    assert h.db.committed_state(h.shard.fqn) == {"sum": 10}
