"""The Trio driver of consumer transactions.

`run_transactions` is the loop a primary shard runs: it feeds the pure
`transaction` machine with events (a batch of read messages is ready, the
deadline passed, the predecessor completed, no message is ready) and carries
out its decisions: consume messages through the application, and commit.

Committing orders the transaction's effects with barriers, as Gazette does:

1. the transaction may not start to commit until its predecessor completed:
   its store commit resolved and all its ACK appends were written;
2. the store commit waits on every journal append the transaction made
   (`wait_for` is the append service's pending operations at commit time);
3. ACK intents are appended only after the store commit (with the
   checkpoint that records them) resolved: each ACK append depends on it.

Transactions are pipelined: once a commit has started, the next transaction
consumes messages while it completes in the background.

Per-transaction state (`scratch.PerTransaction`) of the shard is dropped
when each transaction ends (its commit started) or fails.

A BeginFinisher application hears of every transaction that began (its
`begin_txn` returned): `finished_txn` gets the commit's future once the
commit started, or a failed future if the transaction failed first (the
shard then fails with that error; a stopping shard gives
`TransactionAborted`). A `begin_txn` that raised is not finished.

Progress (`Progress.read_through`) is what completed transactions read
through, and also what the shard read while no transaction was open:
duplicates and messages of still-open producer transactions begin none, yet
a `Stat` waiting on their offsets must return. Such reads are reported at
once when idle, or with the predecessor when it completes.

What a message is, how read-uncommitted messages become committed ones, and
which offsets and producer states go in the checkpoint belong to the
`MessageIntake` the shard provides; the driver only counts and orders. It
owns no tasks beyond one short-lived watcher per transaction and, at start,
one writer per recovered ACK intent, started in the caller's nursery.

The recovered checkpoint's ACK intents are re-written first, straight to
their journals (not through the append service): an intent naming a journal
that no longer exists is discarded with a warning, as Gazette does, rather
than failing the shard at every start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from .. import aio
from ..broker.appender import append
from ..broker.client import JournalClient
from ..broker.errors import JournalError
from ..broker.reader import Backoff, is_retryable
from ..errors import ConsumerError
from ..message.frames import Committed
from ..message.publisher import Publisher
from ..opfuture import OpFuture
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from .contracts import Application, BatchConsumer, BeginFinisher, Shard, Store
from .scratch import end_transaction
from .transaction import (
    ReadProgress,
    Step,
    Timings,
    Transaction,
    decide,
    on_commit,
    on_consumed,
    on_prev_done,
    on_read_nothing,
    on_time,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReadFailed:
    """A source reader failed (e.g. a malformed message); the shard fails."""

    error: BaseException


class _Wake:
    """Sent by a watcher when the predecessor transaction completes."""


class MessageIntake(Protocol):
    """Turns batches of read-uncommitted envelopes into committed ones.

    Implemented over `gazette_trio.message`'s sequencer by the shard; tests
    may provide simpler ones.
    """

    async def committed(self, batch: Sequence[Any]) -> Sequence[Any]:
        """Queue `batch` (read-uncommitted, in read order) and return the
        envelopes that are now committed, in order. May read journals to
        replay messages that fell out of the sequencer's buffer."""
        ...

    def has_pending(self) -> bool:
        """Uncommitted messages are held, awaiting their ACK."""
        ...

    @property
    def read_through(self) -> Mapping[str, int]:
        """Each source's offset through which batches were queued."""
        ...

    def checkpoint_sources(self) -> dict[str, pc.CheckpointSource]:
        """Read-through offsets and producer states of every source, as of
        everything queued so far."""
        ...


class TxnAppender(Protocol):
    """What the driver needs of the shard's append service (a test may
    provide a simpler one)."""

    def append(
        self, journal: str, content: bytes, *, depends_on: OpFuture[Any] | None = None
    ) -> OpFuture[pb.AppendResponse]: ...

    def pending(self) -> set[OpFuture[Any]]: ...


