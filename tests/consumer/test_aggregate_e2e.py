"""End to end: the word count written as an `Aggregation` (the short form),
held to the same exactly-once test as the full form in test_e2e.py, on
each kind of store.

The aggregation publishes, at each transaction's end, every changed word
with its new total. Exactly-once means: the committed state holds each
line's words once, and a read-committed reader of the output sees, per
word, totals that only go up and end at the word's count. A transaction
rolled back and run again after a crash would show a total twice, or
going down; one lost would leave a count short.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from gazette_trio import (
    Aggregation,
    JSONFileStore,
    JSONMessage,
    MemoryStore,
    SQLiteStore,
    SQLStore,
    Store,
    fixed_mapping,
)
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.consumer.aggregate import TABLE
from gazette_trio.consumer.stores.memory import MemoryDatabase
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
from gazette_trio.recoverylog import Recorder
from gazette_trio.testing.cluster import ROOT, Cluster, open_cluster

from .test_e2e import (
    COUNTS,
    LINES,
    NDJSON,
    count_through_a_crash_and_a_reassignment,
    expected_counts,
    output_counts,
    shard,
)
from .test_e2e import WordCount as FullWordCount


# The whole application, as a user writes it (12 lines).
class WordCount(Aggregation[JSONMessage, int]):
    message_type = JSONMessage
    output = fixed_mapping(COUNTS, NDJSON)

    def keys(self, line: JSONMessage) -> Iterable[str]:
        return line["text"].split()

    def reduce(self, count: int | None, line: JSONMessage) -> int:
        return (count or 0) + 1

    def derive(self, word: str, count: int) -> JSONMessage:
        return JSONMessage(word=word, count=count)


class InMemory(WordCount):
    """The same, in a fenced MemoryStore shared by members (an external
    database's stand-in)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def new_store(self, shard: Any, recorder: Recorder | None) -> Store:
        return MemoryStore(self.db)


class InSQLite(WordCount):
    """The same, in an SQLiteStore recorded into the shard's recovery log."""

    async def new_store(self, shard: Any, recorder: Recorder | None) -> Store:
        return await SQLiteStore.open(recorder)


class InSQL(WordCount):
    """The same, in an SQLStore: a database file every member opens (fenced,
    as a database server would be), or a PostgreSQL database."""

    def __init__(self, path: Path | None = None, dsn: str = "") -> None:
        self.path = path
        self.dsn = dsn

    async def new_store(self, shard: Any, recorder: Recorder | None) -> Store:
        if self.dsn:
            return await SQLStore.postgres(self.dsn)
        assert self.path is not None
        return await SQLStore.sqlite(self.path)


STORES = ["memory", "json", "sqlite", "sql", pytest.param("postgres", marks=pytest.mark.postgres)]


def recorded(spec: pc.ShardSpec) -> pc.ShardSpec:
    spec.recovery_log_prefix = "recovery"
    spec.hint_prefix = "/hints"
    return spec


async def committed_counts(
    kind: str, db: MemoryDatabase, c: Cluster, sql_path: Path, dsn: str = ""
) -> dict[str, int]:
    """The state of the shard's committed store, as its current primary has it."""
    s = c.primary_of("count-000")
    assert s is not None
    store = s[1].store
    if kind == "memory":
        return db.committed_state(s[1].fqn)
    if kind == "json":
        assert isinstance(store, JSONFileStore)
        return dict(store.state)
    if kind == "postgres":
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(f"SELECT key, value FROM {TABLE}").fetchall()
            return {k: json.loads(v) for k, v in rows}
    if kind == "sql":
        with contextlib.closing(sqlite3.connect(sql_path)) as db:
            return {k: json.loads(v) for k, v in db.execute(f"SELECT key, value FROM {TABLE}")}
    assert isinstance(store, SQLiteStore)
    return {k: json.loads(v) for k, v in store.db.execute(f"SELECT key, value FROM {TABLE}")}


@contextlib.asynccontextmanager
async def open_aggregate(
    tmp_path: Path, kind: str, dsn: str = ""
) -> AsyncIterator[tuple[Cluster, MemoryDatabase]]:
    db = MemoryDatabase()
    factories: dict[str, Callable[[], WordCount]] = {
        "memory": lambda: InMemory(db),
        "json": WordCount,
        "sqlite": InSQLite,
        "sql": lambda: InSQL(tmp_path / "aggregate.db"),
        "postgres": lambda: InSQL(dsn=dsn),
    }
    factory = factories[kind]
    async with open_group(tmp_path, factory) as c:
        yield c, db


def open_group(
    tmp_path: Path, factory: Callable[[], Any]
) -> contextlib.AbstractAsyncContextManager[Cluster]:
    """A consumer group of `factory`'s application with the input and output
    journals, and the shard's recovery log (used if its spec names it)."""
    return open_cluster(
        factory,
        data_dir=tmp_path,
        journals=[
            new_journal_spec(LINES, content_type=NDJSON),
            new_journal_spec(COUNTS, content_type=NDJSON),
            new_journal_spec("recovery/count-000", content_type=CONTENT_TYPE_RECOVERY_LOG),
        ],
    )


async def output_totals(c: Cluster) -> dict[str, int]:
    """The last total of each word, checking that each total goes up."""
    last: dict[str, int] = {}
    for message in await c.read_committed(COUNTS):
        word, count = message["word"], message["count"]
        assert count > last.get(word, 0), f"{word}: total {count} after {last.get(word)}"
        last[word] = count
    return last


@pytest.mark.parametrize("kind", STORES)
async def test_exactly_once_across_a_crash_and_a_reassignment(
    tmp_path: Path,
    kind: str,
    request: pytest.FixtureRequest,
    autojump_clock: trio.testing.MockClock,
) -> None:
    dsn = request.getfixturevalue("postgres_dsn") if kind == "postgres" else ""
    async with open_aggregate(tmp_path, kind, dsn) as (c, db):
        spec = recorded(shard(min_s=0.2, max_s=0.5))
        lines = await count_through_a_crash_and_a_reassignment(c, spec)
        committed = await committed_counts(kind, db, c, tmp_path / "aggregate.db", dsn)
        assert committed == expected_counts(lines)
        assert await output_totals(c) == expected_counts(lines)


async def test_a_failed_transaction_publishes_nothing_it_gathered(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    class Failing(InMemory):
        def reduce(self, count: int | None, line: JSONMessage) -> int:
            if "MALFORMED" in line["text"]:
                raise ValueError("cannot count a malformed line")
            return super().reduce(count, line)

    db = MemoryDatabase()
    async with open_group(tmp_path, lambda: Failing(db)) as c:
        await c.apply_shards([shard(min_s=0.5, max_s=1.0)])
        await c.add_member("alpha")
        await c.publish(LINES, [{"text": "one two"}, {"text": "MALFORMED three"}])
        await trio.sleep(2)
        # The shard failed with the error; the first line's words were
        # neither committed nor published.
        assert c.primary_of("count-000") is None
        assert await c.read_committed(COUNTS) == []
        assert db.committed_state(f"{ROOT}/items/count-000") == {}


@pytest.mark.parametrize("form", ["full", "aggregate"])
async def test_outputs_appended_before_a_crash_are_never_read_twice(
    tmp_path: Path, form: str, autojump_clock: trio.testing.MockClock
) -> None:
    """The member dies after its transaction's outputs were appended and
    before its commit became durable (a slow store holds the commit): the
    next member redoes the transaction, and readers see its outputs once.
    Publishing committed instead of uncommitted fails this."""
    db = MemoryDatabase()
    db.commit_delay = 5.0
    factory: Callable[[], Any] = (
        (lambda: InMemory(db)) if form == "aggregate" else (lambda: FullWordCount(db))
    )
    async with open_group(tmp_path, factory) as c:
        await c.apply_shards([shard(min_s=0.0, max_s=0.5)])
        await c.add_member("alpha")
        first = [f"a{i % 3} b" for i in range(10)]
        await c.publish(LINES, [{"text": t} for t in first])
        with trio.fail_after(5):
            while not (await c.write_heads([COUNTS]))[COUNTS]:
                await trio.sleep(0.01)
        await c.crash("alpha")
        db.commit_delay = 0.0
        await c.add_member("beta")
        second = [f"a{i % 5} c" for i in range(10)]
        await c.publish(LINES, [{"text": t} for t in second])
        head = (await c.write_heads([LINES]))[LINES]
        s = await c.wait_read_through("count-000", {LINES: head})

        expected = expected_counts(first + second)
        if form == "aggregate":
            assert db.committed_state(s.fqn) == expected
            assert await output_totals(c) == expected
        else:
            assert db.committed_state(s.fqn) == expected
            assert await output_counts(c) == expected
