"""The chunker of the stream-sum example: writes streams, verifies their sums.

    python examples/stream_sum/chunker.py --streams 200

It writes `--streams` streams, `--concurrency` of them open at once and
interleaved: each stream is `--chunks` chunks of 32 random bytes, then a
final empty chunk. Chunks go out in transactions of 1 to `--txn-size`
chunks (published uncommitted, then acknowledged), mapped onto the
`stream_sum.Chunk` partitions by stream ID as upstream's Go chunker maps
them. Meanwhile it reads the sums journal read-committed, from where it
stood when the run began, and checks every sum:

- a stream the chunker finished gets exactly one sum, equal to the CRC-64
  the chunker computed, within `--delay` seconds of its final chunk;
- no sum arrives for a stream before its final chunk was written;
- at the end, a second pass over everything the sums journal committed
  during the run finds each stream's sum exactly once.

With `--committed`, chunks are published as upstream's Go chunker publishes
them instead: each committed on its own, with no transactions and so no ACKs.
Upstream's Go summer needs this: it folds every message it reads into a sum,
ACKs included, and fails on the first ACK it meets.

Any violation stops the run at once: the message names the stream and what
was wrong, and the exit status is 1. Success prints a summary and exits 0.
SIGINT or SIGTERM stop starting streams: the open ones are finished and
verified, then the run ends as usual (a second signal aborts). An error that
is not a violation (the broker unreachable, no partitions) exits 3.

A stream's 16-byte ID is the run's 4 random bytes, then the stream's number
in the run (12 bytes, big-endian); messages name it `<run>-<number>`. Sums
of other runs (other chunkers', upstream's Go chunker's) are ignored.

This module owns generation and verification; the summer is in
`stream_sum.py`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import os
import random
import signal
import statistics
import sys
from collections.abc import Callable
from typing import Any

import click
import trio
from stream_sum import CHUNKS_SELECTOR, SUMS_JOURNAL, Sum, chunk_message, crc64, parse_id

from gazette_trio import OpFuture, aio, wait_all
from gazette_trio.broker import GrpcJournalClient, JournalClient, append, open_append_service
from gazette_trio.message import (
    NoPartitions,
    Partitions,
    Publisher,
    modulo_mapping,
    open_committed,
)

CHUNK_BYTES = 32
IN_FLIGHT = 16  # transactions whose ACKs may be unacknowledged at once
EXIT_VIOLATION = 1
EXIT_ERROR = 3
RUN_BYTES = 4
U64 = (1 << 64) - 1


def stream_id(run: str, n: int) -> bytes:
    """The ID of stream `n` of run `run` (8 hex digits)."""
    return bytes.fromhex(run) + n.to_bytes(16 - RUN_BYTES, "big")


def stream_label(stream: bytes) -> str:
    """`<run>-<n>` for a stream of a chunker.py run."""
    return f"{stream[:RUN_BYTES].hex()}-{int.from_bytes(stream[RUN_BYTES:], 'big')}"


@dataclasses.dataclass(frozen=True)
class ChunkerOptions:
    streams: int = 100
    """Streams to write in all; 0 writes until stopped."""
    chunks: int = 20
    """Data chunks per stream, before its final, empty chunk."""
    concurrency: int = 20
    """Streams open at once."""
    txn_size: int = 10
    """Most chunks per transaction (each transaction has 1 to this many)."""
    rate: float = 0.0
    """Chunks per second; 0: as fast as acknowledged appends allow."""
    delay: float = 30.0
    """Longest wait, in seconds, for a finished stream's sum."""
    seed: int | None = None
    """Seed of the random choices (the data, the interleaving, the run id)."""
    committed: bool = False
    """Publish each chunk committed on its own (no transactions, no ACKs),
    as upstream's Go chunker does."""
    sums_journal: str = SUMS_JOURNAL
    chunks_selector: str = CHUNKS_SELECTOR


class Violation(Exception):
    """A sum missing, wrong, early or repeated: exactly-once did not hold."""


class Stalled(Exception):
    """The chunker's own appends were not acknowledged within the delay."""


@dataclasses.dataclass
class Expected:
    seq: int
    value: int
    finished_at: float