@dataclass
class Completion:
    """A transaction that has started to commit, and what completes it."""

    commit: OpFuture[None]
    acks: dict[str, OpFuture[pb.AppendResponse]] = field(default_factory=dict)
    read_through: dict[str, int] = field(default_factory=dict)

    def done(self) -> bool:
        return self.commit.done() and all(a.done() for a in self.acks.values())

    async def wait(self) -> None:
        """Wait for the commit, then every ACK; raise the first failure."""
        try:
            await self.commit
        except Exception as exc:
            raise CommitFailed(f"store commit failed: {exc}") from exc
        for journal, ack in self.acks.items():
            try:
                await ack
            except Exception as exc:
                raise CommitFailed(f"writing ACK to journal {journal} failed: {exc}") from exc


class CommitFailed(ConsumerError):
    """A transaction's store commit or one of its ACK appends failed."""


@dataclass
class Progress:
    """What completed transactions have read and published through, and
    what the shard read while no transaction was open."""

    read_through: dict[str, int] = field(default_factory=dict)
    publish_at: dict[str, int] = field(default_factory=dict)
    transactions: int = 0


@dataclass
class Hooks:
    """Observers of the driver, for metrics and tests. All optional."""

    on_complete: Callable[[Completion, Progress], None] | None = None
    on_started_commit: Callable[[Transaction, Timings, pc.Checkpoint], None] | None = None


async def run_transactions(
    *,
    shard: Shard,
    app: Application,
    store: Store,
    publisher: Publisher,
    appender: TxnAppender,
    intake: MessageIntake,
    events: trio.MemoryReceiveChannel[Any],
    events_in: trio.MemorySendChannel[Any],
    checkpoint: pc.Checkpoint,
    progress: Progress,
    progress_changed: Callable[[], None] = lambda: None,
    hooks: Hooks | None = None,
    task_nursery: trio.Nursery,
) -> None:
    """Run transactions until an error (raised) or cancellation.

    `events` carries lists of read-uncommitted envelopes from the source
    readers, or `ReadFailed`; `events_in` is a send side of the same channel
    the driver uses to wake itself when a predecessor completes.
    """
    driver = _Driver(
        shard=shard,
        app=app,
        store=store,
        publisher=publisher,
        appender=appender,
        intake=intake,
        events=events,
        events_in=events_in,
        progress=progress,
        progress_changed=progress_changed,
        hooks=hooks or Hooks(),
        task_nursery=task_nursery,
    )
    await driver.run(checkpoint)


