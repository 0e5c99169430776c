"""The input side of the stream_sum workload: chunk producers and their ledger.

As in Gazette's `examples/stream-sum`, many producers each write several
*streams* of numbered chunks. A stream's chunks go to one input partition
(`chunks/part-NN`, the stream's index modulo the partition count), in order;
a producer interleaves the chunks of its streams, and chunks of different
producers interleave in the journals.

A producer writes in transactions of varying size: a few chunks published
uncommitted (`Publisher.publish_uncommitted`), then either

- committed: the publisher's ACK intents appended (most transactions);
- rolled back: the producer's last ACK on each journal appended again
  (what a recovering consumer does with its checkpoint's ACK intents),
  which commits none of the transaction's messages (each incarnation opens
  with an ACK on each of its journals, so there always is a last one);
- abandoned: the producer "crashes" (a scheduled fault) with the
  transaction open; its messages stay uncommitted forever, and it comes back
  as a new producer (a new producer id) that sends those chunks again.

A lone chunk is sometimes published committed (`publish_committed`). Every
attempt gets a fresh random value, so a rolled-back or abandoned chunk that
leaked into a sum would change it.

The `Ledger` is the ground truth the invariants judge against: for each
(stream, seq) the value of the attempt that is *committing* (its ACK is
being appended) or *committed* (the ACK's append resolved). A consumer may
see a chunk only in one of those two states, with that value.

This module owns the producers and the ledger; checking is `invariants`'.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from ...broker.append_service import AppendService
from ...broker.client import JournalClient
from ...message import Clock, Publisher, acknowledgement_of, fixed_mapping, get_uuid, set_uuid
from ...message.framing import framing_by_content_type
from ...message.uuids import ACK_TXN, build_uuid, clock_of
from .faults import FaultInjector, actor
from .trace import Trace

NDJSON = "application/x-ndjson"


def chunk_journal(partition: int) -> str:
    return f"chunks/part-{partition:02d}"


@dataclass
class StreamLedger:
    """What has been committed of one stream."""

    name: str
    journal: str
    total: int
    committed: list[int] = field(default_factory=list)  # values of seq 1..n
    committing: dict[int, int] = field(default_factory=dict)  # seq -> value

    @property
    def next_seq(self) -> int:
        return len(self.committed) + 1

    @property
    def done(self) -> bool:
        return len(self.committed) == self.total

    def value(self, seq: int) -> int | None:
        """The committed or committing value of chunk `seq`, if any."""
        if 1 <= seq <= len(self.committed):
            return self.committed[seq - 1]
        return self.committing.get(seq)

    def prefix_sum(self, seq: int) -> int | None:
        """Sum of chunks 1..seq, if each is committed or committing."""
        total = 0
        for s in range(1, seq + 1):
            v = self.value(s)
            if v is None:
                return None
            total += v
        return total

    def final_sum(self) -> int:
        return sum(self.committed)


class Ledger:
    """Every stream's committed chunks; see the module docstring."""

    def __init__(self) -> None:
        self.streams: dict[str, StreamLedger] = {}
        self.transactions = {"committed": 0, "rolled_back": 0, "abandoned": 0, "single": 0}

    def add(self, stream: StreamLedger) -> None:
        self.streams[stream.name] = stream

    @property
    def done(self) -> bool:
        return all(s.done for s in self.streams.values())


