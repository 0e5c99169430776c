"""Upstream: consumer/transaction_test.go (go.gazette.dev/core v0.103.0).

Gazette's transaction loop cases, each in a test of the same name, plus
cases for behaviours of its `transaction.go` that upstream's file leaves
untested (BeginFinisher's calls and ordering, errors after `BeginTxn` from
reads and from the prior commit, a commit refused at once, cancellation).

Upstream drives `txnStep` one select at a time against a fake timer, with
the prior transaction's commit and ACK as futures the test resolves by hand.
Here the production driver (`run_transactions`) runs on Trio's `MockClock`:
the test jumps the clock and lets every task run until all are blocked,
which is one or more of upstream's steps. The pieces around it are the
runtime's own: the shard's `SequencedIntake` over a real `Sequencer`,
`message.Publisher`s stamping real UUIDs and ACKs on both sides, JSON
framing, and a `MemoryStore`. Two seams are the test's: the source journal,
in memory, hands each append to the driver as one read batch (what a source
reader does, without a broker), and the output appender keeps the append
service's contract while letting a test hold a journal's appends, as the
store lets it hold a commit. Holding them is how "the prior transaction
commits" and "the prior transaction ACKs" happen when the test says so; the
prior transaction is a real one. Recovered ACK intents are written to an
in-process journal server (`LocalJournalClient`), as the driver writes them
straight to their journals.

Where the Go test reads the fake timer's `Reset` and the transaction's
timestamps (beganAt, stalledAt, prepareBeganAt), these read the commit hook's
`Transaction` (`began_at`, `stalled_at`, `commit_at`) and the times at which
the application was called. Committing "on the stall" happens in the same
scheduler pass as the event that made the stall possible; upstream's test
takes one more step for it, a nanosecond later on its fake clock, so where it
expects `minDur+3` these expect the event's own time.

Cases that cannot apply, or apply in part, and why:

- TxnReadChannelDrain, and the drained-channel return of `runTransactions`
  used by RunTxnsACKsRecoveredCheckpoint: source readers here never close
  the channel (they end by sending `ReadFailed`, and the driver holds a
  send side of the channel for its own wake-ups), so the driver runs until
  it fails or is cancelled.
- AppDeferWithinDequeueSequence and the `ErrDeferToNextTransaction` case of
  RunTxnsAppErrorCases: the Application API has no way to
  defer a message to the next transaction. The intake advances a source's
  checkpoint offset per read batch, not per message handed out, so a
  deferred message would be lost if the shard crashed after the commit.
- TxnMaxDurWithinDequeueSequence expects the opposite of ours:
  `max_duration` is checked between read batches, so a batch (a committed
  sequence included) is consumed whole by one transaction and the
  checkpoint never splits it
  (`test_max_duration_passing_within_a_batch_closes_the_transaction_after_it`).
- RunTxnsUpdatesRecordedHints: hints are stored by the shard's own
  periodic task (`LocalShard._store_hints_periodically`), not between
  transactions by the driver; tests/recovery/test_hot_standby.py checks
  that they are stored.
- The shard clock assertion of TxnPriorSyncsThenMinDurElapses
  (`PublishClockDelta`): there is no clock delta setting; the shard updates
  its publisher's clock from wall time as each transaction starts to commit.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

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
    TransactionAborted,
    run_transactions,
)
from gazette_trio.consumer.intake import SequencedIntake, SourceBatch
from gazette_trio.consumer.stores.memory import MemoryDatabase, MemoryStore
from gazette_trio.consumer.transaction import Transaction
from gazette_trio.message import Sequencer
from gazette_trio.message.framing import framing_by_content_type
from gazette_trio.message.mapping import fixed_mapping
from gazette_trio.message.message import set_uuid
from gazette_trio.message.publisher import Publisher
from gazette_trio.message.uuids import ACK_TXN, build_uuid
from gazette_trio.opfuture import OpFuture, OpFutures
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from tests.consumer.test_driver import FakeShard

UPSTREAM = "consumer/transaction_test.go"
NOT_APPLICABLE = {
    "TestTxnReadChannelDrain": "source readers never close the driver's channel",
    "TestAppDeferWithinDequeueSequence": "no ErrDeferToNextTransaction: offsets advance per batch",
    "TestTxnMaxDurWithinDequeueSequence": "max_duration is checked between batches, never within",
    "TestRunTxnsUpdatesRecordedHints": "hints are stored by the shard's periodic task",
}

JSON = "application/x-ndjson"
SOURCE = pb.JournalSpec(name="source/a", labels=pb.LabelSet())
ECHO = "echo/out"
MIN, MAX = 1.0, 10.0
TO_SOURCE = fixed_mapping(SOURCE.name, JSON)
TO_ECHO = fixed_mapping(ECHO, JSON)


class SourceJournal:
    """An in-memory source journal. Each append is decoded and sent to the
    driver as one read batch, as the shard's reader of it would."""

    def __init__(self, send: trio.MemorySendChannel[Any]) -> None:
        self.content = bytearray()
        self._decoder = framing_by_content_type(JSON).decoder(SOURCE, dict, 0)
        self._send = send

    @property
    def head(self) -> int:
        return len(self.content)

    def append(self, journal: str, content: bytes) -> OpFuture[pb.AppendResponse]:
        begin = self.head
        self.content += content
        self._decoder.feed(begin, content)
        frames, error = self._decoder.decode()
        assert error is None and len(frames)
        self._send.send_nowait(SourceBatch(SOURCE.name, frames))
        return OpFuture.resolved(
            pb.AppendResponse(commit=pb.Fragment(journal=journal, begin=begin, end=self.head))
        )

    def reappend(self, begin: int, end: int) -> None:
        """Append bytes already in the journal again: each message in them
        is read a second time (a writer retried, say)."""
        self.append(SOURCE.name, bytes(self.content[begin:end]))