@dataclass
class _Driver:
    """What stays the same across a shard's transactions."""

    shard: Shard
    app: Application
    store: Store
    publisher: Publisher
    appender: TxnAppender
    intake: MessageIntake
    events: trio.MemoryReceiveChannel[Any]
    events_in: trio.MemorySendChannel[Any]
    progress: Progress
    progress_changed: Callable[[], None]
    hooks: Hooks
    task_nursery: trio.Nursery
    # The application's optional roles, looked up once.
    begin_finisher: BeginFinisher | None = field(init=False)
    batch_consumer: BatchConsumer | None = field(init=False)

    def __post_init__(self) -> None:
        app = self.app
        self.begin_finisher = app if isinstance(app, BeginFinisher) else None
        self.batch_consumer = app if isinstance(app, BatchConsumer) else None

    async def run(self, checkpoint: pc.Checkpoint) -> None:
        shard, store, begin_finisher = self.shard, self.store, self.begin_finisher
        spec = shard.spec

        # Re-acknowledge what the recovered checkpoint's transaction published:
        # if the last member died after its commit and before its ACKs, they are
        # written now, so downstream readers eventually see them.
        acks: dict[str, OpFuture[pb.AppendResponse]] = {}
        for journal, ack in sorted(checkpoint.ack_intents.items()):
            acks[journal] = OpFuture()
            self.task_nursery.start_soon(
                _write_recovered_ack, shard.journal_client, journal, ack, acks[journal]
            )
        prev = Completion(
            commit=OpFuture.resolved(None),
            acks=acks,
            # Where reading starts (a source's min_offset may be past the
            # checkpoint's offset): progress never moves back to below it.
            read_through=dict(self.intake.read_through),
        )

        def duration(value: Any, default: float) -> float:
            return value.total_seconds() if value is not None else default

        # A batch taken off the channel but not yet consumed. It outlives the
        # transaction: one received just as max_duration passes belongs to the
        # next transaction, and dropping it would lose its messages.
        batch: Sequence[Any] | None = None
        while True:
            txn = Transaction(
                min_duration=duration(spec.min_txn_duration, 0.0),
                max_duration=duration(spec.max_txn_duration, 1.0),
                wait_for_ack=not spec.disable_wait_for_ack,
                prev_done=False,
            )
            try:
                batch = await self._consume_until_commit(txn, prev, batch)
                prev = await self._start_commit(txn)
            except BaseException as exc:
                end_transaction(shard)
                # Once a transaction began, the application hears how it
                # ended, however it ended (Gazette calls FinishedTxn on any
                # error after BeginTxn), so that what `begin_txn` took (a
                # semaphore, say) is given back.
                if begin_finisher is not None and txn.began:
                    _finish_failed(begin_finisher, shard, store, exc)
                raise
            end_transaction(shard)
            if begin_finisher is not None:
                begin_finisher.finished_txn(shard, store, prev.commit)

    async def _consume_until_commit(
        self, txn: Transaction, prev: Completion, batch: Sequence[Any] | None
    ) -> Sequence[Any] | None:
        """Run `txn` until it decides to commit. Returns the batch held over
        for the next transaction, if one was taken but not consumed."""
        shard, store, publisher, intake, events = (
            self.shard,
            self.store,
            self.publisher,
            self.intake,
            self.events,
        )
        app, begin_finisher, batch_consumer = self.app, self.begin_finisher, self.batch_consumer
        watching = False
        while True:
            now = trio.current_time()
            on_time(txn, now)
            if not txn.prev_done and prev.done():
                await prev.wait()  # raises if it failed
                _complete(prev, self.progress, self.hooks)
                self.progress_changed()
                on_prev_done(txn)
            if batch is None and txn.reading:
                batch = _poll(events)
            step = decide(txn, message_ready=batch is not None, has_pending=intake.has_pending())

            if step is Step.CONSUME:
                assert batch is not None
                committed = await intake.committed(batch)
                batch = None
                count = len(committed)
                if not count:
                    # Duplicates, or messages of producer transactions still
                    # open: nothing to consume, but the shard read further.
                    where = on_read_nothing(txn)
                    if where is ReadProgress.NOW:
                        self.progress.read_through.update(intake.read_through)
                        self.progress_changed()
                    elif where is ReadProgress.WITH_PREDECESSOR:
                        prev.read_through.update(intake.read_through)
                    continue
                if begin_finisher is not None and not txn.began:
                    await begin_finisher.begin_txn(shard, store)
                # Bookkeeping is per batch: reading the clock once per
                # message cost ~10% of a small message's whole path.
                on_consumed(txn, trio.current_time(), count)
                # An ACK commits what came before it; it carries nothing for
                # the application (Gazette hands it over; we don't).
                if batch_consumer is not None:
                    # A Committed batch builds envelopes only if iterated:
                    # `batch.messages()` hands over the messages alone.
                    content: Sequence[Any] = (
                        committed.without_acks()
                        if isinstance(committed, Committed)
                        else [e for e in committed if not getattr(e, "is_ack", False)]
                    )
                    if content:
                        await batch_consumer.consume_messages(shard, store, content, publisher)
                    continue
                envelopes = (
                    committed.content()
                    if isinstance(committed, Committed)
                    else [e for e in committed if not getattr(e, "is_ack", False)]
                )
                consume = app.consume_message
                for envelope in envelopes:
                    await consume(shard, store, envelope, publisher)
                continue

            if step is Step.COMMIT:
                return batch

            # WAIT: for the predecessor only, once this transaction stopped reading.
            if not txn.reading:
                await prev.wait()
                continue
            if not txn.prev_done and not watching:
                watching = True
                self.task_nursery.start_soon(_watch, prev, self.events_in.clone())
            with trio.move_on_at(txn.deadline):
                item = await events.receive()
                batch = _accept(item)

    async def _start_commit(self, txn: Transaction) -> Completion:
        """Finalize `txn`, start its store commit, and queue its ACKs behind
        that commit. Returns what completes the transaction."""
        shard, store, publisher, appender = self.shard, self.store, self.publisher, self.appender
        on_commit(txn, trio.current_time())
        await self.app.finalize_txn(shard, store, publisher)
        checkpoint = pc.Checkpoint(
            sources=self.intake.checkpoint_sources(),
            ack_intents=publisher.build_ack_intents(),
        )
        # Barrier 2: the commit waits on every append this transaction made.
        wait_for = appender.pending()
        commit = store.start_commit(shard, checkpoint, wait_for)
        error = commit.error() if commit.done() else None
        if error is not None:
            # Refused at once (a fenced store, say): fail now, before the next
            # transaction hands the application more messages.
            raise CommitFailed(f"store commit failed: {error}") from error
        if self.hooks.on_started_commit is not None:
            self.hooks.on_started_commit(txn, Timings.of(txn), checkpoint)
        # Barrier 3: ACKs are written only once the checkpoint that records
        # them has committed.
        return Completion(
            commit=commit,
            acks={
                journal: appender.append(journal, ack, depends_on=commit)
                for journal, ack in sorted(checkpoint.ack_intents.items())
            },
            read_through={j: s.read_through for j, s in checkpoint.sources.items()},
        )