class Verifier:
    """The expected and observed sums of one run; bookkeeping only, no I/O.

    Streams of the run have IDs beginning with the run's bytes
    (`stream_id`); sums of other streams are counted and ignored.
    """

    def __init__(self, run: str) -> None:
        self.run = run
        self._prefix = bytes.fromhex(run)
        self.expected: dict[bytes, Expected] = {}
        """Finished streams whose sum has not arrived yet, oldest first."""
        self.verified: dict[bytes, float] = {}
        """Streams whose sum arrived (and was right), and when."""
        self.latencies: list[float] = []
        self.other_runs = 0

    def ours(self, stream: bytes) -> bool:
        return stream.startswith(self._prefix)

    def expect(self, stream: bytes, seq: int, value: int, now: float) -> None:
        """The final chunk of `stream` (number `seq`) is written; its sum is `value`."""
        self.expected[stream] = Expected(seq, value, now)

    def observe(self, message: Any, offset: int, now: float) -> None:
        """A committed sum message, read at `offset` of the sums journal."""
        stream, seq, value = _parse_sum(message, offset)
        if not self.ours(stream):
            self.other_runs += 1
            return
        if stream in self.verified:
            raise Violation(
                f"stream {stream_label(stream)}: a second sum (seq {seq}, sum {value:016x}) at sums offset "
                f"{offset}, {now - self.verified[stream]:.3f} s after the first: "
                "its final chunk was processed more than once"
            )
        expected = self.expected.pop(stream, None)
        if expected is None:
            raise Violation(
                f"stream {stream_label(stream)}: a sum (seq {seq}, sum {value:016x}) at sums offset {offset} "
                "before the chunker wrote the stream's final chunk"
            )
        if (seq, value) != (expected.seq, expected.value):
            raise Violation(
                f"stream {stream_label(stream)}: wrong sum at sums offset {offset}: expected seq "
                f"{expected.seq} sum {expected.value:016x}, got seq {seq} sum {value:016x}"
            )
        self.verified[stream] = now
        self.latencies.append(now - expected.finished_at)

    def check_overdue(self, now: float, delay: float) -> None:
        """Raise if the oldest finished stream's sum is more than `delay` s late."""
        for stream, expected in self.expected.items():
            waited = now - expected.finished_at
            if waited > delay:
                raise Violation(
                    f"stream {stream_label(stream)}: no sum {waited:.1f} s after its final chunk "
                    f"(seq {expected.seq}, expected sum {expected.value:016x}); "
                    f"{len(self.expected)} finished streams are waiting for theirs"
                )
            return  # Insertion order is finishing order: only the first can be late.

    def audit(self, sums: list[tuple[int, Any]]) -> None:
        """Check a second reading of every sum committed during the run:
        each verified stream's sum exactly once, and no other of the run's."""
        seen: collections.Counter[bytes] = collections.Counter()
        for offset, message in sums:
            stream, _, _ = _parse_sum(message, offset)
            if self.ours(stream):
                seen[stream] += 1
        problems = [
            f"stream {stream_label(stream)}: {seen[stream]} sums on re-reading, not 1"
            for stream in self.verified
            if seen[stream] != 1
        ]
        problems += [
            f"stream {stream_label(stream)}: {seen[stream]} sums on re-reading, none verified"
            for stream in seen.keys() - self.verified.keys()
        ]
        if problems:
            raise Violation("; ".join(sorted(problems)))


def _parse_sum(message: Any, offset: int) -> tuple[bytes, int, int]:
    seq, value = message.get("SeqNo"), message.get("Value")
    try:
        stream = parse_id(message.get("ID"))
        if type(seq) is not int or type(value) is not int or not 0 <= value <= U64:
            raise ValueError("wrong field types")
        return stream, seq, value
    except ValueError:
        raise Violation(
            f"sums offset {offset}: expected "
            f'{{"ID": <16 numbers 0-255>, "SeqNo": <integer>, "Value": <uint64>}}, '
            f"got {dict(message)!r}"
        ) from None


@dataclasses.dataclass
class Report:
    run: str
    streams: int = 0
    chunks: int = 0
    transactions: int = 0
    other_runs: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    elapsed: float = 0.0

    def summary(self) -> str:
        latency = ""
        if self.latencies:
            ordered = sorted(self.latencies)
            p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
            latency = (
                f"; sum latency median {statistics.median(ordered):.3f} s, "
                f"p99 {p99:.3f} s, max {ordered[-1]:.3f} s"
            )
        others = f"; {self.other_runs} sums of other runs ignored" if self.other_runs else ""
        return (
            f"run {self.run}: {self.streams} streams, each sum arrived exactly once and "
            f"matched ({self.chunks} chunks in {self.transactions} transactions, "
            f"{self.elapsed:.1f} s{latency}){others}"
        )