class OutputAppender:
    """The driver's appender with the append service's contract (ordered per
    journal, `depends_on` honoured, `pending()` unresolved), whose appends to
    a held journal wait until the test releases it."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._holds: dict[str, OpFuture[None]] = {}
        self._tails: dict[str, OpFuture[Any]] = {}
        self._pending: set[OpFuture[Any]] = set()
        self.content: dict[str, bytearray] = {}

    def hold_next(self, journal: str) -> OpFuture[None]:
        """The next append to `journal` (and so every one after it) waits
        on the returned future."""
        gate: OpFuture[None] = OpFuture()
        self._holds[journal] = gate
        return gate

    def append(
        self, journal: str, content: bytes, *, depends_on: OpFuture[Any] | None = None
    ) -> OpFuture[pb.AppendResponse]:
        future: OpFuture[pb.AppendResponse] = OpFuture()
        before = self._tails.get(journal)
        gate = self._holds.pop(journal, None)
        self._tails[journal] = future
        self._pending.add(future)

        async def run() -> None:
            try:
                for barrier in (before, depends_on, gate):
                    if barrier is not None:
                        await barrier
                written = self.content.setdefault(journal, bytearray())
                begin = len(written)
                written += content
                future.resolve(
                    pb.AppendResponse(
                        commit=pb.Fragment(journal=journal, begin=begin, end=len(written))
                    )
                )
            except BaseException as exc:
                future.fail(exc)
            finally:
                self._pending.discard(future)

        self._nursery.start_soon(run)
        return future

    def pending(self) -> set[OpFuture[Any]]:
        return set(self._pending)


class HeldStore(MemoryStore):
    """A MemoryStore whose next commit can be held until the test releases it."""

    def __init__(self, db: MemoryDatabase) -> None:
        super().__init__(db)
        self._next_hold: OpFuture[None] | None = None
        self.refuse: BaseException | None = None

    def hold_next_commit(self) -> OpFuture[None]:
        gate: OpFuture[None] = OpFuture()
        self._next_hold = gate
        return gate

    def start_commit(
        self, shard: Any, checkpoint: pc.Checkpoint, wait_for: OpFutures
    ) -> OpFuture[None]:
        if self.refuse is not None:
            return OpFuture.failed(self.refuse)
        gate, self._next_hold = self._next_hold, None
        return super().start_commit(shard, checkpoint, wait_for | {gate} if gate else wait_for)


@dataclass
class EchoApp:
    """Gazette's testApplication: keeps key → value, echoes each message to
    ECHO uncommitted, and records every callback with the time it ran."""

    calls: list[tuple[float, str]] = field(default_factory=list)
    finished: list[OpFuture[None]] = field(default_factory=list)
    begin_error: Exception | None = None
    consume_error: Exception | None = None
    finalize_error: Exception | None = None
    begin_delay: float = 0.0
    consume_delay: float = 0.0

    def log(self, what: str) -> None:
        self.calls.append((trio.current_time(), what))

    async def new_store(self, shard: Any, recorder: Any) -> MemoryStore:
        raise NotImplementedError  # the driver is given its store

    def new_message(self, spec: pb.JournalSpec) -> type:
        return dict

    async def begin_txn(self, shard: Any, store: MemoryStore) -> None:
        self.log("begin")
        if self.begin_delay:
            await trio.sleep(self.begin_delay)
        if self.begin_error is not None:
            raise self.begin_error

    async def consume_message(
        self, shard: Any, store: MemoryStore, envelope: Any, publisher: Publisher
    ) -> None:
        message = envelope.message
        self.log(f"consume {message['key']}")
        if self.consume_error is not None:
            raise self.consume_error
        if self.consume_delay:
            await trio.sleep(self.consume_delay)
        store.state[message["key"]] = message["value"]
        publisher.publish_uncommitted(TO_ECHO, {"key": message["key"], "value": message["value"]})

    async def finalize_txn(self, shard: Any, store: MemoryStore, publisher: Publisher) -> None:
        self.log("finalize")
        if self.finalize_error is not None:
            raise self.finalize_error

    def finished_txn(self, shard: Any, store: MemoryStore, future: OpFuture[None]) -> None:
        self.log("finished")
        self.finished.append(future)


@dataclass
class Fixture:
    clock: trio.testing.MockClock
    start: float
    app: EchoApp
    db: MemoryDatabase
    store: HeldStore
    output: OutputAppender
    source: SourceJournal
    pub: Publisher
    shard: FakeShard
    send: trio.MemorySendChannel[Any]
    progress: Progress
    progress_signals: int = 0
    commits: list[Transaction] = field(default_factory=list)
    checkpoints: list[pc.Checkpoint] = field(default_factory=list)
    completed_at: list[float] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)
    stopped: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def now(self) -> float:
        """Seconds since the fixture started (upstream's `faketime`)."""
        return trio.current_time() - self.start

    def jump_to(self, at: float) -> None:
        """Move the clock to `at`; nothing runs until `settle`."""
        self.clock.jump(self.start + at - trio.current_time())

    async def at(self, at: float) -> None:
        """Let everything run, then move the clock to `at` and run again."""
        await settle()
        self.jump_to(at)
        await settle()

    def publish(self, key: str, value: str = "v", *, committed: bool = True) -> int:
        """Publish to the source; returns the journal's head after it."""
        message = {"key": key, "value": value}
        if committed:
            self.pub.publish_committed(TO_SOURCE, message)
        else:
            self.pub.publish_uncommitted(TO_SOURCE, message)
        return self.source.head

    def write_acks(self) -> int:
        """Commit what `pub` published uncommitted (upstream's writeTxnPubACKs)."""
        for journal, ack in self.pub.build_ack_intents().items():
            self.source.append(journal, ack)
        return self.source.head

    def consumed(self) -> list[str]:
        return [what.split(" ", 1)[1] for _, what in self.app.calls if what.startswith("consume")]

    def echoed(self) -> dict[str, str]:
        """ECHO read committed: key → value of every committed echo."""
        content = bytes(self.output.content.get(ECHO, b""))
        decoder = framing_by_content_type(JSON).decoder(pb.JournalSpec(name=ECHO), dict, 0)
        decoder.feed(0, content)
        frames, error = decoder.decode()
        assert error is None
        out: dict[str, str] = {}
        for e in Sequencer().queue_uncommitted(frames.envelopes()):
            if not e.is_ack:  # type: ignore[union-attr]
                out[e.message["key"]] = e.message["value"]  # type: ignore[union-attr]
        return out

    def committed_state(self) -> dict[str, Any]:
        return self.db.committed_state(self.shard.fqn)


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


@pytest.fixture
async def journals() -> LocalJournalClient:
    """Where recovered ACK intents are written: ECHO exists."""
    client = LocalJournalClient(JournalServerCore(MemoryStorage()))
    await apply_journals(client, [upsert(new_journal_spec(ECHO, content_type=JSON))])
    return client


@pytest.fixture
async def start(
    mock_clock: trio.testing.MockClock, journals: LocalJournalClient
) -> AsyncIterator[Any]:
    async with trio.open_nursery() as nursery:

        async def open_fixture(
            checkpoint: pc.Checkpoint | None = None,
            app: EchoApp | None = None,
            *,
            producer: bytes | None = None,
        ) -> Fixture:
            """`producer`: of the source's publisher."""
            send, receive = trio.open_memory_channel[Any](64)
            output = OutputAppender(nursery)
            spec = pc.ShardSpec(
                id="shard",
                sources=[pc.ShardSpecSource(journal=SOURCE.name)],
                min_txn_duration=datetime.timedelta(seconds=MIN),
                max_txn_duration=datetime.timedelta(seconds=MAX),
            )
            shard = FakeShard(nursery, spec, output)  # type: ignore[arg-type]
            shard.journal_client = journals
            db = MemoryDatabase()
            store = HeldStore(db)
            restored = await store.restore_checkpoint(shard)  # type: ignore[arg-type]
            cp = checkpoint if checkpoint is not None else restored
            source = SourceJournal(send)
            f = Fixture(
                clock=mock_clock,
                start=trio.current_time(),
                app=app or EchoApp(),
                db=db,
                store=store,
                output=output,
                source=source,
                pub=Publisher(source, producer=producer),
                shard=shard,
                send=send,
                progress=Progress(),
            )
            read_through = {SOURCE.name: cp.sources[SOURCE.name].read_through} if cp.sources else {}
            f.progress.read_through.update(read_through)
            # No journal client: nothing here outgrows the sequencer's buffer.
            intake = SequencedIntake(
                Sequencer.from_checkpoint(cp),
                None,  # type: ignore[arg-type]
                lambda _: dict,
                read_through,
            )

            def started_commit(txn: Transaction, _: Any, checkpoint: pc.Checkpoint) -> None:
                f.commits.append(copy.copy(txn))
                f.checkpoints.append(checkpoint)

            def signalled() -> None:
                f.progress_signals += 1

            async def run() -> None:
                try:
                    with f.scope:
                        await run_transactions(
                            shard=shard,  # type: ignore[arg-type]
                            app=f.app,  # type: ignore[arg-type]
                            store=store,
                            publisher=Publisher(output),
                            appender=output,
                            intake=intake,
                            events=receive,
                            events_in=send,
                            checkpoint=cp,
                            progress=f.progress,
                            progress_changed=signalled,
                            hooks=Hooks(
                                on_started_commit=started_commit,
                                on_complete=lambda c, p: f.completed_at.append(f.now),
                            ),
                            task_nursery=nursery,
                        )
                except Exception as exc:
                    f.error.append(exc)
                finally:
                    f.stopped.set()

            nursery.start_soon(run)
            await settle()
            return f

        yield open_fixture
        nursery.cancel_scope.cancel()


async def prior_committing(f: Fixture) -> tuple[OpFuture[None], OpFuture[None]]:
    """Run a prior transaction (one message, key "prior") up to its commit,
    with the commit and its ACK to ECHO held. Afterwards the clock reads 0
    again: the prior started to commit "at 0", as upstream's fixture."""
    Publisher(f.source).publish_committed(TO_SOURCE, {"key": "prior", "value": "v"})
    await settle()  # Consumed: its echo is written.
    commit, ack = f.store.hold_next_commit(), f.output.hold_next(ECHO)
    await f.at(MIN)
    assert len(f.commits) == 1 and f.app.calls[-1][1] == "finished"
    f.start = trio.current_time()
    f.completed_at.clear()  # The recovered checkpoint's (empty) ACKs.
    return commit, ack


def release(gate: OpFuture[None]) -> None:
    gate.resolve(None)


async def test_txn_prior_syncs_then_min_dur_elapses(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    """The prior completes (commit, then ACK: progress is reported), then a
    transaction runs min_duration, consumes what is ready, and commits on a
    stall."""
    f: Fixture = await start()
    commit, ack = await prior_committing(f)
    signals = f.progress_signals

    # The prior's store commit resolves: not complete until its ACK is written.
    await f.at(0.5)
    release(commit)
    await settle()
    assert f.db.commits == 1 and not f.completed_at
    # Its ACK is written: it completed, and progress says so.
    await f.at(1.0)
    release(ack)
    await settle()
    assert f.completed_at == [1.0] and f.progress_signals > signals
    assert (
        f.progress.read_through[SOURCE.name] == f.checkpoints[0].sources[SOURCE.name].read_through
    )
    assert f.progress.publish_at[ECHO] == len(f.output.content[ECHO])

    # A first message opens the transaction at 2s; min_duration holds it open.
    await f.at(2.0)
    f.publish("key", "1")
    await settle()
    f.publish("key", "2")
    await settle()
    assert f.consumed()[-2:] == ["key", "key"] and len(f.commits) == 1
    # min_duration elapses with a message ready: it is consumed, then the
    # transaction stalls and starts to commit.
    f.jump_to(2.0 + MIN)
    f.publish("key", "3")
    await settle()

    txn = f.commits[-1]
    assert (txn.consumed, txn.min_elapsed, txn.max_elapsed) == (3, True, False)
    assert (txn.began_at - f.start, txn.stalled_at - f.start) == (2.0, 2.0 + MIN)
    assert txn.commit_at == txn.stalled_at
    assert f.checkpoints[-1].ack_intents[ECHO]
    assert f.checkpoints[-1].sources[SOURCE.name].read_through == f.source.head
    await settle()
    assert f.committed_state() == {"prior": "v", "key": "3"}
    assert f.echoed() == {"prior": "v", "key": "3"}


async def test_txn_min_dur_elapses_then_prior_syncs(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    """min_duration passes while the prior still commits: the transaction goes
    on reading, and commits once the prior's commit and ACK both resolved."""
    f: Fixture = await start()
    commit, ack = await prior_committing(f)

    f.publish("key", "1")  # Opens the transaction at 0.
    await f.at(MIN)
    f.publish("key", "2")
    await settle()
    assert f.consumed()[-1] == "key" and len(f.commits) == 1  # The prior blocks the commit.

    await f.at(MIN + 1)
    release(commit)
    await settle()
    assert f.db.commits == 1 and len(f.commits) == 1  # Still blocked, on the ACK.

    f.jump_to(MIN + 2)
    release(ack)
    f.publish("key", "3")
    await settle()

    assert f.completed_at[-1] == MIN + 2
    txn = f.commits[-1]
    assert (txn.consumed, txn.min_elapsed, txn.max_elapsed) == (3, True, False)
    assert (txn.began_at - f.start, txn.stalled_at - f.start) == (0.0, MIN + 2)
    assert txn.commit_at == txn.stalled_at
    await settle()
    assert f.committed_state() == {"prior": "v", "key": "3"}
    assert f.echoed() == {"prior": "v", "key": "3"}


async def test_txn_max_dur_elapses_then_prior_syncs(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    """max_duration passes while the prior still commits: the transaction
    stalls, reads nothing more, and commits when the prior completes."""
    f: Fixture = await start()
    commit, ack = await prior_committing(f)

    f.publish("key", "1")
    await f.at(MIN)
    f.publish("key", "2")
    await f.at(MAX)
    # Stalled: max_duration passed with the prior still committing. Further
    # messages are not read by this transaction.
    f.publish("key", "not read")
    await settle()
    assert f.consumed()[-1] == "key" and len(f.consumed()) == 3

    await f.at(MAX + 1)
    release(commit)
    await settle()
    assert len(f.commits) == 1
    await f.at(MAX + 2)
    release(ack)
    await settle()

    txn = f.commits[1]
    assert (txn.consumed, txn.min_elapsed, txn.max_elapsed) == (2, True, True)
    assert txn.began_at - f.start == 0.0
    assert txn.stalled_at - f.start == MAX
    assert txn.commit_at - f.start == MAX + 2
    assert f.checkpoints[1].sources[SOURCE.name].read_through < f.source.head
    await settle()
    assert f.committed_state() == {"prior": "v", "key": "2"}
    # The message it did not read opens the next transaction.
    await f.at(MAX + 2 + MIN)
    assert len(f.commits) == 3 and f.commits[2].consumed == 1
    assert f.committed_state() == {"prior": "v", "key": "not read"}


async def test_txn_doesnt_start_until_first_ack(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    """Uncommitted messages begin no transaction; their ACK does. Pending
    messages read after min_duration hold the commit for their ACK."""
    f: Fixture = await start()
    for key in ("A", "B", "C"):
        f.publish(key, committed=False)
    await settle()
    assert not f.app.calls  # Nothing committed: no transaction began.

    await f.at(1.0)
    f.write_acks()
    await settle()
    assert [what for _, what in f.app.calls] == ["begin", "consume A", "consume B", "consume C"]
    assert f.app.calls[0][0] - f.start == 1.0

    # min_duration elapses as another uncommitted message is read: the
    # transaction waits for its ACK rather than commit.
    f.jump_to(1.0 + MIN)
    f.publish("D", committed=False)
    await settle()
    assert not f.commits

    await f.at(1.0 + MIN + 1)
    f.write_acks()
    await settle()
    txn = f.commits[0]
    assert txn.consumed == 6  # Four messages and two ACKs.
    assert (txn.began_at - f.start, txn.commit_at - f.start) == (1.0, 1.0 + MIN + 1)
    assert f.checkpoints[0].ack_intents[ECHO]
    await settle()
    assert f.committed_state() == {"A": "v", "B": "v", "C": "v", "D": "v"}
    assert f.echoed() == {"A": "v", "B": "v", "C": "v", "D": "v"}


async def test_wait_for_ack_does_not_outlast_max_duration(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    f: Fixture = await start()
    f.publish("A")
    f.publish("B", committed=False)  # Its ACK never comes.
    await f.at(MAX - 0.5)
    assert not f.commits
    await f.at(MAX)
    assert f.commits[0].consumed == 1 and f.commits[0].commit_at - f.start == MAX


def all_duplicates(producer: bytes) -> pc.Checkpoint:
    """A recovered checkpoint under which every message of `producer` in
    the source is a duplicate (its last ACK has the largest clock)."""
    state = pc.CheckpointProducerState(last_ack=(1 << 64) - 2, begin=-1)
    source = pc.CheckpointSource(
        read_through=0, producers=[pc.CheckpointSourceProducerEntry(id=producer, state=state)]
    )
    return pc.Checkpoint(sources={SOURCE.name: source})


def recovered_ack(producer: bytes = bytes.fromhex("0a0b0c0d0e0f")) -> bytes:
    """An ACK intent for ECHO, as a recovered checkpoint holds one."""
    ack: dict[str, Any] = {"_meta": {"ack": True}}
    set_uuid(ack, build_uuid(producer, 1 << 40, ACK_TXN))
    return framing_by_content_type(JSON).marshal(ack)


async def test_idle_txn_updates_progress_on_duplicate_acks(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    """Duplicates begin no transaction, yet their offsets become progress:
    with the prior, while it completes, and at once when idle."""
    producer = bytes.fromhex("0a0b0c0d0e0f")
    f: Fixture = await start(all_duplicates(producer), producer=producer)
    commit, ack = await prior_committing(f)

    # A duplicate is read: it begins no transaction, and its progress waits
    # for the prior's (whose committed checkpoint is left alone).
    head = f.publish("key", "1")
    await settle()
    assert [what for _, what in f.app.calls][-1] == "finished"  # The prior's.
    prior_read_through = f.checkpoints[0].sources[SOURCE.name].read_through
    assert prior_read_through < head
    assert f.progress.read_through[SOURCE.name] < head
    signals = f.progress_signals

    release(commit)
    release(ack)
    await settle()
    assert f.completed_at == [0.0]
    assert f.progress.read_through[SOURCE.name] == head
    assert f.progress_signals == signals + 1
    assert f.db.committed_checkpoint(f.shard.fqn).sources[SOURCE.name].read_through == (
        prior_read_through
    )

    # Another duplicate, with nothing completing: progress moves at once.
    head = f.publish("key", "1")
    await settle()
    assert f.progress.read_through[SOURCE.name] == head
    assert f.progress_signals == signals + 2
    assert f.consumed() == ["prior"] and len(f.commits) == 1


async def test_reappended_messages_read_while_idle_move_progress_to_the_new_head(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    """Issue 17's reproduction: a Stat for the head after re-appended bytes
    was never answered, as no transaction reported reading them."""
    f: Fixture = await start()
    end = f.publish("key", "1")
    await f.at(MIN)
    assert f.progress.read_through[SOURCE.name] == end and f.db.commits == 1

    f.source.reappend(0, end)
    await settle()
    assert f.progress.read_through[SOURCE.name] == f.source.head == 2 * end
    assert f.consumed() == ["key"] and f.db.commits == 1


async def test_duplicates_read_inside_a_transaction_are_reported_by_its_commit(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    f: Fixture = await start()
    end = f.publish("key", "1")
    await settle()
    f.source.reappend(0, end)
    await settle()
    assert f.progress.read_through.get(SOURCE.name, 0) < end  # Not before the commit...
    await f.at(MIN)
    assert f.checkpoints[0].sources[SOURCE.name].read_through == 2 * end
    assert f.progress.read_through[SOURCE.name] == 2 * end  # ...which reports it.
    assert f.consumed() == ["key"]


async def test_max_duration_passing_within_a_batch_closes_the_transaction_after_it(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    f: Fixture = await start(app=EchoApp(consume_delay=MAX * 0.6))
    f.clock.autojump_threshold = 0
    f.publish("one", "1", committed=False)
    f.publish("two", "2", committed=False)
    ack_end = f.write_acks()  # Commits [one, two, ACK]: one batch.
    await trio.sleep(MAX * 0.9)
    f.publish("three", "3")
    await trio.sleep(MAX * 3)

    first = f.commits[0]
    assert first.consumed == 3 and first.max_elapsed
    assert f.checkpoints[0].sources[SOURCE.name].read_through == ack_end
    assert f.commits[1].consumed == 1
    assert f.consumed() == ["one", "two", "three"]
    assert f.committed_state() == {"one": "1", "two": "2", "three": "3"}


async def test_run_txns_acks_recovered_checkpoint(
    start: Any,
    mock_clock: trio.testing.MockClock,
    journals: LocalJournalClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The recovered checkpoint's ACK intents are written at start; one of a
    journal that no longer exists is discarded with a warning."""
    ack = recovered_ack()
    f: Fixture = await start(
        pc.Checkpoint(ack_intents={ECHO: ack, "does/not/exist": recovered_ack()})
    )
    assert await read_journal(journals, ECHO) == ack
    assert "discarding recovered ACK intent of journal does/not/exist" in caplog.text
    assert f.completed_at == [0.0] and f.progress.publish_at == {ECHO: len(ack)}
    # The shard goes on.
    f.publish("key")
    await f.at(MIN)
    assert not f.error and f.committed_state() == {"key": "v"}


@pytest.mark.parametrize(
    ("callback", "calls"),
    [
        ("finalize", ["begin", "consume key", "finalize", "finished"]),
        ("consume", ["begin", "consume key", "finished"]),
        # A transaction that did not begin is not finished.
        ("begin", ["begin"]),
    ],
)
async def test_run_txns_app_error_cases(
    start: Any, mock_clock: trio.testing.MockClock, callback: str, calls: list[str]
) -> None:
    """An error of any callback fails the loop; `finished_txn` is called (with
    the error) for a transaction whose `begin_txn` returned, and only then."""
    app = EchoApp()
    error = ValueError(f"{callback} error")
    setattr(app, f"{callback}_error", error)
    f: Fixture = await start(app=app)
    f.publish("key", "val")
    await f.at(MIN)
    assert f.stopped.is_set() and f.error == [error]
    assert [what for _, what in app.calls] == calls
    if "finished" in calls:
        (future,) = app.finished
        assert future.done() and future.error() is error
    assert f.db.commits == 0


async def test_begin_and_finished_bracket_every_transaction(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    f: Fixture = await start()
    gate = f.store.hold_next_commit()
    f.publish("a")
    f.publish("b")
    await f.at(MIN)
    # The first transaction started to commit; its future is the commit's.
    first = f.app.finished[0]
    assert not first.done()
    f.publish("c")
    await f.at(MIN + 0.5)
    release(gate)
    await f.at(2 * MIN + 0.5)
    assert first.done() and first.error() is None
    assert [what for _, what in f.app.calls] == [
        "begin",
        "consume a",
        "consume b",
        "finalize",
        "finished",
        "begin",
        "consume c",
        "finalize",
        "finished",
    ]
    assert f.committed_state() == {"a": "v", "b": "v", "c": "v"}


async def test_the_timer_starts_when_begin_txn_returns(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    """begin_txn may block (on a semaphore, say); the transaction's
    durations count from when it returns."""
    f: Fixture = await start(app=EchoApp(begin_delay=2.0))
    f.publish("key")
    await f.at(2.0)
    assert [what for _, what in f.app.calls] == ["begin", "consume key"]
    await f.at(2.0 + MIN)
    txn = f.commits[0]
    assert (txn.began_at - f.start, txn.commit_at - f.start) == (2.0, 2.0 + MIN)


async def test_a_read_failure_finishes_the_open_transaction(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    f: Fixture = await start()
    f.publish("key")
    await settle()
    failure = ValueError("journal source/a, offset 99: malformed message")
    f.send.send_nowait(ReadFailed(failure))
    await settle()
    assert f.error == [failure]
    assert f.app.finished[0].error() is failure


async def test_a_prior_commit_failing_finishes_the_open_transaction(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    f: Fixture = await start()
    commit, _ = await prior_committing(f)
    f.publish("key", "1")
    await settle()
    commit.fail(OSError("disk full"))
    await settle()
    assert isinstance(f.error[0], CommitFailed) and "disk full" in str(f.error[0])
    assert f.app.finished[-1].error() is f.error[0]
    assert [what for _, what in f.app.calls][-2:] == ["consume key", "finished"]


async def test_a_commit_refused_at_once_fails_the_loop_before_anything_else(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    """A store whose `start_commit` returns an already failed future (it is
    fenced, say) fails the loop there: no ACK is queued behind it and no
    message of a next transaction is consumed (Gazette's txnStartCommit)."""
    f: Fixture = await start()
    f.store.refuse = RuntimeError("fenced")
    f.publish("a")
    await f.at(MIN)
    f.publish("b")
    await settle()
    assert isinstance(f.error[0], CommitFailed) and "fenced" in str(f.error[0])
    assert [what for _, what in f.app.calls] == ["begin", "consume a", "finalize", "finished"]
    assert f.app.finished[0].error() is f.error[0]
    assert not f.commits and f.echoed() == {}


async def test_a_shard_stopping_mid_transaction_finishes_it_as_aborted(
    start: Any, mock_clock: trio.testing.MockClock
) -> None:
    f: Fixture = await start()
    f.publish("key")
    await settle()
    f.scope.cancel()
    await settle()
    assert [what for _, what in f.app.calls] == ["begin", "consume key", "finished"]
    error = f.app.finished[0].error()
    assert isinstance(error, TransactionAborted) and not f.error