@dataclass
class Producer:
    """One producer of several streams; `run` until its streams are written."""

    name: str
    streams: list[StreamLedger]
    ledger: Ledger
    journals: JournalClient
    rng: random.Random
    injector: FaultInjector
    trace: Trace
    wall_clock_ns: Callable[[], int]
    pace: float = 0.35
    """Mean seconds between transactions."""
    abandon: bool = False
    incarnation: int = 0
    # Per journal, the clock of this incarnation's last ACK (or lone
    # committed message): what a rollback acknowledges again.
    last_ack: dict[str, int] = field(default_factory=dict)
    finished: trio.Event = field(default_factory=trio.Event)

    async def run(self) -> None:
        try:
            while not all(s.done for s in self.streams):
                self.incarnation += 1
                self.abandon = False
                self.last_ack = {}
                who = f"{self.name}.{self.incarnation}"
                actor.set(who)
                await self._incarnation(who)
                await trio.sleep(self.injector.delay(0.05, 2.0))
            self.trace.event(f"producer {self.name} finished")
        finally:
            self.finished.set()

    async def _incarnation(self, who: str) -> None:
        appends = AppendService(self.journals)
        async with trio.open_nursery() as nursery:
            await nursery.start(appends.run)
            publisher = Publisher(appends, Clock.at(self.wall_clock_ns()))
            self.trace.event(f"producer {who} started as {publisher.producer.hex()}")
            # Open with an ACK on each journal, so every rollback has a last
            # ACK to repeat (as a consumer recovering its first checkpoint).
            for journal in sorted({s.journal for s in self.streams}):
                clock = publisher.clock.tick()
                self.last_ack[journal] = clock
                await appends.append(journal, _rollback_ack(publisher, journal, clock))
            while not all(s.done for s in self.streams):
                await trio.sleep(self.rng.expovariate(1 / self.pace))
                if not await self._transaction(who, publisher, appends):
                    break
            nursery.cancel_scope.cancel()

    async def _transaction(self, who: str, publisher: Publisher, appends: AppendService) -> bool:
        """Write one transaction; False if the producer was abandoned in it."""
        rng = self.rng
        publisher.clock.update(self.wall_clock_ns())
        open_streams = [s for s in self.streams if not s.done]
        if rng.random() < 0.1:
            # A lone chunk, committed on its own.
            stream = rng.choice(open_streams)
            seq, value = stream.next_seq, rng.randrange(1, 1_000_000)
            stream.committing[seq] = value
            mapping = fixed_mapping(stream.journal, NDJSON)
            message = _chunk(stream, seq, value)
            await publisher.publish_committed(mapping, message)
            uuid = get_uuid(message)
            assert uuid is not None
            self.last_ack[stream.journal] = clock_of(uuid)
            del stream.committing[seq]
            stream.committed.append(value)
            self.ledger.transactions["single"] += 1
            self.trace.event(f"producer {who} committed {stream.name}#{seq}")
            return True

        chunks: list[tuple[StreamLedger, int, int]] = []
        pending: dict[str, int] = {}
        for _ in range(rng.randint(1, 6)):
            stream = rng.choice(open_streams)
            seq = stream.next_seq + pending.get(stream.name, 0)
            if seq > stream.total:
                continue
            pending[stream.name] = pending.get(stream.name, 0) + 1
            value = rng.randrange(1, 1_000_000)
            chunks.append((stream, seq, value))
            publisher.publish_uncommitted(
                fixed_mapping(stream.journal, NDJSON), _chunk(stream, seq, value)
            )
            if rng.random() < 0.3:
                await trio.sleep(rng.expovariate(1 / 0.05))
        names = " ".join(f"{s.name}#{q}" for s, q, _ in chunks)
        if not chunks:
            return True

        if self.abandon:
            self.ledger.transactions["abandoned"] += 1
            self.trace.event(f"producer {who} abandoned {names}")
            return False

        journals = sorted({s.journal for s, _, _ in chunks})
        if rng.random() < 0.12:
            publisher.build_ack_intents()  # this transaction is over
            for journal in journals:
                # As a recovering consumer does: acknowledge the last commit again.
                await appends.append(
                    journal, _rollback_ack(publisher, journal, self.last_ack[journal])
                )
            self.ledger.transactions["rolled_back"] += 1
            self.trace.event(f"producer {who} rolled back {names}")
            return True

        for stream, seq, value in chunks:
            stream.committing[seq] = value
        acks = publisher.build_ack_intents()
        futures = [appends.append(journal, ack) for journal, ack in sorted(acks.items())]
        for journal, ack in acks.items():
            self.last_ack[journal] = _clock_of_frame(ack)
        for future in futures:
            await future
        for stream, seq, value in chunks:
            del stream.committing[seq]
            stream.committed.append(value)
            assert len(stream.committed) == seq
        self.ledger.transactions["committed"] += 1
        self.trace.event(f"producer {who} committed {names}")
        return True


def _chunk(stream: StreamLedger, seq: int, value: int) -> dict[str, object]:
    return {"stream": stream.name, "seq": seq, "value": value}


def _clock_of_frame(frame: bytes) -> int:
    uuid = get_uuid(json.loads(frame))
    assert uuid is not None
    return clock_of(uuid)


def _rollback_ack(publisher: Publisher, journal: str, clock: int) -> bytes:
    """An ACK with `clock` (the producer's last ACK on `journal`, which
    precedes every message of the open transaction: it commits none)."""
    ack = acknowledgement_of({}, journal)
    set_uuid(ack, build_uuid(publisher.producer, clock, ACK_TXN))
    return framing_by_content_type(NDJSON).marshal(ack)
