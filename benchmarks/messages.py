"""Read-committed decoding: JSON lines → envelopes → sequencer → committed.

The workload is `N` small JSON messages written by eight producers as
transactions (CONTINUE_TXN messages closed by an ACK_TXN), interleaved in
short runs as concurrent publishers' appends are, and read back in 32 KiB
chunks that cut frames anywhere. The figure is committed messages per second
through `JSONDecoder` and `Sequencer`; the floor is a bare loop of
`orjson.loads` over the same lines, in the same run.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from typing import Any

import orjson

from gazette_trio.message import (
    ACK_TXN,
    CONTINUE_TXN,
    JSON_LINES,
    Clock,
    Sequencer,
    build_uuid,
    framing_by_content_type,
    new_producer_id,
)
from gazette_trio.message.frames import Committed
from gazette_trio.protocol import protocol as pb

from .harness import Report, best_of

CHUNK = 32 * 1024
PRODUCERS = 8
TXN = 100
RUN = 10


def workload(n: int) -> tuple[bytes, int]:
    """`n` messages (ACKs included) as one journal's bytes, and how many of
    them commit with content (all but the ACKs)."""
    rng = random.Random(7)
    producers = [
        (new_producer_id(), Clock.at(1_700_000_000_000_000_000 + i)) for i in range(PRODUCERS)
    ]
    in_txn = [0] * PRODUCERS
    lines = []
    while len(lines) < n:
        index = rng.randrange(PRODUCERS)
        producer, clock = producers[index]
        for _ in range(RUN):
            if in_txn[index] == TXN:
                flags = ACK_TXN
                in_txn[index] = 0
                doc = {
                    "_meta": {"uuid": str(build_uuid(producer, clock.tick(), flags)), "ack": True}
                }
            else:
                flags = CONTINUE_TXN
                in_txn[index] += 1
                doc = {
                    "_meta": {"uuid": str(build_uuid(producer, clock.tick(), flags))},
                    "key": f"user-{rng.randrange(100000)}",
                    "n": rng.randrange(1000),
                }
            lines.append(orjson.dumps(doc) + b"\n")
    # Close every open transaction so that all messages commit.
    for index, (producer, clock) in enumerate(producers):
        if in_txn[index]:
            uuid = str(build_uuid(producer, clock.tick(), ACK_TXN))
            lines.append(orjson.dumps({"_meta": {"uuid": uuid, "ack": True}}) + b"\n")
    acks = sum(1 for line in lines if b'"ack":true' in line)
    return b"".join(lines), len(lines) - acks


def run(report: Report) -> None:
    n = 100_000 if report.quick else 1_000_000
    data, expect = workload(n)
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    count = data.count(b"\n")
    spec = pb.JournalSpec(
        name="bench/messages",
        labels=pb.LabelSet(labels=[pb.Label(name="content-type", value=JSON_LINES)]),
    )
    framing = framing_by_content_type(JSON_LINES)

    def floor() -> None:
        loads = orjson.loads
        for line in lines:
            loads(line)

    # The floor's list of a million lines is itself a large object for the
    # collector to traverse; it exists only while the floor runs.
    lines: list[bytes] = []

    counted = [0]

    def read_committed(take: Callable[[Committed], list[Any]]) -> None:
        # What a read-committed reader does with each chunk: decode it into
        # frames, sequence them, and take what committed (`take`).
        decoder = framing.decoder(spec, dict, 0)
        sequencer = Sequencer()
        offset = 0
        total = 0
        for chunk in chunks:
            decoder.feed(offset, chunk)
            offset += len(chunk)
            frames, error = decoder.decode()
            if error is not None:
                raise error
            total += len(take(Committed(sequencer.queue_frames(frames))))  # type: ignore[arg-type]
        counted[0] = total

    def measure(
        name: str, note: str, take: Callable[[Committed], list[Any]] = Committed.messages
    ) -> None:
        nonlocal lines
        lines = data.split(b"\n")[:-1]
        floor_s = best_of(floor)
        lines = []
        gc.collect()
        figure_s = best_of(lambda: read_committed(take))
        if counted[0] != expect:
            raise AssertionError(f"committed {counted[0]} messages, expected {expect}")
        report.add(
            "messages",
            f"{name} ({count:,} msgs)",
            count / figure_s,
            "msgs/s",
            floor=count / floor_s,
            floor_name="orjson.loads loop",
            target_ratio=0.4,
            note=note,
        )

    measure("read-committed JSON decode + sequence", "default gc settings")
    # What a long-running consumer can do once it has started: move the
    # start-up heap out of the collector's view and collect young objects
    # less often (the decoded batch and open transactions are young).
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        measure(
            "read-committed JSON decode + sequence, tuned gc",
            "gc.freeze() after start-up, gc.set_threshold(50_000, 20, 20)",
        )
        # Not a target of its own: what building envelopes adds, as a
        # consumer's `consume_message` receives them.
        measure(
            "read-committed JSON decode + sequence + envelopes, tuned gc",
            "as above, with an Envelope built for each committed message",
            Committed.content,
        )
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