@dataclasses.dataclass
class _Stream:
    id: bytes
    seq: int = 0
    value: int = 0


async def generate_and_verify(
    client: JournalClient,
    options: ChunkerOptions,
    *,
    stop: trio.Event | None = None,
    progress: Callable[[str], None] | None = None,
    progress_interval: float = 2.0,
) -> Report:
    """Write streams and verify their sums; see the module docstring.

    Raises `Violation` at the first violation. Setting `stop` ends the run
    early: open streams are finished and verified.
    """
    stop = stop if stop is not None else trio.Event()
    rng = random.Random(options.seed)
    run = f"{rng.getrandbits(32):08x}"
    verifier = Verifier(run)
    report = Report(run)
    started = trio.current_time()

    partitions = Partitions(client, options.chunks_selector)
    await partitions.refresh()
    # Upstream's mapping: FNV-1a of the 16 ID bytes, modulo the partitions.
    mapping = modulo_mapping(partitions, key=lambda chunk: bytes(chunk["ID"]))
    # Sums of this run are all after the write head as the run begins.
    begin = await _write_head(client, options.sums_journal)

    async def read_sums() -> None:
        async with open_committed(
            client, options.sums_journal, Sum, offset=begin, block=True
        ) as reader:
            async for envelope in reader:
                if not envelope.is_ack:
                    verifier.observe(envelope.message, envelope.begin, trio.current_time())

    acks_since: float | None = None  # When the pending transaction's ACKs were sent.

    async def watchdog() -> None:
        next_progress = trio.current_time() + progress_interval
        while True:
            await trio.sleep(0.25)
            now = trio.current_time()
            verifier.check_overdue(now, options.delay)
            if acks_since is not None and now - acks_since > options.delay:
                raise Stalled(
                    f"no append to the chunk partitions acknowledged for {now - acks_since:.1f} s "
                    f"(is the broker at its endpoint up?)"
                )
            if progress is not None and now >= next_progress:
                next_progress = now + progress_interval
                progress(
                    f"{report.streams} streams started, {len(verifier.verified)} verified, "
                    f"{len(verifier.expected)} awaiting their sum; {report.chunks} chunks"
                )

    async def generate() -> None:
        nonlocal acks_since
        open_streams: list[_Stream] = []
        in_flight: collections.deque[tuple[float, list[OpFuture[Any]]]] = collections.deque()
        pending: list[OpFuture[Any]] = []  # Committed chunks of this round.
        async with open_append_service(client) as appends:
            publisher = Publisher(appends)
            while True:
                while (
                    len(open_streams) < options.concurrency
                    and (options.streams == 0 or report.streams < options.streams)
                    and not stop.is_set()
                ):
                    open_streams.append(_Stream(stream_id(run, report.streams)))
                    report.streams += 1
                if not open_streams:
                    break
                for _ in range(rng.randint(1, options.txn_size)):
                    if not open_streams:
                        break
                    i = rng.randrange(len(open_streams))
                    stream = open_streams[i]
                    data = rng.randbytes(CHUNK_BYTES) if stream.seq < options.chunks else b""
                    stream.seq += 1
                    stream.value = crc64(stream.value, data)
                    if not data:
                        verifier.expect(stream.id, stream.seq, stream.value, trio.current_time())
                        open_streams[i] = open_streams[-1]
                        open_streams.pop()
                    chunk = chunk_message(stream.id, stream.seq, data)
                    if options.committed:
                        pending.append(publisher.publish_committed(mapping, chunk))
                    else:
                        publisher.publish_uncommitted(mapping, chunk)
                    report.chunks += 1
                if options.committed:
                    acks, pending = pending, []
                else:
                    acks = [
                        appends.append(j, ack) for j, ack in publisher.build_ack_intents().items()
                    ]
                in_flight.append((trio.current_time(), acks))
                report.transactions += 1
                # A bounded window of transactions in flight bounds memory.
                while len(in_flight) > IN_FLIGHT:
                    acks_since, oldest = in_flight.popleft()
                    await wait_all(oldest)
                    acks_since = None
                if options.rate > 0:
                    await trio.sleep_until(started + report.chunks / options.rate)
            while in_flight:
                acks_since, oldest = in_flight.popleft()
                await wait_all(oldest)
            acks_since = None

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_sums)
            nursery.start_soon(watchdog)
            await generate()
            while verifier.expected:
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _unwrap(group) from None

    # Re-read everything committed to the sums journal during the run.
    end = await _write_head(client, options.sums_journal)
    sums: list[tuple[int, Any]] = []
    async with open_committed(
        client, options.sums_journal, Sum, offset=begin, end_offset=end, block=False
    ) as reader:
        async for envelope in reader:
            if not envelope.is_ack:
                sums.append((envelope.begin, envelope.message))
    verifier.audit(sums)

    report.other_runs = verifier.other_runs
    report.latencies = verifier.latencies
    report.elapsed = trio.current_time() - started
    return report


