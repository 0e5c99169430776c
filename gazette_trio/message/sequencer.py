"""The sequencer: read-uncommitted frames in, read-committed spans out.

Journals deliver messages at least once, and transactional messages before
anyone knows whether they will commit. The sequencer turns that stream into
exactly-once, committed messages, per (journal, producer), from the flags and
clocks of message UUIDs (see `uuids`):

- an OUTSIDE_TXN message with a clock above the producer's last ACK is
  committed at once; one at or below it is a duplicate and is dropped;
- a CONTINUE_TXN message with a clock above every clock seen in the
  producer's open transaction joins it; otherwise it is a duplicate;
- an ACK_TXN with a clock above the last ACK commits the open transaction's
  messages with clocks up to its own (later ones are dropped: a producer
  that recovered a checkpoint re-sends the ACK that checkpoint recorded,
  and what it had published after it never committed), then the ACK itself;
- an ACK_TXN with a clock at or below the last ACK rolls the open
  transaction back (below: the producer went back to an older checkpoint,
  which weakens exactly-once to at-least-once and is logged as an error);
- a message without a UUID (zero clock) is committed at once.

It takes decoded `Frames` (see `frames`) a run at a time, not a message at
a time, and hands out what committed as spans of them; open transactions
hold spans too. `queue_uncommitted` is the same for envelopes.

Messages of open transactions wait in a buffer bounded by `buffer_size` in
total. When it overflows, the largest open transactions are dropped from it;
when one of those commits, the sequencer cannot hand its messages out from
memory and returns a `Replay` instead: the journal range to re-read, and
`Replay.select` picks the committed messages out of what was read.

Producer states (last ACK clock, offset where the open transaction began)
go into checkpoints as Gazette writes them (`Checkpoint.sources[journal]
.producers`), and a sequencer restored from a checkpoint replays an open
transaction that began before the checkpoint's read-through offset. Old
producers are pruned at checkpoint time.

The sequencer is a pure state machine: no I/O, no clock. Whoever drives it
reads journals, feeds `queue_frames` (or `queue_uncommitted`), fulfils
`Replay`s and checkpoints.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import MessageError
from ..protocol import consumer as pc
from .frames import Frames, Span
from .message import Envelope
from .uuids import ACK_TXN, CONTINUE_TXN, OUTSIDE_TXN, flags_name

__all__ = ["DEFAULT_BUFFER_SIZE", "ProducerState", "Replay", "ReplayError", "Sequencer"]

log = logging.getLogger(__name__)

DEFAULT_BUFFER_SIZE = 1 << 14
"""Messages of open transactions held in memory, across all producers."""

RETAIN_FACTOR = 4
"""Open transactions may keep up to this many times `buffer_size` messages
of the batches they were read in before their spans are copied out."""


@dataclass(frozen=True, slots=True)
class ProducerState:
    """What a checkpoint remembers of one producer of one journal."""

    journal: str
    producer: bytes
    last_ack: int
    """Clock of the producer's last ACK_TXN or OUTSIDE_TXN message."""
    begin: int
    """Offset of the first message of the producer's open transaction, or -1."""


class ReplayError(MessageError, ValueError):
    """Envelopes handed to `Replay.select` are not from the range it asked for."""


