"""The consumer transaction as a state machine: when to read, when to commit.

A shard processes messages in pipelined transactions. A transaction begins
with its first consumed message and ends by starting to commit; the next one
begins at once, while its predecessor's commit and acknowledgements are
still in flight. Gazette's rules for closing a transaction, all encoded here:

- it runs at least `min_duration` after its first message, and stops reading
  once `max_duration` has passed;
- it may not start to commit before its predecessor has fully completed (the
  store commit resolved and every ACK append written): this barrier is the
  only thing that can hold back ready messages, and only once
  `max_duration` has passed (the transaction is then "stalled");
- within those bounds it closes on a *stall*: no decoded message is ready
  without blocking;
- unless `disable_wait_for_ack` is set, it stays open (until `max_duration`)
  while the sequencer holds uncommitted messages that began in it, hoping
  their ACK arrives soon, which trades a little local latency for much less
  end-to-end latency.

A transaction begins with the first committed message handed to the
application, after the application's `begin_txn` returned (which may block,
say on a semaphore): its timer starts then. Reads that commit nothing
(duplicates, messages of still-open producer transactions, rollbacks) begin
no transaction, yet they move the shard's read-through; `on_read_nothing`
says where that progress is reported, so that a `Stat` waiting on it
returns even when no further message ever arrives.

This module is pure: the machine is data plus functions of (state, event),
with time passed in as a number, in the style of h11. It performs no I/O and
reads no clock; `gazette_trio.consumer.driver` feeds it events on Trio and
carries out what it decides. It does not know what a message, a store or a
journal is.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Step(enum.Enum):
    """What the driver should do next."""

    CONSUME = "consume"
    """A message is ready and the transaction may read it."""
    WAIT = "wait"
    """Block until a message is ready (if reading), the deadline passes, or
    the predecessor completes."""
    COMMIT = "commit"
    """Finalize and start to commit this transaction."""


@dataclass(slots=True)
class Transaction:
    """The state of one transaction between its start and its commit."""

    min_duration: float
    max_duration: float
    wait_for_ack: bool = True
    # Whether the predecessor transaction has fully completed (commit and
    # ACKs). The very first transaction of a shard starts with it complete
    # unless recovered ACK intents are still being written.
    prev_done: bool = False

    consumed: int = 0
    began_at: float = math.nan
    min_elapsed: bool = False
    max_elapsed: bool = False
    # When max_duration passed while the predecessor was still completing.
    stalled_at: float = math.nan
    # When the driver decided to commit.
    commit_at: float = math.nan

    @property
    def began(self) -> bool:
        """Whether the transaction has begun: a committed message was consumed.

        Once it has, a BeginFinisher's `finished_txn` is owed, whatever
        happens next."""
        return self.consumed > 0

    @property
    def reading(self) -> bool:
        """Whether the transaction may consume more messages."""
        return not self.max_elapsed

    @property
    def deadline(self) -> float:
        """When the transaction's timer next fires (inf if it is not armed)."""
        if self.consumed == 0 or self.max_elapsed:
            return math.inf
        if not self.min_elapsed:
            return self.began_at + self.min_duration
        return self.began_at + self.max_duration

    def blocks(self, has_pending: bool) -> bool:
        """Whether the transaction must keep waiting rather than commit.

        `has_pending`: the sequencer holds uncommitted messages begun in this
        transaction, whose ACK we would like to see before committing.
        """
        return (
            self.consumed == 0
            or not self.min_elapsed
            or not self.prev_done
            or (self.wait_for_ack and not self.max_elapsed and has_pending)
        )


def on_consumed(txn: Transaction, now: float, count: int = 1) -> bool:
    """`count` committed messages (a batch, read at `now`) are handed to the
    application. Returns True if they are the transaction's first: the timer
    starts at `now`, which for a first batch is when `begin_txn` returned
    (the driver calls it while `txn.began` is still False)."""
    first = txn.consumed == 0
    txn.consumed += count
    if first and count:
        txn.began_at = now
        on_time(txn, now)
        return True
    return False


def on_time(txn: Transaction, now: float) -> None:
    """Advance the timer to `now`: mark min/max durations that have elapsed."""
    if txn.consumed == 0:
        return
    if not txn.min_elapsed and now >= txn.began_at + txn.min_duration:
        txn.min_elapsed = True
    if txn.min_elapsed and not txn.max_elapsed and now >= txn.began_at + txn.max_duration:
        txn.max_elapsed = True
        if not txn.prev_done:
            txn.stalled_at = now


def on_prev_done(txn: Transaction) -> None:
    """The predecessor's commit and ACKs have all resolved successfully."""
    txn.prev_done = True


def decide(txn: Transaction, *, message_ready: bool, has_pending: bool) -> Step:
    """The next step, given whether a message is ready without blocking.

    Time must already be applied with `on_time`. Ready messages are always
    consumed while the transaction is reading: a stall, not a timer, is what
    closes a transaction early.
    """
    if message_ready and txn.reading:
        return Step.CONSUME
    if txn.blocks(has_pending):
        return Step.WAIT
    return Step.COMMIT


class ReadProgress(enum.Enum):
    """Where the read-through of a batch that committed nothing is reported."""

    WITH_COMMIT = "with_commit"
    """The open transaction's checkpoint carries it when it completes."""
    WITH_PREDECESSOR = "with_predecessor"
    """No transaction is open but the predecessor is still completing: its
    progress, reported when it completes, is extended to include the read
    (the checkpoint it committed is not changed)."""
    NOW = "now"
    """The shard is idle: report the read as progress at once."""


def on_read_nothing(txn: Transaction) -> ReadProgress:
    """A batch was read that gave the application nothing to consume."""
    if txn.began:
        return ReadProgress.WITH_COMMIT
    if not txn.prev_done:
        return ReadProgress.WITH_PREDECESSOR
    return ReadProgress.NOW


def on_commit(txn: Transaction, now: float) -> None:
    """The driver starts to commit."""
    txn.commit_at = now
    if math.isnan(txn.stalled_at):
        # Time spent stalled is measured from max_duration to commit; a
        # transaction that never stalled spent none.
        txn.stalled_at = now


@dataclass(frozen=True, slots=True)
class Timings:
    """Phase durations of a completed transaction, for metrics (seconds)."""

    consuming: float  # first message → stall or max_duration
    stalled: float  # waiting on the predecessor after max_duration
    total: float  # first message → commit started

    @staticmethod
    def of(txn: Transaction) -> Timings:
        return Timings(
            consuming=txn.stalled_at - txn.began_at,
            stalled=txn.commit_at - txn.stalled_at,
            total=txn.commit_at - txn.began_at,
        )
