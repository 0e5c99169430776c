"""Store commit latency against plain SQLite doing the same writes.

Each transaction upserts `WRITES` rows of ~100 bytes (keys drawn from
`KEYS`, so pages are rewritten as a long-running consumer's would be) and
commits with a checkpoint; the figure is the mean wall time of one whole
transaction (statements + commit until durable), run one after another.

- SQLiteStore, its recovery log on the embedded journal server with file
  storage (each append fsynced), beside plain SQLite in WAL mode with
  `synchronous=FULL` (each commit fsynced): both are durable on commit.
- The same SQLiteStore with the log in memory, beside plain WAL SQLite with
  `synchronous=NORMAL` (no fsync at commit): the store's own CPU cost.
- SQLStore on an SQLite file beside the same statements through plain
  `sqlite3` (WAL, synchronous=FULL, BEGIN IMMEDIATE): the cost of the worker
  thread and the fenced checkpoint row.
- One small upsert inline on the Trio thread beside the same statement
  through `trio.to_thread.run_sync`: why SQLiteStore runs SQLite inline.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import apsw
import trio

from gazette_trio.broker.append_service import open_append_service
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.server import JournalServerCore, MemoryStorage
from gazette_trio.broker.server.file_storage import FileStorage
from gazette_trio.consumer.stores.sql import SQLStore
from gazette_trio.consumer.stores.sqlite import SQLiteStore
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.author import new_author
from gazette_trio.recoverylog.fsm import FSM
from gazette_trio.recoverylog.recorder import Recorder, open_recorder

from .harness import Report

WRITES = 10
KEYS = 5_000
VALUE = b"v" * 100
LOG = "bench/recovery-log"
SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)"
UPSERT = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"


def transactions(n: int) -> list[list[int]]:
    rng = random.Random(11)
    return [[rng.randrange(KEYS) for _ in range(WRITES)] for _ in range(n)]


def checkpoint(i: int) -> pc.Checkpoint:
    return pc.Checkpoint(sources={"bench/source": pc.CheckpointSource(read_through=i * 1000)})


class _Shard:
    """Just what a store uses of a shard: its name and nursery."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.fqn = "/bench/items/shard"
        self.nursery = nursery


@contextlib.asynccontextmanager
async def recorder_on(storage: Any, directory: Path) -> AsyncIterator[Recorder]:
    core = JournalServerCore(storage)
    client = LocalJournalClient(core)
    await apply_journals(
        client, [upsert(new_journal_spec(LOG, content_type=CONTENT_TYPE_RECOVERY_LOG))]
    )
    async with open_append_service(client) as appender:
        await trio.Path(directory).mkdir()
        yield await open_recorder(
            log=LOG,
            fsm=FSM(FsmHints(log=LOG)),
            author=new_author(),
            directory=directory,
            appender=appender,
        )


async def sqlite_store_latency(storage: Any, directory: Path, txns: list[list[int]]) -> float:
    async with recorder_on(storage, directory) as recorder, trio.open_nursery() as nursery:
        store = await SQLiteStore.open(recorder, bootstrap=SCHEMA)
        shard: Any = _Shard(nursery)
        await store.restore_checkpoint(shard)
        db = store.db
        start = time.perf_counter()
        for i, keys in enumerate(txns):
            for k in keys:
                db.execute(UPSERT, (k, VALUE))
            await store.start_commit(shard, checkpoint(i), set())
        elapsed = time.perf_counter() - start
        store.destroy()
        nursery.cancel_scope.cancel()
    return elapsed / len(txns)


def plain_sqlite_latency(path: Path, synchronous: str, txns: list[list[int]]) -> float:
    db = apsw.Connection(str(path))
    db.execute(f"PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}")
    db.execute(SCHEMA)
    db.execute("CREATE TABLE IF NOT EXISTS cp (id INTEGER PRIMARY KEY, cp BLOB)")
    start = time.perf_counter()
    for i, keys in enumerate(txns):
        db.execute("BEGIN")
        for k in keys:
            db.execute(UPSERT, (k, VALUE))
        db.execute("INSERT OR REPLACE INTO cp VALUES (0, ?)", (bytes(checkpoint(i)),))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed / len(txns)


