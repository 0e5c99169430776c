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

What a message is, how read-uncommitted messages become committed ones, and
which offsets and producer states go in the checkpoint belong to the
`MessageIntake` the shard provides; the driver only counts and orders. It
owns no tasks beyond one short-lived watcher per transaction, started in the
caller's nursery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ..message.frames import Committed
from ..opfuture import OpFuture
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from .contracts import Application, BatchConsumer, BeginFinisher, Shard, Store
from .transaction import (
    Step,
    Timings,
    Transaction,
    decide,
    on_commit,
    on_consumed,
    on_prev_done,
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

    def checkpoint_sources(self) -> dict[str, pc.CheckpointSource]:
        """Read-through offsets and producer states of every source, as of
        everything queued so far."""
        ...


class Publisher(Protocol):
    def build_ack_intents(self) -> dict[str, bytes]:
        """Journal → framed ACK messages for what this transaction published."""
        ...


class Appender(Protocol):
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


class CommitFailed(Exception):
    """A transaction's store commit or one of its ACK appends failed."""


@dataclass
class Progress:
    """What completed transactions have read and published through."""

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
    appender: Appender,
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
    hooks = hooks or Hooks()
    spec = shard.spec
    begin_finisher = app if isinstance(app, BeginFinisher) else None
    batch_consumer = app if isinstance(app, BatchConsumer) else None

    # Re-acknowledge what the recovered checkpoint's transaction published:
    # if the last member died after its commit and before its ACKs, they are
    # written now, so downstream readers eventually see them.
    prev = Completion(
        commit=OpFuture.resolved(None),
        acks={j: appender.append(j, ack) for j, ack in sorted(checkpoint.ack_intents.items())},
        read_through={j: s.read_through for j, s in checkpoint.sources.items()},
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
        watching = False

        while True:
            now = trio.current_time()
            on_time(txn, now)
            if not txn.prev_done and prev.done():
                await prev.wait()  # raises if it failed
                _complete(prev, progress, hooks)
                progress_changed()
                on_prev_done(txn)
            if batch is None and txn.reading:
                batch = _poll(events)
            step = decide(txn, message_ready=batch is not None, has_pending=intake.has_pending())

            if step is Step.CONSUME:
                assert batch is not None
                committed = await intake.committed(batch)
                batch = None
                # Bookkeeping is per batch: reading the clock once per
                # message cost ~10% of a small message's whole path.
                if (
                    on_consumed(txn, trio.current_time(), len(committed))
                    and begin_finisher is not None
                ):
                    await begin_finisher.begin_txn(shard, store)
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
                break

            # WAIT: for the predecessor only, once this transaction stopped reading.
            if not txn.reading:
                await prev.wait()
                continue
            if not txn.prev_done and not watching:
                watching = True
                task_nursery.start_soon(_watch, prev, events_in.clone())
            with trio.move_on_at(txn.deadline):
                item = await events.receive()
                batch = _accept(item)

        # Commit.
        on_commit(txn, trio.current_time())
        try:
            await app.finalize_txn(shard, store, publisher)
            checkpoint = pc.Checkpoint(
                sources=intake.checkpoint_sources(),
                ack_intents=publisher.build_ack_intents(),
            )
            # Barrier 2: the commit waits on every append this transaction made.
            wait_for = appender.pending()
            commit = store.start_commit(shard, checkpoint, wait_for)
        except BaseException as exc:
            if begin_finisher is not None and txn.consumed:
                begin_finisher.finished_txn(shard, store, OpFuture.failed(exc))
            raise
        if begin_finisher is not None:
            begin_finisher.finished_txn(shard, store, commit)
        if hooks.on_started_commit is not None:
            hooks.on_started_commit(txn, Timings.of(txn), checkpoint)
        # Barrier 3: ACKs are written only once the checkpoint that records
        # them has committed.
        prev = Completion(
            commit=commit,
            acks={
                journal: appender.append(journal, ack, depends_on=commit)
                for journal, ack in sorted(checkpoint.ack_intents.items())
            },
            read_through={j: s.read_through for j, s in checkpoint.sources.items()},
        )


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
