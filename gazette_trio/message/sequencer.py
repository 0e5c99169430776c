"""The sequencer: read-uncommitted envelopes in, read-committed envelopes out.

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
reads journals, feeds `queue_uncommitted`, fulfils `Replay`s and checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..protocol import consumer as pc
from .message import Envelope
from .uuids import ACK_TXN, CONTINUE_TXN, OUTSIDE_TXN, flags_name

__all__ = ["DEFAULT_BUFFER_SIZE", "ProducerState", "Replay", "ReplayError", "Sequencer"]

log = logging.getLogger(__name__)

DEFAULT_BUFFER_SIZE = 1 << 14
"""Envelopes of open transactions held in memory, across all producers."""


@dataclass(frozen=True, slots=True)
class ProducerState:
    """What a checkpoint remembers of one producer of one journal."""

    journal: str
    producer: bytes
    last_ack: int
    """Clock of the producer's last ACK_TXN or OUTSIDE_TXN message."""
    begin: int
    """Offset of the first message of the producer's open transaction, or -1."""


class ReplayError(ValueError):
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
            if env.journal.name != self.journal:
                raise ReplayError(
                    f"replay of journal {self.journal!r} read an envelope of {env.journal.name!r}"
                )
            if env.begin < self.begin or env.end > self.end:
                raise ReplayError(
                    f"replay of journal {self.journal!r} over [{self.begin}, {self.end}) read "
                    f"an envelope at [{env.begin}, {env.end})"
                )
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

    __slots__ = ("begin", "buffer", "last_ack", "max_clock")

    def __init__(self, last_ack: int, begin: int = -1) -> None:
        self.last_ack = last_ack  # Exclusive lower bound of uncommitted clocks.
        self.max_clock = last_ack  # Largest clock in the open transaction.
        self.begin = begin  # Offset opening the open transaction, or -1.
        self.buffer: list[Envelope] = []  # Its newest messages (all, unless dropped).


class Sequencer:
    """Sequences read-uncommitted envelopes of any number of journals."""

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
        self.replays = 0
        """`Replay`s returned so far: a caller that sees it unchanged across
        `queue_uncommitted` knows the output holds envelopes only."""
        self._journals: dict[str, dict[bytes, _Producer]] = {}
        for state in states:
            producers = self._journals.setdefault(state.journal, {})
            producers[state.producer] = _Producer(state.last_ack, state.begin)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: pc.Checkpoint, *, buffer_size: int = DEFAULT_BUFFER_SIZE
    ) -> Sequencer:
        """A sequencer resuming from the producer states of `checkpoint`."""
        return cls(producer_states_of(checkpoint), buffer_size=buffer_size)

    @property
    def buffered(self) -> int:
        """Envelopes of open transactions held in memory."""
        return self._buffered

    def queue_uncommitted(self, envelopes: Iterable[Envelope]) -> list[Envelope | Replay]:
        """Take read-uncommitted envelopes, in read order; return what they
        committed, in commit order: envelopes, and `Replay`s standing for
        committed transactions that must be re-read from the journal."""
        out: list[Envelope | Replay] = []
        append = out.append
        journals = self._journals
        buffered = self._buffered
        limit = self._limit
        last_spec = None
        last_producer = None
        producers: dict[bytes, _Producer] = {}
        p = _Producer(0)
        for env in envelopes:
            spec = env.journal
            clock = env.clock
            if not clock:
                append(env)  # No UUID: committed, and never a duplicate.
                continue
            if spec is not last_spec:
                last_spec = spec
                last_producer = None
                producers = journals.get(spec.name)  # type: ignore[assignment]
                if producers is None:
                    producers = journals[spec.name] = {}
            producer = env.producer
            if producer != last_producer:
                last_producer = producer
                p = producers.get(producer)  # type: ignore[assignment]
                if p is None:
                    p = producers[producer] = _Producer(clock - 1)

            flags = env.flags
            if flags == CONTINUE_TXN:
                if clock > p.max_clock:  # max_clock >= last_ack always.
                    if p.begin < 0:
                        p.begin = env.begin
                    p.buffer.append(env)
                    p.max_clock = clock
                    buffered += 1
                    if buffered > limit:
                        self._buffered = buffered
                        self._spill()
                        buffered = self._buffered
                # Otherwise a duplicate: dropped.

            elif flags == ACK_TXN:
                buf = p.buffer
                if clock <= p.last_ack:
                    if clock < p.last_ack:
                        _log_error(
                            env,
                            p,
                            "ACK_TXN clock is below the producer's last ACK "
                            "(it recovered an older checkpoint): exactly-once is "
                            "weakened to at-least-once",
                        )
                    buffered -= len(buf)
                    p.buffer = []
                    p.last_ack = p.max_clock = clock
                    p.begin = -1
                    continue
                if p.begin < 0:
                    append(env)
                elif buf and buf[0].begin == p.begin:
                    if p.max_clock <= clock:
                        out.extend(buf)
                    else:
                        out.extend(e for e in buf if e.clock <= clock)
                    append(env)
                else:
                    tail = [e for e in buf if e.clock <= clock]
                    tail.append(env)
                    end = buf[0].begin if buf else env.begin
                    append(Replay(spec.name, p.begin, end, producer, p.last_ack, clock, tail))
                    self.replays += 1
                buffered -= len(buf)
                p.buffer = []
                p.last_ack = p.max_clock = clock
                p.begin = -1

            else:
                if flags != OUTSIDE_TXN:
                    _log_error(
                        env, p, f"unexpected UUID flags {flags_name(flags)}; treated as OUTSIDE_TXN"
                    )
                if clock <= p.last_ack:
                    continue  # A duplicate.
                if p.begin >= 0:
                    _log_error(
                        env,
                        p,
                        "OUTSIDE_TXN follows uncommitted CONTINUE_TXN messages "
                        "(mixed publish_committed and publish_uncommitted to one "
                        "journal?); they are rolled back",
                    )
                    buffered -= len(p.buffer)
                    p.buffer = []
                    p.begin = -1
                append(env)
                p.last_ack = p.max_clock = clock
        self._buffered = buffered
        return out

    def has_pending(self, since: Mapping[str, int] | None = None) -> bool:
        """An open transaction exists (that began at or after `since[journal]`,
        if given): more messages, and its ACK, are likely to follow."""
        for journal, producers in self._journals.items():
            floor = since.get(journal, 0) if since is not None else 0
            for p in producers.values():
                if p.begin >= 0 and p.begin >= floor:
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
                    self._buffered -= len(producers.pop(producer).buffer)
            for producer in sorted(producers):
                p = producers[producer]
                states.append(ProducerState(journal, producer, p.last_ack, p.begin))
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
        open_txns.sort(key=lambda p: len(p.buffer), reverse=True)
        for p in open_txns:
            if self._buffered <= self._limit // 2:
                break
            self._buffered -= len(p.buffer)
            p.buffer = []


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


def _log_error(env: Envelope, p: _Producer, what: str) -> None:
    log.error(
        "%s (journal %s, offset %d, producer %s, clock %d, last ACK %d, open transaction at %d)",
        what,
        env.journal.name,
        env.begin,
        env.producer.hex(),
        env.clock,
        p.last_ack,
        p.begin,
    )
