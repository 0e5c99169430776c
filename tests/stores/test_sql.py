"""SQLStore keeps state and fenced checkpoints in a real database.

Every behaviour is checked on both backends: an SQLite file, and the local
PostgreSQL server (a fresh database per session, `tests/services.py`). Each
test uses its own shard FQN and application table, and inspects the database
through an independent connection, as another process would see it.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from gazette_trio.consumer.stores.errors import (
    CommitDependencyError,
    FencedError,
    StoreError,
    StoreStateError,
)
from gazette_trio.consumer.stores.sql import SQLStore, checkpoints_table_ddl
from gazette_trio.opfuture import OpFuture
from gazette_trio.protocol import consumer as pc

from .shard import TestShard, checkpoint


class Backend:
    """One database, opened as many times as a test wants, and peeked at."""

    def __init__(self, dialect: str, target: str) -> None:
        self.dialect = dialect
        self.target = target  # an SQLite path or a PostgreSQL DSN
        suffix = uuid.uuid4().hex[:8]
        self.table = f"kv_{suffix}"
        self.fqn = f"/gazette/consumers/test/items/shard-{suffix}"
        self.stores: list[SQLStore] = []

    def q(self, sql: str) -> str:
        """The test's `?`-style SQL in this backend's parameter style."""
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    async def open(self) -> SQLStore:
        ddl = [f"CREATE TABLE IF NOT EXISTS {self.table} (k TEXT PRIMARY KEY, v INTEGER NOT NULL)"]
        if self.dialect == "postgresql":
            store = await SQLStore.postgres(self.target, bootstrap=ddl)
        else:
            store = await SQLStore.sqlite(self.target, bootstrap=ddl, busy_timeout=5.0)
        self.stores.append(store)
        return store

    def peek(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a query on a separate, autocommitting connection."""
        if self.dialect == "postgresql":
            import psycopg

            with psycopg.connect(self.target, autocommit=True) as conn:
                return [tuple(r) for r in conn.execute(self.q(sql), params).fetchall()]
        conn = sqlite3.connect(self.target, timeout=5.0)
        try:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def exec(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run a statement on a separate, autocommitting connection."""
        if self.dialect == "postgresql":
            import psycopg

            with psycopg.connect(self.target, autocommit=True) as conn:
                conn.execute(self.q(sql), params)
            return
        conn = sqlite3.connect(self.target, timeout=5.0, isolation_level=None)
        try:
            conn.execute(sql, params)
        finally:
            conn.close()

    def rows(self) -> dict[str, int]:
        return dict(self.peek(f"SELECT k, v FROM {self.table}"))  # type: ignore[arg-type]

    def fence(self) -> int | None:
        found = self.peek("SELECT fence FROM gazette_checkpoints WHERE shard_fqn = ?", (self.fqn,))
        return int(found[0][0]) if found else None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "postgresql":
        backend = Backend("postgresql", request.getfixturevalue("postgres_dsn"))
    else:
        backend = Backend("sqlite", str(tmp_path / "state.db"))
    yield backend
    for store in backend.stores:
        store.destroy()


async def put(db: Backend, store: SQLStore, key: str, value: int) -> None:
    txn = await store.transaction()
    await txn.execute(db.q(f"INSERT INTO {db.table} (k, v) VALUES (?, ?)"), (key, value))


async def test_a_fresh_shard_restores_an_empty_checkpoint_under_fence_one(db: Backend) -> None:
    """The first restore inserts the shard's row with fence 1 and an empty
    checkpoint, and returns that empty checkpoint."""
    store = await db.open()
    async with trio.open_nursery() as nursery:
        restored = await store.restore_checkpoint(TestShard(nursery, db.fqn))
    assert restored == pc.Checkpoint()
    assert store.fence == 1
    assert db.fence() == 1


async def test_a_commit_stores_rows_and_checkpoint_together_and_a_new_instance_restores_them(
    db: Backend,
) -> None:
    """Application writes and the checkpoint commit in one transaction; the
    next instance restores that checkpoint under a higher fence."""
    first = await db.open()
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, db.fqn)
        await first.restore_checkpoint(shard)
        await put(db, first, "a", 1)
        await put(db, first, "b", 2)
        assert db.rows() == {}, "uncommitted writes are invisible to others"
        await first.start_commit(shard, checkpoint({"journal/one": 100}), set())
        assert db.rows() == {"a": 1, "b": 2}

        second = await db.open()
        restored = await second.restore_checkpoint(TestShard(nursery, db.fqn))
    assert restored == checkpoint({"journal/one": 100})
    assert (first.fence, second.fence) == (1, 2)
    assert db.fence() == 2


async def test_a_transaction_without_writes_still_commits_its_checkpoint(db: Backend) -> None:
    """A consumer transaction that wrote nothing (say, it only read) still
    moves the checkpoint forward."""
    store = await db.open()
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, db.fqn)
        await store.restore_checkpoint(shard)
        await store.start_commit(shard, checkpoint({"j": 7}), set())
        await store.start_commit(shard, checkpoint({"j": 9}), set())
    (row,) = db.peek("SELECT checkpoint FROM gazette_checkpoints WHERE shard_fqn = ?", (db.fqn,))
    assert pc.Checkpoint.parse(bytes(row[0])) == checkpoint({"j": 9})


async def test_a_stale_instance_cannot_commit_after_a_new_instance_restored(
    db: Backend,
) -> None:
    """An old primary that restored earlier (say it was partitioned away) is
    fenced off: its commit fails with FencedError, none of its writes land,
    and the new instance commits normally."""
    old, new = await db.open(), await db.open()
    async with trio.open_nursery() as nursery:
        await old.restore_checkpoint(TestShard(nursery, db.fqn))
        await new.restore_checkpoint(TestShard(nursery, db.fqn))

        await put(db, old, "stale", 1)
        with pytest.raises(FencedError, match=f"fence of shard {db.fqn}.*restored fence 1"):
            await old.start_commit(TestShard(nursery, db.fqn), checkpoint({"j": 1}), set())
        assert db.rows() == {}

        await put(db, new, "fresh", 2)
        await new.start_commit(TestShard(nursery, db.fqn), checkpoint({"j": 2}), set())
    assert db.rows() == {"fresh": 2}
    with pytest.raises(StoreStateError, match="failed commit"):
        await old.transaction()


@pytest.mark.postgres
async def test_postgres_fences_an_instance_whose_transaction_was_open_during_the_restore(
    postgres_dsn: str,
) -> None:
    """On PostgreSQL the new instance's restore does not wait for the old
    instance's open transaction (they touch different rows); the old
    instance's later commit is fenced and its writes roll back."""
    db = Backend("postgresql", postgres_dsn)
    old, new = await db.open(), await db.open()
    try:
        async with trio.open_nursery() as nursery:
            await old.restore_checkpoint(TestShard(nursery, db.fqn))
            await put(db, old, "stale", 1)
            with trio.fail_after(10):
                await new.restore_checkpoint(TestShard(nursery, db.fqn))
            with pytest.raises(FencedError):
                await old.start_commit(TestShard(nursery, db.fqn), checkpoint({"j": 1}), set())
        assert db.rows() == {}
        assert db.fence() == 2
    finally:
        old.destroy()
        new.destroy()


async def test_a_failed_wait_for_future_fails_the_commit_and_rolls_back(db: Backend) -> None:
    """If a future the commit waits for fails (an append of the transaction,
    say), the commit fails with CommitDependencyError caused by that error,
    and neither the writes nor the checkpoint land."""
    store = await db.open()
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, db.fqn)
        await store.restore_checkpoint(shard)
        await put(db, store, "a", 1)
        append: OpFuture[None] = OpFuture()
        commit = store.start_commit(shard, checkpoint({"j": 5}), {append})
        append.fail(OSError("append to journal/x failed"))
        with pytest.raises(CommitDependencyError, match="append to journal/x failed") as info:
            await commit
    assert isinstance(info.value.__cause__, OSError)
    assert db.rows() == {}
    (row,) = db.peek("SELECT checkpoint FROM gazette_checkpoints WHERE shard_fqn = ?", (db.fqn,))
    assert bytes(row[0]) == b""