async def _write_head(client: JournalClient, journal: str) -> int:
    """The journal's write head, by an empty append: a write barrier whose
    commit ends there, so a read from it sees everything appended after."""
    commit = (await append(client, journal, b"")).commit
    assert commit is not None, f"{journal}: an append without its commit"
    return commit.end


def _unwrap(group: BaseExceptionGroup[Any]) -> BaseException:
    """What a caller expects from a group: its Violation if it has one, else
    its only error, else the group itself."""
    violations = group.subgroup(Violation)
    if violations is not None:
        leaf: BaseException = violations
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        return leaf
    if len(group.exceptions) == 1:
        only = group.exceptions[0]
        return _unwrap(only) if isinstance(only, BaseExceptionGroup) else only
    return group


# ----------------------------------------------------------------------------
# Command line


@click.command()
@click.option(
    "--broker",
    "-b",
    default="127.0.0.1:8081",
    show_default=True,
    help="Journal API endpoint (the member itself when it embeds the journal server).",
)
@click.option(
    "--streams", default=100, show_default=True, help="Streams to write; 0: until stopped."
)
@click.option("--chunks", default=20, show_default=True, help="Data chunks per stream.")
@click.option("--concurrency", default=20, show_default=True, help="Streams open at once.")
@click.option("--txn-size", default=10, show_default=True, help="Most chunks per transaction.")
@click.option("--rate", default=0.0, show_default=True, help="Chunks per second; 0: unthrottled.")
@click.option("--delay", default=30.0, show_default=True, help="Seconds a sum may take.")
@click.option("--seed", type=int, default=None, help="Seed of the random choices.")
@click.option(
    "--committed",
    is_flag=True,
    help="Publish each chunk committed, without transactions (as upstream's Go chunker; "
    "upstream's Go summer needs it).",
)
def main(
    broker: str,
    streams: int,
    chunks: int,
    concurrency: int,
    txn_size: int,
    rate: float,
    delay: float,
    seed: int | None,
    committed: bool,
) -> None:
    """Write interleaved streams of chunks and verify that each stream's sum
    arrives exactly once and is right. Exits 1 on any violation.

    \b
    Examples:
      python examples/stream_sum/chunker.py --streams 200
      python examples/stream_sum/chunker.py --streams 0 --rate 500   # until Ctrl-C
    """
    for name, value in (
        ("--chunks", chunks),
        ("--concurrency", concurrency),
        ("--txn-size", txn_size),
    ):
        if value < 1:
            raise click.BadParameter(f"{value}: expected at least 1", param_hint=name)
    if streams < 0:
        raise click.BadParameter(f"{streams}: expected 0 or more", param_hint="--streams")
    options = ChunkerOptions(
        streams=streams,
        chunks=chunks,
        concurrency=concurrency,
        txn_size=txn_size,
        rate=rate,
        delay=delay,
        seed=seed,
        committed=committed,
    )
    try:
        report = trio.run(functools.partial(_run, broker, options))
    except Violation as exc:
        click.echo(f"VIOLATION: {exc}", err=True)
        sys.exit(EXIT_VIOLATION)
    except (Stalled, NoPartitions, aio.RpcError, OSError) as exc:
        click.echo(f"Error: {broker}: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    click.echo(f"OK: {report.summary()}")


async def _run(endpoint: str, options: ChunkerOptions) -> Report:
    stop = trio.Event()

    def say(line: str) -> None:
        click.echo(line, err=True)

    async def on_signals(signals: Any) -> None:
        async for signum in signals:
            if stop.is_set():
                say("second signal: aborting")
                os._exit(130)
            say(f"{signal.Signals(signum).name}: finishing the open streams")
            stop.set()

    # The signal task's nursery wraps the run's error in a group; unwrap it.
    try:
        async with aio.asyncio_island(), aio.Channel(endpoint) as channel:
            client = GrpcJournalClient(channel, timeout=30)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(on_signals, signals)
                    report = await generate_and_verify(client, options, stop=stop, progress=say)
                    nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _unwrap(group) from None
    return report


if __name__ == "__main__":
    main()