async def _write_recovered_ack(
    client: JournalClient, journal: str, ack: bytes, done: OpFuture[pb.AppendResponse]
) -> None:
    """Append a recovered ACK intent straight to its journal, retrying what
    may pass, and resolve `done` with the outcome.

    Not through the append service: a journal deleted since the checkpoint
    was written answers JOURNAL_NOT_FOUND, and the service would fail that
    journal for the rest of the shard's life and every commit with it, at
    every start. Gazette discards such an intent with a warning; so does
    this (with an empty response, which reports no publish progress).
    """
    backoff = Backoff()
    attempt = 0
    while True:
        try:
            response = await append(client, journal, ack)
        except JournalError as exc:
            if exc.status == pb.Status.JOURNAL_NOT_FOUND:
                log.warning(
                    "discarding recovered ACK intent of journal %s: it does not exist", journal
                )
                done.resolve(pb.AppendResponse())
                return
            error: Exception = exc
        except aio.RpcError as exc:
            error = exc
        except Exception as exc:
            done.fail(exc)
            return
        else:
            done.resolve(response)
            return
        if not is_retryable(error):
            done.fail(error)
            return
        attempt += 1
        await trio.sleep(backoff.delay(attempt))


class TransactionAborted(ConsumerError):
    """The shard stopped (was cancelled) before the transaction started to
    commit: what a BeginFinisher's `finished_txn` future fails with then."""


def _finish_failed(
    begin_finisher: BeginFinisher, shard: Shard, store: Store, error: BaseException
) -> None:
    """Tell the application its transaction failed with `error`."""
    if not isinstance(error, Exception):
        # Cancellation (or an interpreter exit) must not be re-raised from a
        # future some task of the application awaits.
        aborted = TransactionAborted("the shard stopped before the transaction committed")
        aborted.__cause__ = error
        error = aborted
    try:
        begin_finisher.finished_txn(shard, store, OpFuture.failed(error))
    except Exception:
        # The shard fails with the transaction's own error, not this one.
        log.exception("shard %s: finished_txn raised on a failed transaction", shard.id)


def _poll(events: trio.MemoryReceiveChannel[Any]) -> Sequence[Any] | None:
    """A ready batch, without blocking; None when nothing is ready (a stall)."""
    while True:
        try:
            item = events.receive_nowait()
        except trio.WouldBlock:
            return None
        batch = _accept(item)
        if batch is not None:
            return batch


def _accept(item: Any) -> Sequence[Any] | None:
    if isinstance(item, _Wake):
        # Wake-up only: the loop checks the predecessor itself.
        return None
    if isinstance(item, ReadFailed):
        raise item.error
    return item  # type: ignore[no-any-return]


async def _watch(prev: Completion, wake: trio.MemorySendChannel[Any]) -> None:
    """Wake the driver when `prev` completes (or fails: the driver raises)."""
    async with wake:
        try:
            await prev.wait()
        except Exception:
            pass
        try:
            await wake.send(_Wake())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _complete(prev: Completion, progress: Progress, hooks: Hooks) -> None:
    progress.read_through.update(prev.read_through)
    for journal, ack in prev.acks.items():
        response = ack.result()
        if response is not None and response.commit is not None:
            progress.publish_at[journal] = response.commit.end
    progress.transactions += 1
    if hooks.on_complete is not None:
        hooks.on_complete(prev, progress)