async def test_the_commit_waits_for_every_wait_for_future(db: Backend) -> None:
    """Nothing becomes durable while a future in `wait_for` is pending."""
    store = await db.open()
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, db.fqn)
        await store.restore_checkpoint(shard)
        await put(db, store, "a", 1)
        first: OpFuture[None] = OpFuture()
        second: OpFuture[None] = OpFuture()
        commit = store.start_commit(shard, checkpoint({"j": 1}), {first, second})
        first.resolve()
        await trio.sleep(0.05)
        assert not commit.done()
        assert db.rows() == {}
        second.resolve()
        await commit
    assert db.rows() == {"a": 1}


async def test_the_next_transaction_starts_only_after_the_running_commit(db: Backend) -> None:
    """Pipelining: while a commit waits, the application may already consume
    the next transaction's messages; its first `store.transaction()` waits
    for the commit to finish and then opens a new database transaction, so
    the next writes never join the committing transaction. A handle of the
    committing transaction refuses further statements."""
    store = await db.open()
    events: list[str] = []
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, db.fqn)
        await store.restore_checkpoint(shard)
        txn_one = await store.transaction()
        await txn_one.execute(db.q(f"INSERT INTO {db.table} (k, v) VALUES (?, ?)"), ("one", 1))
        released: OpFuture[None] = OpFuture()
        commit = store.start_commit(shard, checkpoint({"j": 1}), {released})

        with pytest.raises(StoreStateError, match="already started to commit"):
            await txn_one.execute(db.q(f"INSERT INTO {db.table} (k, v) VALUES (?, ?)"), ("x", 0))

        async def next_transaction() -> None:
            txn_two = await store.transaction()
            events.append(f"second transaction began; first commit done: {commit.done()}")
            await txn_two.execute(db.q(f"INSERT INTO {db.table} (k, v) VALUES (?, ?)"), ("two", 2))

        nursery.start_soon(next_transaction)
        await trio.sleep(0.05)
        assert events == []
        released.resolve()
        await commit
        await trio.sleep(0.05)
        assert events == ["second transaction began; first commit done: True"]
        assert db.rows() == {"one": 1}
        await store.start_commit(shard, checkpoint({"j": 2}), set())
    assert db.rows() == {"one": 1, "two": 2}