class Replay:
    """A committed transaction whose first messages are no longer buffered.

    Re-read `journal` over [`begin`, `end`) and pass the envelopes, in order,
    to `select`, which returns the transaction's committed envelopes: those
    replayed, then those still buffered, then the ACK.
    """

    __slots__ = ("after", "begin", "end", "journal", "producer", "tail", "through")

    def __init__(
        self,
        journal: str,
        begin: int,
        end: int,
        producer: bytes,
        after: int,
        through: int,
        tail: list[Envelope],
    ) -> None:
        self.journal = journal
        self.begin = begin
        self.end = end
        self.producer = producer
        self.after = after
        self.through = through
        self.tail = tail

    def select(self, replayed: Iterable[Envelope]) -> list[Envelope]:
        out: list[Envelope] = []
        last = self.after
        producer = self.producer
        for env in replayed:
            # Worded as Gazette's sequencer words them.
            if env.journal.name != self.journal:
                raise ReplayError(
                    f"replay of wrong journal ({env.journal.name}; expected {self.journal})"
                )
            if env.begin < self.begin:
                raise ReplayError(f"replay has wrong Begin ({env.begin}; expected >= {self.begin})")
            if env.end > self.end:
                raise ReplayError(f"replay has wrong End ({env.end}; expected <= {self.end})")
            if env.producer == producer and last < env.clock <= self.through:
                out.append(env)
                last = env.clock
        for env in self.tail:
            if env.clock > last:
                out.append(env)
                last = env.clock
        return out

    def __repr__(self) -> str:
        return (
            f"Replay({self.journal}@[{self.begin}, {self.end}), producer={self.producer.hex()}, "
            f"clocks=({self.after}, {self.through}], tail={len(self.tail)})"
        )


class _Producer:
    """A producer's sequence in one journal."""

    __slots__ = ("begin", "buffer", "last_ack", "max_clock", "producer")

    def __init__(self, last_ack: int, begin: int = -1, producer: bytes = b"") -> None:
        self.producer = producer
        self.last_ack = last_ack  # Exclusive lower bound of uncommitted clocks.
        self.max_clock = last_ack  # Largest clock in the open transaction.
        # Where the open transaction began, or -1: an offset (restored from a
        # checkpoint), or the frame that opened it, whose offset is worked
        # out only if a checkpoint or a replay needs it (see `_offset`).
        self.begin: _Begin = begin if begin >= 0 else -1
        self.buffer: list[Span] = []  # Its newest messages (all, unless dropped).

    @property
    def count(self) -> int:
        """Messages in `buffer`."""
        return sum([stop - start for _, start, stop in self.buffer])


