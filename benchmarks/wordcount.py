"""The word-count workload the end-to-end benchmark groups share.

Not a group itself (it has no `run`): the groups (`e2e`, `latency`,
`scaling`) call it, and run every measured case in a process of its own,
`python -m benchmarks.wordcount <case> DIR ...`, which prints one JSON
object. A fresh process per case keeps each figure's CPU seconds and peak
RSS its own, and one case's heap and collector out of the next.

The input is `messages` JSON lines over `WORDS` distinct words (drawn with
Zipf's law, as words in text are), e.g.

    {"_meta":{"uuid":"…"},"word":"kelbo"}

published transactionally by `PRODUCERS` producers (runs of CONTINUE_TXN
messages, each producer's transaction closed by an ACK_TXN every
`TXN_MESSAGES` of its messages), as an upstream exactly-once consumer writes
them. `generate` appends them in advance, spread over `partitions` journals,
to an embedded journal server's file storage (`DIR/broker`), and writes the
same bytes to `DIR/input-<p>.ndjson` for the floor and the peer, with the
expected counts in `DIR/expected.json`.

Cases:

- `consume`: the gazette-trio word count. One member of an in-process
  consumer group (MemoryEtcd, the embedded journal server core over that
  file storage, the real consumer runtime), one shard per partition; counts
  are aggregated in memory per transaction and flushed in `finalize_txn` to
  the store: `json` (JSONFileStore recorded into the shard's recovery log),
  `sqlite` (SQLiteStore with its recovery log), `sql` (SQLStore on an
  SQLite file, fenced, synchronous=FULL). Timed from the opening of the
  shard's store (its source reader starts right after) until the
  transaction that read through the last input message has committed; the
  committed counts are then checked. With `--form aggregate`, the same
  count written in the short form (`AggregateWordCount`, an `Aggregation`)
  into the same stores.
- `floor`: a plain-Python loop over the same bytes: 128 KiB reads, split
  lines, `orjson.loads`, a dict of counts, and every 10,000 lines the
  changed keys plus the offset committed to SQLite (WAL, synchronous=FULL).
- `bytewax`: the same count as a Bytewax dataflow (if Bytewax is
  installed) with SQLite recovery and 1 s snapshots.
- `latency`: the word count on fresh journals while a publisher appends at
  a steady rate; times commits, publish → consume_message, and publish → a
  downstream read-committed reader of the consumer's per-transaction output.

`consume` also reports peak RSS when `rss_at` messages were counted, so one
long run shows whether memory stays flat. `ServedWordCount` is the same
application for `gazette-trio serve` (the `scaling` group).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import itertools
import json
import math
import os
import random
import resource
import sqlite3
import string
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import trio

from gazette_trio import Aggregation
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.server import JournalServerCore
from gazette_trio.broker.server.file_storage import FileStorage
from gazette_trio.consumer.aggregate import TABLE as AGGREGATE_TABLE
from gazette_trio.message import (
    ACK_TXN,
    CONTINUE_TXN,
    Clock,
    build_uuid,
    fixed_mapping,
    new_producer_id,
)
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG

WORDS = 10_000
PRODUCERS = 4
TXN_MESSAGES = 100
RUN = 25  # messages one producer writes before another's turn
APPEND_BYTES = 1 << 20
FRAGMENT_LENGTH = 8 << 20
FLOOR_COMMIT_LINES = 10_000
READ_SIZE = 128 * 1024
NDJSON = "application/x-ndjson"
ROOT = "/gazette/consumers/bench"
SCHEMA = "CREATE TABLE IF NOT EXISTS counts (word TEXT PRIMARY KEY, n INTEGER NOT NULL)"
# Adds a transaction's deltas to the stored totals.
ADD_DELTAS = (
    "INSERT INTO counts (word, n) VALUES (?, ?) ON CONFLICT (word) DO UPDATE SET n = n + excluded.n"
)


def partition(p: int) -> str:
    return f"bench/words/part-{p:03d}"


def shard_id(p: int) -> str:
    return f"count-{p:03d}"


def vocabulary() -> list[str]:
    rng = random.Random(1)
    words: set[str] = set()
    while len(words) < WORDS:
        words.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 10))))
    return sorted(words)


# --------------------------------------------------------------------------
# Input


def chunks_of(n: int, seed: int, counts: dict[str, int]) -> Iterator[bytes]:
    """`n` word messages (plus the producers' ACKs) as framed lines, joined
    into chunks of about `APPEND_BYTES`; adds the words to `counts`."""
    rng = random.Random(seed)
    words = vocabulary()
    # Word frequencies follow Zipf's law (weight 1/rank), as in text.
    ranks = list(range(WORDS))
    weights = list(accumulate(1 / (k + 1) for k in ranks))
    encoded = [orjson.dumps(w) for w in words]
    producers = [
        (new_producer_id(), Clock.at(1_700_000_000_000_000_000 + i)) for i in range(PRODUCERS)
    ]
    in_txn = [0] * PRODUCERS
    tally = [0] * WORDS
    lines: list[bytes] = []
    size = 0
    written = 0
    while written < n:
        index = rng.randrange(PRODUCERS)
        producer, clock = producers[index]
        for k in rng.choices(ranks, cum_weights=weights, k=min(RUN, n - written)):
            tally[k] += 1
            uuid = str(build_uuid(producer, clock.tick(), CONTINUE_TXN)).encode()
            lines.append(b'{"_meta":{"uuid":"%s"},"word":%s}\n' % (uuid, encoded[k]))
            written += 1
            in_txn[index] += 1
            if in_txn[index] == TXN_MESSAGES:
                in_txn[index] = 0
                lines.append(_ack(producer, clock))
        size += sum(map(len, lines[-RUN:]))
        if size >= APPEND_BYTES:
            yield b"".join(lines)
            lines, size = [], 0
    for index, (producer, clock) in enumerate(producers):
        if in_txn[index]:
            lines.append(_ack(producer, clock))
    if lines:
        yield b"".join(lines)
    for word, c in zip(words, tally, strict=True):
        if c:
            counts[word] = counts.get(word, 0) + c


def _ack(producer: bytes, clock: Clock) -> bytes:
    uuid = str(build_uuid(producer, clock.tick(), ACK_TXN)).encode()
    return b'{"_meta":{"uuid":"%s","ack":true}}\n' % uuid


def generate(
    directory: Path, messages: int, partitions: int, *, plain_copy: bool = True
) -> dict[str, Any]:
    """Write the input (see the module docstring); returns what expected.json
    holds. Without `plain_copy` no `input-<p>.ndjson` is written (the floor
    and the peer cannot run then)."""
    directory.mkdir(parents=True, exist_ok=True)
    core = JournalServerCore(FileStorage(directory / "broker"))
    client = LocalJournalClient(core)
    expected: dict[str, Any] = {"messages": messages, "partitions": []}

    async def append_all(p: int, share: int, out: BinaryIO) -> None:
        spec = new_journal_spec(partition(p), content_type=NDJSON, fragment_length=FRAGMENT_LENGTH)
        await apply_journals(client, [upsert(spec)])
        counts: dict[str, int] = {}
        for data in chunks_of(share, p, counts):
            response = await client.append(pb.AppendRequest(journal=partition(p)), [data])
            if response.status != pb.Status.OK:
                raise RuntimeError(f"appending to {partition(p)}: {response.status}")
            out.write(data)
        head = core.write_head(partition(p))
        expected["partitions"].append(
            {"journal": partition(p), "messages": share, "head": head, "counts": counts}
        )

    for p in range(partitions):
        share = messages // partitions + (1 if p < messages % partitions else 0)
        copy = directory / f"input-{p}.ndjson" if plain_copy else Path(os.devnull)
        with open(copy, "wb") as out:
            trio.run(append_all, p, share, out)
    core.close()
    (directory / "expected.json").write_text(json.dumps(expected))
    return expected


def load_expected(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "expected.json").read_text())  # type: ignore[no-any-return]


# --------------------------------------------------------------------------
# Measuring


class Meter:
    """Wall and CPU time of a run, and its peak RSS along the way."""

    def __init__(self, rss_at: int = 0) -> None:
        self.started: tuple[float, float] | None = None
        self.ended: tuple[float, float] | None = None
        self.counted = 0
        self.rss_at = rss_at
        self.rss_at_mib: float | None = None

    def start(self) -> None:
        if self.started is None:
            self.started = (time.perf_counter(), time.process_time())

    def count(self, n: int) -> None:
        self.counted += n
        if self.rss_at and self.rss_at_mib is None and self.counted >= self.rss_at:
            self.rss_at_mib = peak_rss_mib()

    def stop(self) -> None:
        self.ended = (time.perf_counter(), time.process_time())

    def result(self, messages: int, **extra: Any) -> dict[str, Any]:
        assert self.started is not None and self.ended is not None
        wall = self.ended[0] - self.started[0]
        return {
            "messages": messages,
            "wall_s": wall,
            "cpu_s": self.ended[1] - self.started[1],
            "msgs_per_s": messages / wall,
            "peak_rss_mib": peak_rss_mib(),
            "rss_at_mib": self.rss_at_mib,
            **extra,
        }


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM: unlike ru_maxrss, it
    starts afresh at exec rather than inheriting the parent's peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_note() -> str:
    """The machine's load as this group starts: the figures are only as
    quiet as the machine (these runs share theirs with other work)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def tune_gc() -> None:
    """What a long-running member does once it has started: move the start-up
    heap out of the collector's view, and collect the young generation less
    often (a transaction's decoded messages are young and die young)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


# --------------------------------------------------------------------------
# The gazette-trio word count


class WordCount:
    """The application: per-transaction deltas in memory, flushed in finalize_txn."""

    def __init__(self, store_kind: str, run_dir: Path, meter: Meter) -> None:
        self.store_kind = store_kind
        self.run_dir = run_dir
        self.meter = meter
        self.deltas: dict[str, dict[str, int]] = {}

    async def new_store(self, shard: Any, recorder: Any) -> Any:
        from gazette_trio.consumer.stores import JSONFileStore, SQLiteStore, SQLStore

        self.deltas[shard.id] = {}
        store: Any
        if self.store_kind == "json":
            store = await JSONFileStore.open(recorder=recorder)
        elif self.store_kind == "sqlite":
            store = await SQLiteStore.open(recorder, bootstrap=SCHEMA)
        elif self.store_kind == "sql":
            store = await SQLStore.sqlite(self.run_dir / f"{shard.id}.db", bootstrap=[SCHEMA])
        else:
            raise ValueError(f"unknown store {self.store_kind!r}")
        # The shard starts reading its sources right after this: its readers
        # decode ahead of the transaction loop, so the clock starts here.
        self.meter.start()
        return store

    def new_message(self, spec: Any) -> type:
        return dict

    async def consume_message(self, shard: Any, store: Any, envelope: Any, publisher: Any) -> None:
        word = envelope.message["word"]
        deltas = self.deltas[shard.id]
        deltas[word] = deltas.get(word, 0) + 1

    async def finalize_txn(self, shard: Any, store: Any, publisher: Any) -> None:
        deltas = self.deltas[shard.id]
        if not deltas:
            return
        self.deltas[shard.id] = {}
        self.meter.count(sum(deltas.values()))
        if self.store_kind == "json":
            state = store.state
            for word, n in deltas.items():
                state[word] = state.get(word, 0) + n
        elif self.store_kind == "sqlite":
            store.db.executemany(ADD_DELTAS, deltas.items())
        else:
            txn = await store.transaction()
            await txn.executemany(ADD_DELTAS, deltas.items())


class AggregateWordCount(Aggregation[dict[str, Any], int]):
    """The same count in the short form: a key per message, a reducer."""

    message_type = dict

    def __init__(self, store_kind: str, run_dir: Path, meter: Meter) -> None:
        self.store_kind = store_kind
        self.run_dir = run_dir
        self.meter = meter

    def keys(self, message: dict[str, Any]) -> tuple[str]:
        return (message["word"],)

    def reduce(self, count: int | None, message: dict[str, Any]) -> int:
        return (count or 0) + 1

    async def new_store(self, shard: Any, recorder: Any) -> Any:
        from gazette_trio.consumer.stores import JSONFileStore, SQLiteStore, SQLStore

        store: Any
        if self.store_kind == "json":
            store = await JSONFileStore.open(recorder=recorder)
        elif self.store_kind == "sqlite":
            store = await SQLiteStore.open(recorder)
        elif self.store_kind == "sql":
            store = await SQLStore.sqlite(self.run_dir / f"{shard.id}.db")
        else:
            raise ValueError(f"unknown store {self.store_kind!r}")
        self.meter.start()
        return store


class ServedWordCount(WordCount):
    """The word count as `gazette-trio serve` runs it: `application.module =
    "benchmarks.wordcount:ServedWordCount"`, `[application.settings]`
    `store = "sqlite"` (or `"json"`)."""

    def __init__(self, store: str = "sqlite") -> None:
        if store not in ("json", "sqlite"):
            raise ValueError(f"store must be json or sqlite under serve, not {store!r}")
        super().__init__(store, Path("."), Meter())


def create_journals(directory: Path, specs: list[pb.JournalSpec]) -> None:
    """Create journals in the file storage under `directory/broker` (while no
    server runs over it)."""
    core = JournalServerCore(FileStorage(directory / "broker"))
    try:
        trio.run(apply_journals, LocalJournalClient(core), [upsert(s) for s in specs])
    finally:
        core.close()


def shard_specs(expected: dict[str, Any], store_kind: str, run: str) -> list[pc.ShardSpec]:
    recorded = store_kind in ("json", "sqlite")
    return [
        pc.ShardSpec(
            id=shard_id(p),
            sources=[pc.ShardSpecSource(journal=part["journal"])],
            recovery_log_prefix=f"bench/recovery/{run}" if recorded else "",
            hint_prefix=f"/bench/hints/{run}" if recorded else "",
            min_txn_duration=datetime.timedelta(seconds=0),
            max_txn_duration=datetime.timedelta(seconds=1),
        )
        for p, part in enumerate(expected["partitions"])
    ]


async def committed_counts(
    store_kind: str, store: Any, run_dir: Path, sid: str, form: str = "full"
) -> dict[str, int]:
    if store_kind == "json":
        return dict(store.state)
    query = "SELECT word, n FROM counts"
    if form == "aggregate":
        query = f"SELECT key, CAST(value AS INTEGER) FROM {AGGREGATE_TABLE}"
    if store_kind == "sqlite":
        return dict(store.db.execute(query).fetchall())
    db = sqlite3.connect(run_dir / f"{sid}.db")
    try:
        return dict(db.execute(query).fetchall())
    finally:
        db.close()


@contextlib.asynccontextmanager
async def bench_cluster(
    core: JournalServerCore, run_dir: Path, app: Any, specs: list[pc.ShardSpec]
) -> AsyncIterator[Any]:
    """An in-process consumer group over `core` with `specs` applied (and
    their recovery logs created), before any member joined."""
    from gazette_trio.etcd import MemoryEtcd
    from gazette_trio.testing.cluster import Cluster

    async with MemoryEtcd.open() as etcd, trio.open_nursery() as nursery:
        cluster = Cluster(nursery, lambda: app, core, etcd, run_dir, ROOT)
        logs = [
            new_journal_spec(
                f"{s.recovery_log_prefix}/{s.id}", content_type=CONTENT_TYPE_RECOVERY_LOG
            )
            for s in specs
            if s.recovery_log_prefix
        ]
        if logs:
            await cluster.apply_journals(logs)
        await cluster.apply_shards(specs)
        yield cluster
        nursery.cancel_scope.cancel()


async def consume(
    directory: Path,
    store_kind: str,
    *,
    rss_at: int = 0,
    gc_tuned: bool = True,
    form: str = "full",
) -> dict[str, Any]:
    expected = load_expected(directory)
    run = f"{store_kind}-{os.getpid()}"
    run_dir = directory / "runs" / run
    run_dir.mkdir(parents=True)
    meter = Meter(rss_at)
    app: Any = (AggregateWordCount if form == "aggregate" else WordCount)(
        store_kind, run_dir, meter
    )
    core = JournalServerCore(FileStorage(directory / "broker"))
    specs = shard_specs(expected, store_kind, run)
    try:
        async with bench_cluster(core, run_dir, app, specs) as cluster:
            if gc_tuned:
                tune_gc()
            await cluster.add_member("bench")
            shards = []
            for spec, part in zip(specs, expected["partitions"], strict=True):
                shards.append(
                    await cluster.wait_read_through(spec.id, {part["journal"]: part["head"]})
                )
            meter.stop()
            for spec, part, shard in zip(specs, expected["partitions"], shards, strict=True):
                got = await committed_counts(store_kind, shard.store, run_dir, spec.id, form)
                if got != part["counts"]:
                    raise AssertionError(f"shard {spec.id}: committed counts differ from the input")
    finally:
        core.close()
    return meter.result(expected["messages"], store=store_kind, form=form)


# --------------------------------------------------------------------------
# Latency at a steady rate

OUTPUT = "bench/counts/part-000"


class LatencyWordCount(WordCount):
    """The word count, also publishing one output message per transaction
    (uncommitted, so it becomes readable when the transaction's ACK is
    written) and timing what `latency` reports."""

    def __init__(self, store_kind: str, run_dir: Path) -> None:
        super().__init__(store_kind, run_dir, Meter())
        self.out = fixed_mapping(OUTPUT, NDJSON)
        self.sent: list[float] = []  # publish times of the open transaction's messages
        self.by_txn: dict[int, list[float]] = {}
        self.txns = 0
        self.consumed: list[float] = []  # publish → consume_message
        self.commits: list[float] = []  # start_commit → durable
        self.visible: list[float] = []  # publish → output read-committed downstream

    async def consume_message(self, shard: Any, store: Any, envelope: Any, publisher: Any) -> None:
        message = envelope.message
        now = time.perf_counter()
        self.consumed.append(now - message["ts"])
        self.sent.append(message["ts"])
        await super().consume_message(shard, store, envelope, publisher)

    async def finalize_txn(self, shard: Any, store: Any, publisher: Any) -> None:
        await super().finalize_txn(shard, store, publisher)
        self.txns += 1
        self.by_txn[self.txns] = self.sent
        self.sent = []
        publisher.publish_uncommitted(self.out, {"txn": self.txns})

    async def begin_txn(self, shard: Any, store: Any) -> None:
        pass

    def finished_txn(self, shard: Any, store: Any, future: Any) -> None:
        started = time.perf_counter()

        async def timed() -> None:
            try:
                await future
            except Exception:
                return  # the shard fails with it
            self.commits.append(time.perf_counter() - started)

        shard.nursery.start_soon(timed)

    async def read_output(self, client: Any, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """A downstream read-committed reader of the output journal."""
        from gazette_trio.message import Sequencer, open_committed

        async with open_committed(client, OUTPUT, dict, Sequencer()) as reader:
            task_status.started()
            async for envelope in reader:
                if envelope.is_ack:
                    continue
                now = time.perf_counter()
                for sent in self.by_txn.pop(envelope.message["txn"], ()):
                    self.visible.append(now - sent)


async def latency(directory: Path, store_kind: str, rate: int, seconds: float) -> dict[str, Any]:
    """Publish `rate` msgs/s for `seconds` to a running word count; time its
    commits, and each message from publish to the consumer and to a
    downstream read-committed reader of the consumer's output."""
    from gazette_trio.broker.append_service import open_append_service
    from gazette_trio.message import Publisher

    run = f"latency-{store_kind}-{os.getpid()}"
    run_dir = directory / "runs" / run
    run_dir.mkdir(parents=True)
    core = JournalServerCore(FileStorage(run_dir / "broker"))
    client = LocalJournalClient(core)
    await apply_journals(
        client,
        [
            upsert(new_journal_spec(partition(0), content_type=NDJSON)),
            upsert(new_journal_spec(OUTPUT, content_type=NDJSON)),
        ],
    )
    app = LatencyWordCount(store_kind, run_dir)
    expected = {"partitions": [{"journal": partition(0)}]}
    specs = shard_specs(expected, store_kind, run)
    words = vocabulary()
    rng = random.Random(3)
    warmup = 1.0
    tick = 0.002
    per_tick = max(1, round(rate * tick))
    published = 0
    try:
        async with (
            bench_cluster(core, run_dir, app, specs) as cluster,
            open_append_service(client) as appends,
            trio.open_nursery() as tasks,
        ):
            tune_gc()
            await cluster.add_member("bench")
            await cluster.wait_for_primary(shard_id(0))
            await tasks.start(app.read_output, client)
            publisher = Publisher(appends)
            mapping = fixed_mapping(partition(0), NDJSON)
            start = trio.current_time()
            marks: tuple[int, int, int, int] | None = None
            cpu_start = 0.0
            for k in itertools.count():
                at = start + k * tick
                if at - start >= warmup + seconds:
                    break
                if marks is None and at - start >= warmup:
                    marks = (len(app.consumed), len(app.commits), len(app.visible), published)
                    cpu_start = time.process_time()
                await trio.sleep_until(at)
                for _ in range(per_tick):
                    publisher.publish_committed(
                        mapping, {"word": rng.choice(words), "ts": time.perf_counter()}
                    )
                    published += 1
            elapsed = trio.current_time() - start - warmup
            cpu = time.process_time() - cpu_start
            with trio.fail_after(30):
                while len(app.visible) < published or app.by_txn:
                    await trio.sleep(0.01)
            tasks.cancel_scope.cancel()
    finally:
        core.close()
    assert marks is not None
    consumed, commits, visible = (
        app.consumed[marks[0] :],
        app.commits[marks[1] :],
        app.visible[marks[2] :],
    )
    return {
        "rate": (published - marks[3]) / elapsed if elapsed > 0 else 0.0,
        "messages": len(consumed),
        "transactions": len(commits),
        "cpu_share": cpu / elapsed if elapsed > 0 else 0.0,
        "consumed_ms": percentiles(consumed),
        "commit_ms": percentiles(commits),
        "visible_ms": percentiles(visible),
        "store": store_kind,
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50": math.nan, "p99": math.nan}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    return {"p50": at(0.50), "p99": at(0.99)}


# --------------------------------------------------------------------------
# The floor


def floor(directory: Path) -> dict[str, Any]:
    """See the module docstring. Partition 0 only."""
    expected = load_expected(directory)
    run_dir = directory / "runs" / f"floor-{os.getpid()}"
    run_dir.mkdir(parents=True)
    db = sqlite3.connect(run_dir / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(SCHEMA)
    db.execute("CREATE TABLE offsets (journal TEXT PRIMARY KEY, offset INTEGER NOT NULL)")
    journal = partition(0)
    meter = Meter()
    meter.start()
    loads = orjson.loads
    counts: dict[str, int] = {}
    changed: set[str] = set()
    offset = 0
    lines = 0

    def commit() -> None:
        db.execute("BEGIN")
        db.executemany(
            "INSERT OR REPLACE INTO counts (word, n) VALUES (?, ?)",
            [(w, counts[w]) for w in changed],
        )
        db.execute("INSERT OR REPLACE INTO offsets VALUES (?, ?)", (journal, offset))
        db.execute("COMMIT")
        changed.clear()

    with open(directory / "input-0.ndjson", "rb") as f:
        rest = b""
        while chunk := f.read(READ_SIZE):
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for line in parts:
                offset += len(line) + 1
                word = loads(line).get("word")
                if word is not None:
                    counts[word] = counts.get(word, 0) + 1
                    changed.add(word)
                lines += 1
                if lines % FLOOR_COMMIT_LINES == 0:
                    commit()
    commit()
    meter.stop()
    db.close()
    if counts != expected["partitions"][0]["counts"]:
        raise AssertionError("floor: counts differ from the input")
    return meter.result(expected["partitions"][0]["messages"])


# --------------------------------------------------------------------------
# The peer


def bytewax_available() -> bool:
    try:
        import bytewax.testing  # noqa: F401
    except ImportError:
        return False
    return True


def bytewax_run(directory: Path) -> dict[str, Any]:
    """The word count as a Bytewax dataflow over partition 0: lines from a
    FileSource, decoded with orjson, counted per word by `count_final`, whose
    state (and the source's offset) Bytewax snapshots into its SQLite
    recovery partition at the end of every 1 s epoch. Single worker, as the
    consumer runs one shard on one Python thread."""
    from bytewax import operators as op
    from bytewax.connectors.files import FileSource
    from bytewax.dataflow import Dataflow
    from bytewax.recovery import RecoveryConfig, init_db_dir
    from bytewax.testing import TestingSink, run_main

    expected = load_expected(directory)
    run_dir = directory / "runs" / f"bytewax-{os.getpid()}"
    run_dir.mkdir(parents=True)
    init_db_dir(run_dir, 1)  # type: ignore[no-untyped-call]
    loads = orjson.loads
    counted: list[tuple[str, int]] = []

    flow = Dataflow("word_count")
    lines = op.input("lines", flow, FileSource(directory / "input-0.ndjson"))
    words = op.filter_map("words", lines, lambda line: loads(line).get("word"))
    counts = op.count_final("count", words, lambda word: word)
    op.output("out", counts, TestingSink(counted))

    meter = Meter()
    meter.start()
    run_main(  # type: ignore[no-untyped-call]
        flow,
        epoch_interval=datetime.timedelta(seconds=1),
        recovery_config=RecoveryConfig(run_dir),  # type: ignore[no-untyped-call]
    )
    meter.stop()
    if dict(counted) != expected["partitions"][0]["counts"]:
        raise AssertionError("bytewax: counts differ from the input")
    return meter.result(expected["partitions"][0]["messages"])


# --------------------------------------------------------------------------
# Entry point for the groups' child processes

CASES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "consume": lambda a: trio.run(
        lambda: consume(a.dir, a.store, rss_at=a.rss_at, gc_tuned=not a.default_gc, form=a.form)
    ),
    "floor": lambda a: floor(a.dir),
    "bytewax": lambda a: bytewax_run(a.dir),
    "latency": lambda a: trio.run(latency, a.dir, a.store, a.rate, a.seconds),
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wordcount")
    parser.add_argument("case", choices=[*CASES, "generate"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--store", default="sqlite", choices=["json", "sqlite", "sql"])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--rss-at", type=int, default=0)
    parser.add_argument("--default-gc", action="store_true")
    parser.add_argument("--form", default="full", choices=["full", "aggregate"])
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.case == "generate":
        generate(args.dir, args.messages, args.partitions)
        return 0
    result = CASES[args.case](args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