async def test_a_corrupt_checkpoint_is_reported_with_its_shard_and_table(db: Backend) -> None:
    """Bytes in the checkpoint column that are not a Checkpoint fail the
    restore with an error naming the shard and the table."""
    store = await db.open()  # creates the checkpoint table
    db.exec(
        "INSERT INTO gazette_checkpoints (shard_fqn, fence, checkpoint) VALUES (?, ?, ?)",
        (db.fqn, 3, b"\x0f"),
    )
    async with trio.open_nursery() as nursery:
        with pytest.raises(
            StoreError, match=f"checkpoint of shard {db.fqn} in table gazette_checkpoints"
        ):
            await store.restore_checkpoint(TestShard(nursery, db.fqn))


async def test_commit_before_restore_fails_without_touching_the_database(db: Backend) -> None:
    """A store that never restored has no fence; its commit fails at once."""
    store = await db.open()
    async with trio.open_nursery() as nursery:
        with pytest.raises(StoreStateError, match="before restore_checkpoint"):
            await store.start_commit(TestShard(nursery, db.fqn), checkpoint({"j": 1}), set())
    assert db.fence() is None


async def test_cancelling_a_running_statement_interrupts_it_and_retires_the_store(
    db: Backend,
) -> None:
    """A statement that runs when the shard is cancelled is interrupted in the
    database (not left running for minutes), and the store refuses further
    use, since its connection is in an unknown state."""
    store = await db.open()
    slow = (
        "SELECT pg_sleep(60)"
        if db.dialect == "postgresql"
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    )
    with trio.fail_after(20):
        with trio.move_on_after(0.3):
            await store.execute(slow)
        with pytest.raises(StoreStateError, match="cancelled while running"):
            await store.transaction()
        store.destroy()  # waits for nothing: the interrupted call closes the connection
        if db.dialect == "postgresql":
            # The server really stopped the statement: no backend still sleeps.
            for _ in range(100):
                if not db.peek("SELECT pid FROM pg_stat_activity WHERE query = ?", (slow,)):
                    break
                await trio.sleep(0.1)
            assert db.peek("SELECT pid FROM pg_stat_activity WHERE query = ?", (slow,)) == []


async def test_the_checkpoint_table_is_gazettes() -> None:
    """The DDL is Gazette's `gazette_checkpoints` schema, with PostgreSQL's
    BYTEA for BLOB; a table name that is not a plain identifier is refused."""
    ddl = checkpoints_table_ddl("sqlite")
    assert "shard_fqn  TEXT    PRIMARY KEY NOT NULL" in ddl
    assert "fence      INTEGER NOT NULL" in ddl
    assert "checkpoint BLOB    NOT NULL" in ddl
    assert "checkpoint BYTEA   NOT NULL" in checkpoints_table_ddl("postgresql")
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        checkpoints_table_ddl("sqlite", "x; DROP TABLE y")