class Sequencer:
    """Sequences read-uncommitted messages of any number of journals."""

    def __init__(
        self,
        states: Iterable[ProducerState] = (),
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be positive, not {buffer_size}")
        self._limit = buffer_size
        self._buffered = 0
        # Batches that buffered spans point into: how many spans each, and
        # their messages in all (see `_compact`).
        self._retained: dict[Frames, int] = {}
        self._retained_size = 0
        self._retain_limit = RETAIN_FACTOR * buffer_size
        self.compactions = 0
        """How many times buffered spans were copied out of their batches."""
        self.replays = 0
        """`Replay`s returned so far: a caller that sees it unchanged across
        `queue_frames` knows the output holds spans only."""
        self._journals: dict[str, dict[bytes, _Producer]] = {}
        for state in states:
            producers = self._journals.setdefault(state.journal, {})
            producers[state.producer] = _Producer(state.last_ack, state.begin, state.producer)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: pc.Checkpoint, *, buffer_size: int = DEFAULT_BUFFER_SIZE
    ) -> Sequencer:
        """A sequencer resuming from the producer states of `checkpoint`."""
        return cls(producer_states_of(checkpoint), buffer_size=buffer_size)

    @property
    def buffered(self) -> int:
        """Messages of open transactions held in memory."""
        return self._buffered

    def queue_uncommitted(self, envelopes: Iterable[Envelope]) -> list[Envelope | Replay]:
        """Take read-uncommitted envelopes, in read order; return what they
        committed, in commit order: envelopes, and `Replay`s standing for
        committed transactions that must be re-read from the journal.

        The envelope form of `queue_frames`, for envelopes of any journals."""
        out: list[Envelope | Replay] = []
        for batch in Frames.by_journal(list(envelopes)):
            for item in self.queue_frames(batch):
                if isinstance(item, Replay):
                    out.append(item)
                else:
                    frames, start, stop = item
                    out += frames.envelopes(start, stop)
        return out

    def queue_frames(self, frames: Frames) -> list[Span | Replay]:
        """Take one journal's read-uncommitted frames, in read order; return
        what they committed, in commit order: spans of these or earlier
        frames, and `Replay`s for transactions to re-read from the journal.

        Frames are taken a run at a time (see `frames.run_starts`): a run of
        one producer's messages with one flag and rising clocks moves in one
        step, and the per-message rules above come out the same: a run's
        duplicates are the prefix at or below the producer's clock.
        """
        out: list[Span | Replay] = []
        n = len(frames)
        if not n:
            return out
        clocks = frames.clocks
        journal = frames.journal.name
        producers = self._journals.get(journal)
        if producers is None:
            producers = self._journals[journal] = {}
        buffered = self._buffered
        limit = self._limit
        retained = self._retained
        producers_of = frames.producers
        flags_of = frames.flags
        p = _Producer(0)
        for start, stop in frames.runs():
            first = clocks[start]
            if not first:
                out.append((frames, start, stop))  # No UUID: committed, never a duplicate.
                continue
            producer = producers_of[start]
            if p.producer != producer:
                found = producers.get(producer)
                if found is None:
                    found = producers[producer] = _Producer(first - 1, producer=producer)
                p = found

            flags = flags_of[start]
            if flags == CONTINUE_TXN:
                if first <= p.max_clock:  # max_clock >= last_ack always.
                    start = bisect_right(clocks, p.max_clock, start, stop)
                    if start == stop:
                        continue  # Duplicates: dropped.
                if p.begin == -1:
                    p.begin = (frames, start)
                p.buffer.append((frames, start, stop))
                held = retained.get(frames)
                if held is None:
                    retained[frames] = 1
                    self._retained_size += n
                else:
                    retained[frames] = held + 1
                p.max_clock = clocks[stop - 1]
                buffered += stop - start
                if buffered > limit:
                    self._buffered = buffered
                    self._spill()
                    buffered = self._buffered

            elif flags == ACK_TXN:
                for index in range(start, stop):
                    buffered -= self._acknowledge(frames, index, p, out)

            else:
                buffered -= self._outside(frames, start, stop, flags, p, out)
        self._buffered = buffered
        if self._retained_size > self._retain_limit:
            self._compact()
        return out

    def _outside(
        self,
        frames: Frames,
        start: int,
        stop: int,
        flags: int,
        p: _Producer,
        out: list[Span | Replay],
    ) -> int:
        """Take a run of OUTSIDE_TXN messages; returns the messages dropped from the buffer."""
        if flags != OUTSIDE_TXN:
            for index in range(start, stop):
                _log_error(
                    frames,
                    index,
                    p,
                    f"unexpected UUID flags {flags_name(flags)}; treated as OUTSIDE_TXN",
                )
        clocks = frames.clocks
        if clocks[start] <= p.last_ack:
            start = bisect_right(clocks, p.last_ack, start, stop)
            if start == stop:
                return 0  # Duplicates.
        dropped = 0
        if p.begin != -1:
            _log_error(
                frames,
                start,
                p,
                "OUTSIDE_TXN follows uncommitted CONTINUE_TXN messages "
                "(mixed publish_committed and publish_uncommitted to one "
                "journal?); they are rolled back",
            )
            dropped = self._close(p, p.last_ack)
        out.append((frames, start, stop))
        p.last_ack = p.max_clock = clocks[stop - 1]
        return dropped

    def _acknowledge(
        self, frames: Frames, index: int, p: _Producer, out: list[Span | Replay]
    ) -> int:
        """Apply the ACK_TXN at `frames[index]`; returns the messages dropped from the buffer."""
        clock = frames.clocks[index]
        if clock <= p.last_ack:
            if clock < p.last_ack:
                _log_error(
                    frames,
                    index,
                    p,
                    "ACK_TXN clock is below the producer's last ACK "
                    "(it recovered an older checkpoint): exactly-once is "
                    "weakened to at-least-once",
                )
            return self._close(p, clock)  # Rolls the open transaction back.
        buf = p.buffer
        ack = (frames, index, index + 1)
        if p.begin == -1:
            out.append(ack)
        elif buf and _opens(buf[0], p.begin):
            out += buf if p.max_clock <= clock else _through(buf, clock)
            out.append(ack)
        else:
            tail: list[Envelope] = []
            for spilled, start, stop in _through(buf, clock):
                tail += spilled.envelopes(start, stop)
            tail += frames.envelopes(index, index + 1)
            end = _span_begin(buf[0]) if buf else frames.begins[index]
            producer = frames.producers[index]
            begin = _offset(p.begin)
            out.append(Replay(frames.journal.name, begin, end, producer, p.last_ack, clock, tail))
            self.replays += 1
        return self._close(p, clock)

    def has_pending(self, since: Mapping[str, int] | None = None) -> bool:
        """An open transaction exists (that began at or after `since[journal]`,
        if given): more messages, and its ACK, are likely to follow."""
        for journal, producers in self._journals.items():
            floor = since.get(journal, 0) if since is not None else 0
            for p in producers.values():
                if p.begin != -1 and _at_or_after(p.begin, floor):
                    return True
        return False

    def producer_states(self, prune_horizon_ns: int = 0) -> list[ProducerState]:
        """Every producer's state, sorted by journal and producer, after
        forgetting producers of a journal whose clocks are more than
        `prune_horizon_ns` older than the journal's newest ACK (0: keep all)."""
        states: list[ProducerState] = []
        for journal in sorted(self._journals):
            producers = self._journals[journal]
            if prune_horizon_ns > 0 and producers:
                newest = max(p.last_ack for p in producers.values())
                bound = newest - ((prune_horizon_ns // 100) << 4)
                for producer in [k for k, p in producers.items() if p.max_clock < bound]:
                    self._buffered -= self._release(producers.pop(producer).buffer)
            for producer in sorted(producers):
                p = producers[producer]
                states.append(ProducerState(journal, producer, p.last_ack, _offset(p.begin)))
        return states

    def checkpoint(
        self, read_through: Mapping[str, int], prune_horizon_ns: int = 0
    ) -> dict[str, pc.CheckpointSource]:
        """`Checkpoint.sources`: each journal's read-through offset (as the
        caller tracked it: the end of the last envelope it queued) with its
        producer states. Prunes as `producer_states` does."""
        sources = {
            journal: pc.CheckpointSource(read_through=offset, producers=[])
            for journal, offset in read_through.items()
        }
        for state in self.producer_states(prune_horizon_ns):
            source = sources.get(state.journal)
            if source is None:
                raise ValueError(
                    f"journal {state.journal!r} has producer states but no read-through offset"
                )
            source.producers.append(
                pc.CheckpointSourceProducerEntry(
                    id=state.producer,
                    state=pc.CheckpointProducerState(last_ack=state.last_ack, begin=state.begin),
                )
            )
        return sources

    def _spill(self) -> None:
        # Drop the largest buffers until half the budget is free; their
        # transactions will be replayed from the journal when they commit.
        open_txns = [
            p for producers in self._journals.values() for p in producers.values() if p.buffer
        ]
        open_txns.sort(key=lambda p: p.count, reverse=True)
        for p in open_txns:
            if self._buffered <= self._limit // 2:
                break
            self._buffered -= self._release(p.buffer)
            p.buffer = []
            p.begin = _offset(p.begin)  # Let go of its batch too.

    def _close(self, p: _Producer, clock: int) -> int:
        """End `p`'s open transaction (committed or rolled back) at `clock`;
        returns how many buffered messages it let go of."""
        dropped = self._release(p.buffer)
        p.buffer = []
        p.last_ack = p.max_clock = clock
        p.begin = -1
        return dropped

    def _release(self, spans: list[Span]) -> int:
        """Let go of buffered spans; returns how many messages they held."""
        retained = self._retained
        count = 0
        for frames, start, stop in spans:
            count += stop - start
            left = retained[frames] - 1
            if left:
                retained[frames] = left
            else:
                del retained[frames]
                self._retained_size -= len(frames)
        return count

    def _compact(self) -> None:
        """Copy buffered spans out of the batches they were read in.

        A span keeps its whole batch in memory. When open transactions hold
        more than `_retain_limit` messages that way (a slow transaction with
        a message in each of many batches, say), each buffered span becomes
        a `Frames` of its own, and the batches can go.
        """
        retained: dict[Frames, int] = {}
        for producers in self._journals.values():
            for p in producers.values():
                if not p.buffer:
                    continue
                compacted: list[Span] = []
                for frames, start, stop in p.buffer:
                    copy = frames.slice(start, stop)
                    compacted.append((copy, 0, stop - start))
                    retained[copy] = 1
                if isinstance(p.begin, tuple):
                    frames, start, _ = p.buffer[0]
                    if p.begin[0] is frames and p.begin[1] == start:
                        p.begin = (compacted[0][0], 0)
                    else:
                        p.begin = _offset(p.begin)
                p.buffer = compacted
        self._retained = retained
        self._retained_size = sum(map(len, retained))
        self.compactions += 1


def producer_states_of(checkpoint: pc.Checkpoint) -> list[ProducerState]:
    """The producer states recorded in a checkpoint."""
    states = []
    for journal, source in checkpoint.sources.items():
        for entry in source.producers:
            if len(entry.id) != 6:
                raise ValueError(
                    f"checkpoint source {journal!r} has a producer id of {len(entry.id)} bytes"
                )
            state = entry.state
            if state is None:
                state = pc.CheckpointProducerState(last_ack=0, begin=-1)
            states.append(ProducerState(journal, bytes(entry.id), state.last_ack, state.begin))
    return states


def read_through_of(checkpoint: pc.Checkpoint) -> dict[str, int]:
    """Journal → offset to resume reading at, from a checkpoint."""
    return {journal: source.read_through for journal, source in checkpoint.sources.items()}


_Begin = int | tuple[Frames, int]


def _offset(begin: _Begin) -> int:
    if isinstance(begin, tuple):
        frames, index = begin
        return frames.begins[index]
    return begin


def _at_or_after(begin: _Begin, floor: int) -> bool:
    if isinstance(begin, tuple):
        frames, index = begin
        if frames.begin >= floor:
            return True  # Without working out the frame's own offset.
        if frames.end <= floor:
            return False
        return frames.begins[index] >= floor
    return begin >= floor


def _opens(span: Span, begin: _Begin) -> bool:
    """Whether `span` starts with the frame that opened the transaction."""
    if isinstance(begin, tuple):
        return span[0] is begin[0] and span[1] == begin[1]
    return _span_begin(span) == begin


def _span_begin(span: Span) -> int:
    return span[0].begins[span[1]]


def _through(buffer: list[Span], clock: int) -> list[Span]:
    """The buffered spans cut after the last message at or below `clock`
    (clocks rise through a producer's buffer)."""
    out: list[Span] = []
    for frames, start, stop in buffer:
        if frames.clocks[stop - 1] <= clock:
            out.append((frames, start, stop))
            continue
        cut = bisect_right(frames.clocks, clock, start, stop)
        if cut > start:
            out.append((frames, start, cut))
        break
    return out


def _log_error(frames: Frames, index: int, p: _Producer, what: str) -> None:
    log.error(
        "%s (journal %s, offset %d, producer %s, clock %d, last ACK %d, open transaction at %d)",
        what,
        frames.journal.name,
        frames.begins[index],
        frames.producers[index].hex(),
        frames.clocks[index],
        p.last_ack,
        _offset(p.begin),
    )