async def sql_store_latency(path: Path, txns: list[list[int]]) -> float:
    store = await SQLStore.sqlite(path, bootstrap=[SCHEMA])
    async with trio.open_nursery() as nursery:
        shard: Any = _Shard(nursery)
        await store.restore_checkpoint(shard)
        start = time.perf_counter()
        for i, keys in enumerate(txns):
            txn = await store.transaction()
            await txn.executemany(UPSERT, [(k, VALUE) for k in keys])
            await store.start_commit(shard, checkpoint(i), set())
        elapsed = time.perf_counter() - start
    store.destroy()
    return elapsed / len(txns)


def plain_sqlite3_latency(path: Path, txns: list[list[int]]) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(SCHEMA)
    db.execute("CREATE TABLE IF NOT EXISTS cp (id TEXT PRIMARY KEY, fence INTEGER, cp BLOB)")
    db.execute("INSERT OR REPLACE INTO cp VALUES ('s', 1, x'')")
    start = time.perf_counter()
    for i, keys in enumerate(txns):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(UPSERT, [(k, VALUE) for k in keys])
        db.execute("UPDATE cp SET cp = ? WHERE id = 's' AND fence = 1", (bytes(checkpoint(i)),))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed / len(txns)


async def statement_cost(path: Path, n: int) -> tuple[float, float]:
    """Seconds per small upsert: inline, and through a worker thread."""
    db = apsw.Connection(str(path))
    db.execute("PRAGMA journal_mode=WAL; PRAGMA locking_mode=EXCLUSIVE")
    db.execute(SCHEMA)
    db.execute("BEGIN")

    def one(k: int) -> None:
        db.execute(UPSERT, (k, VALUE))

    start = time.perf_counter()
    for k in range(n):
        one(k)
    inline = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for k in range(n):
        await trio.to_thread.run_sync(one, k)
    threaded = (time.perf_counter() - start) / n
    db.execute("ROLLBACK")
    db.close()
    return inline, threaded


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


async def run(report: Report) -> None:
    n = 100 if report.quick else 500
    repeat = 1 if report.quick else 3
    txns = transactions(n)
    root = Path(tempfile.mkdtemp(prefix="gazette-trio-bench-stores-"))
    counter = iter(range(1_000_000))

    def fresh(name: str) -> Path:
        return root / f"{name}-{next(counter)}"

    try:
        plain_full = best(lambda: plain_sqlite_latency(fresh("full.db"), "FULL", txns), repeat)
        recorded_file = min(
            [
                await sqlite_store_latency(FileStorage(fresh("broker")), fresh("store"), txns)
                for _ in range(repeat)
            ]
        )
        report.add(
            "stores",
            f"SQLiteStore txn ({WRITES} upserts + commit), log on fsynced journal storage",
            recorded_file * 1e3,
            "ms",
            floor=plain_full * 1e3,
            floor_name="plain SQLite WAL synchronous=FULL",
            higher_is_better=False,
            target_ratio=2.0,
        )

        plain_normal = best(
            lambda: plain_sqlite_latency(fresh("normal.db"), "NORMAL", txns), repeat
        )
        recorded_memory = min(
            [
                await sqlite_store_latency(MemoryStorage(), fresh("store"), txns)
                for _ in range(repeat)
            ]
        )
        report.add(
            "stores",
            f"SQLiteStore txn ({WRITES} upserts + commit), log in memory",
            recorded_memory * 1e3,
            "ms",
            floor=plain_normal * 1e3,
            floor_name="plain SQLite WAL synchronous=NORMAL",
            higher_is_better=False,
            note="the store's CPU cost: VFS, recorder, append path",
        )

        plain3 = best(lambda: plain_sqlite3_latency(fresh("plain3.db"), txns), repeat)
        sql_store = min(
            [await sql_store_latency(fresh("sqlstore.db"), txns) for _ in range(repeat)]
        )
        report.add(
            "stores",
            f"SQLStore on SQLite txn ({WRITES} upserts + commit)",
            sql_store * 1e3,
            "ms",
            floor=plain3 * 1e3,
            floor_name="plain sqlite3 WAL synchronous=FULL",
            higher_is_better=False,
            target_ratio=2.5,
            note="pays two worker-thread round trips per transaction (statements, commit)",
        )

        inline, threaded = await statement_cost(fresh("stmt.db"), 2_000 if report.quick else 10_000)
        report.add(
            "stores",
            "small upsert through trio.to_thread",
            threaded * 1e6,
            "us",
            floor=inline * 1e6,
            floor_name="the same upsert inline on the Trio thread",
            higher_is_better=False,
            note="SQLiteStore runs statements inline",
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
