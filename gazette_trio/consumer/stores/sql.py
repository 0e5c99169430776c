"""SQLStore: shard state in a remote SQL database, fenced by a checkpoints table.

The application keeps its state in ordinary tables of a database it already
runs (PostgreSQL, or an SQLite file), and the store makes each consumer
transaction one database transaction that also writes the shard's
`Checkpoint`. This is Gazette's `consumer.SQLStore`; the checkpoint table is
exactly the one it specifies:

    CREATE TABLE gazette_checkpoints (
        shard_fqn  TEXT    PRIMARY KEY NOT NULL,
        fence      INTEGER NOT NULL,
        checkpoint BLOB    NOT NULL          -- BYTEA on PostgreSQL
    );

Fencing. `restore_checkpoint` runs its own database transaction: it
increments the shard's `fence` (inserting the row with fence 1 and an empty
checkpoint if there is none), reads the fence and checkpoint back, and
commits. Every later commit writes its checkpoint with
`UPDATE ... SET checkpoint = ? WHERE shard_fqn = ? AND fence = ?` inside the
transaction that holds the application's writes; if no row matches, a newer
instance restored since, and the commit rolls back with `FencedError`. An
instance that lost its assignment but still runs (a partitioned primary) can
therefore never commit after its successor restored.

Transactions. The database transaction of the current consumer transaction
begins lazily, with the first statement issued through `transaction()`
(`SQLTransaction.execute`, `executemany`, `run`). `start_commit` hands that
transaction to a background task in the shard's nursery which waits for
every `wait_for` future, then writes the fenced checkpoint and COMMITs in one
call; if a `wait_for` future failed it rolls back instead and the commit
fails with `CommitDependencyError`.

Pipelining. The store has one connection and all its calls run one at a
time on a worker thread (`BlockingWorker`), so the next consumer transaction
cannot share the connection with a commit in flight. As in Gazette, the next
transaction's writes go into a *new* database transaction, begun only once
the previous commit has finished: the runtime may call `consume_message` for
the next transaction right away, and its first `await store.transaction()`
waits there until the previous COMMIT returned (it raises if that commit
failed). Messages are decoded and application code runs meanwhile; only the
database work waits. A handle from an earlier transaction refuses to run
statements (`StoreStateError`), so no write can slip into the wrong
transaction.

Two backends, one API: PostgreSQL through psycopg 3's synchronous connection
(its async flavour is asyncio-based, which Trio code must not use), and an
SQLite file through the standard `sqlite3` module (WAL journal, synchronous
FULL, transactions taken with BEGIN IMMEDIATE so concurrent instances queue
on the busy timeout rather than fail). The application's SQL is the
backend's own dialect: `?` parameters on SQLite, `%s` on PostgreSQL
(`SQLStore.dialect` says which).

This module owns the SQL store and its two connections; the thread
discipline is `worker.py`'s, the exception classes `errors.py`'s.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import trio

from ...opfuture import OpFuture, OpFutures, wait_all
from ...protocol import consumer as pc
from ..contracts import Shard
from .commit import run_commit
from .errors import CommitDependencyError, FencedError, StoreError, StoreStateError
from .worker import BlockingWorker

T = TypeVar("T")

Params = Sequence[Any] | Mapping[str, Any]
Dialect = Literal["postgresql", "sqlite"]

DEFAULT_TABLE = "gazette_checkpoints"
"""The checkpoint table Gazette's SQLStore uses."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def checkpoints_table_ddl(dialect: Dialect, table: str = DEFAULT_TABLE) -> str:
    """`CREATE TABLE IF NOT EXISTS` for the fenced checkpoint table."""
    _check_identifier(table)
    blob = "BYTEA" if dialect == "postgresql" else "BLOB"
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (\n"
        "    shard_fqn  TEXT    PRIMARY KEY NOT NULL,\n"
        "    fence      INTEGER NOT NULL,\n"
        f"    checkpoint {blob:<7} NOT NULL\n"
        ")"
    )


def _check_identifier(table: str) -> None:
    if not _IDENTIFIER.match(table):
        raise ValueError(f"checkpoint table name {table!r} is not a plain SQL identifier")


class _Connection:
    """One driver connection and the statements the store itself issues.

    Every method blocks and runs on the store's worker thread only, so the
    connection and `in_txn` are never touched by two threads at once.
    """

    dialect: Dialect
    raw: Any

    def __init__(self, table: str) -> None:
        _check_identifier(table)
        self.table = table
        self.in_txn = False

    # Driver specifics.
    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _exec(self, sql: str, params: Params | None = None) -> Any:
        raise NotImplementedError

    def interrupt(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        """Rewrite the store's `?` parameters into the driver's style."""
        return sql

    # Transactions.
    def ensure_begun(self) -> None:
        if not self.in_txn:
            self._begin()
            self.in_txn = True

    def rollback(self) -> None:
        if self.in_txn:
            self.in_txn = False
            self._rollback()

    def execute(self, sql: str, params: Params | None) -> list[tuple[Any, ...]]:
        self.ensure_begun()
        cursor = self._exec(sql, params)
        if cursor.description is None:
            return []
        return [tuple(row) for row in cursor.fetchall()]

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        self.ensure_begun()
        self.raw.cursor().executemany(sql, seq_of_params)

    def run(self, fn: Callable[[Any], T]) -> T:
        self.ensure_begun()
        return fn(self.raw)

    def setup(self, statements: Sequence[str]) -> None:
        """Run DDL in its own committed transaction."""
        self.ensure_begun()
        try:
            for statement in statements:
                self._exec(statement)
            self.in_txn = False
            self._commit()
        except BaseException:
            self.rollback()
            raise

    def restore(self, fqn: str) -> tuple[int, bytes]:
        """Bump the fence of `fqn` and read its checkpoint, in one transaction."""
        if self.in_txn:
            raise StoreStateError(
                f"restore_checkpoint of shard {fqn} found a transaction already open: "
                "restore must come before the first consumer transaction"
            )
        self.ensure_begun()
        try:
            t = self.table
            self._exec(self._q(f"UPDATE {t} SET fence = fence + 1 WHERE shard_fqn = ?"), (fqn,))
            row = self._exec(
                self._q(f"SELECT fence, checkpoint FROM {t} WHERE shard_fqn = ?"), (fqn,)
            ).fetchone()
            if row is None:
                # A fresh shard. Two instances racing here both miss the row;
                # the primary key makes the slower INSERT fail, not both win.
                fence, data = 1, b""
                self._exec(
                    self._q(f"INSERT INTO {t} (shard_fqn, fence, checkpoint) VALUES (?, ?, ?)"),
                    (fqn, fence, data),
                )
            else:
                fence, data = int(row[0]), bytes(row[1])
            self.in_txn = False
            self._commit()
        except BaseException:
            self.rollback()
            raise
        return fence, data

    def commit(self, fqn: str, fence: int, checkpoint: bytes) -> None:
        """Write the fenced checkpoint and COMMIT the open transaction."""
        self.ensure_begun()
        try:
            cursor = self._exec(
                self._q(
                    f"UPDATE {self.table} SET checkpoint = ? WHERE shard_fqn = ? AND fence = ?"
                ),
                (checkpoint, fqn, fence),
            )
            if cursor.rowcount != 1:
                raise FencedError(
                    f"checkpoint fence of shard {fqn} in table {self.table} was updated "
                    f"(by a new primary): this instance restored fence {fence} and may "
                    "no longer commit"
                )
            self.in_txn = False
            self._commit()
        except BaseException:
            self.rollback()
            raise


class _SQLiteConnection(_Connection):
    dialect: Dialect = "sqlite"

    def __init__(
        self, path: str, table: str, busy_timeout: float, journal_mode: str, synchronous: str
    ) -> None:
        super().__init__(table)
        # isolation_level=None: the module never opens transactions behind our
        # back; the store issues BEGIN IMMEDIATE / COMMIT / ROLLBACK itself.
        self.raw = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            mode = self.raw.execute(f"PRAGMA journal_mode={journal_mode}").fetchone()[0]
            if str(mode).lower() != journal_mode.lower():
                raise StoreError(f"SQLite file {path} refused journal_mode={journal_mode}: {mode}")
            self.raw.execute(f"PRAGMA synchronous={synchronous}")
        except BaseException:
            self.raw.close()
            raise

    def _begin(self) -> None:
        # IMMEDIATE takes the write lock now, waiting on the busy timeout: a
        # deferred transaction that later upgrades can fail outright instead.
        self.raw.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.raw.execute("COMMIT")

    def _rollback(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    def _exec(self, sql: str, params: Params | None = None) -> Any:
        return self.raw.execute(sql, () if params is None else params)

    def interrupt(self) -> None:
        self.raw.interrupt()

    def close(self) -> None:
        self.raw.close()


class _PostgresConnection(_Connection):
    dialect: Dialect = "postgresql"

    def __init__(self, conninfo: str, table: str, connect_timeout: float) -> None:
        super().__init__(table)
        import psycopg  # here: only PostgreSQL users pay for importing it

        # autocommit=False: psycopg opens the transaction with the first
        # statement, which is exactly the lazy BEGIN the store wants.
        self.raw = psycopg.connect(
            conninfo, autocommit=False, connect_timeout=max(1, round(connect_timeout))
        )

    def _begin(self) -> None:
        pass  # psycopg begins with the first statement

    def _commit(self) -> None:
        self.raw.commit()

    def _rollback(self) -> None:
        self.raw.rollback()

    def _exec(self, sql: str, params: Params | None = None) -> Any:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        self.ensure_begun()
        with self.raw.cursor() as cursor:
            cursor.executemany(sql, seq_of_params)

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def setup(self, statements: Sequence[str]) -> None:
        import psycopg

        # Concurrent CREATE TABLE IF NOT EXISTS of one table can still fail on
        # PostgreSQL's catalog unique index; the loser finds the table on retry.
        try:
            super().setup(statements)
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            super().setup(statements)

    def interrupt(self) -> None:
        self.raw.cancel_safe(timeout=5.0)

    def close(self) -> None:
        self.raw.close()


class SQLTransaction:
    """The database transaction of the current consumer transaction.

    Statements run on the store's worker thread, in order, inside the open
    transaction (begun by the first of them). The handle is valid until the
    consumer transaction starts to commit; after that every call raises
    `StoreStateError` (ask the store for the next transaction's handle).
    """

    __slots__ = ("_seq", "_store")

    def __init__(self, store: SQLStore, seq: int) -> None:
        self._store = store
        self._seq = seq

    @property
    def dialect(self) -> Dialect:
        return self._store.dialect

    def _connection(self) -> _Connection:
        if self._store._txn_seq != self._seq:
            raise StoreStateError(
                "this SQLTransaction belongs to a consumer transaction that already started "
                "to commit; use the handle of the current one (await store.transaction())"
            )
        return self._store._conn

    async def execute(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """Run one statement; return its rows (empty for statements without)."""
        conn = self._connection()
        return await self._store._worker.call(lambda: conn.execute(sql, params))

    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        """Run one statement once per parameter set."""
        conn = self._connection()
        rows = list(seq_of_params)
        await self._store._worker.call(lambda: conn.executemany(sql, rows))

    async def run(self, fn: Callable[[Any], T]) -> T:
        """Call `fn(connection)` on the worker thread, inside the transaction.

        `connection` is the driver's own (`psycopg.Connection` or
        `sqlite3.Connection`), for anything `execute` does not cover
        (COPY, cursors, row counts). `fn` must neither commit nor roll back.
        """
        conn = self._connection()
        return await self._store._worker.call(lambda: conn.run(fn))


class SQLStore:
    """A `Store` in a remote SQL database with a fenced checkpoint table.

    Build one with `SQLStore.postgres(...)` or `SQLStore.sqlite(...)`, one per
    shard (each has its own connection). `cache` is free for the application,
    as Gazette's `SQLStore.Cache`: for instance records read and modified in
    memory during a transaction and written out in `finalize_txn`.
    """

    def __init__(self, conn: _Connection, worker: BlockingWorker) -> None:
        self._conn = conn
        self._worker = worker
        self.cache: Any = None
        self._fqn: str | None = None
        self._fence = 0
        # Bumped when a consumer transaction starts to commit: handles of the
        # earlier transaction stop working.
        self._txn_seq = 0
        self._commit: OpFuture[None] | None = None
        self._failed: BaseException | None = None

    @classmethod
    async def postgres(
        cls,
        conninfo: str,
        *,
        table: str = DEFAULT_TABLE,
        create_table: bool = True,
        bootstrap: Sequence[str] = (),
        connect_timeout: float = 10.0,
    ) -> SQLStore:
        """Connect to PostgreSQL (`conninfo` is a libpq DSN or URI).

        `create_table` creates the checkpoint table if it is missing;
        `bootstrap` statements (the application's DDL) run once, committed,
        before the store is returned.
        """
        conn = await trio.to_thread.run_sync(
            lambda: _PostgresConnection(conninfo, table, connect_timeout)
        )
        return await cls._open(
            conn, f"SQLStore(postgresql, table={table})", create_table, bootstrap
        )

    @classmethod
    async def sqlite(
        cls,
        path: str | os.PathLike[str],
        *,
        table: str = DEFAULT_TABLE,
        create_table: bool = True,
        bootstrap: Sequence[str] = (),
        busy_timeout: float = 30.0,
        journal_mode: str = "WAL",
        synchronous: str = "FULL",
    ) -> SQLStore:
        """Open (creating if needed) the SQLite database file at `path`.

        `busy_timeout` bounds how long a transaction waits for another
        connection's write lock. `synchronous=FULL` makes each commit durable
        when its future resolves; anything lower can lose committed
        checkpoints on power loss, and with them exactly-once.
        """
        name = os.fspath(path)
        conn = await trio.to_thread.run_sync(
            lambda: _SQLiteConnection(name, table, busy_timeout, journal_mode, synchronous)
        )
        return await cls._open(conn, f"SQLStore(sqlite {name})", create_table, bootstrap)

    @classmethod
    async def _open(
        cls, conn: _Connection, name: str, create_table: bool, bootstrap: Sequence[str]
    ) -> SQLStore:
        store = cls(conn, BlockingWorker(name, conn.interrupt))
        statements = list(bootstrap)
        if create_table:
            statements.insert(0, checkpoints_table_ddl(conn.dialect, conn.table))
        try:
            if statements:
                await store._worker.call(lambda: conn.setup(statements))
        except BaseException:
            store.destroy()
            raise
        return store

    @property
    def dialect(self) -> Dialect:
        """`"postgresql"` or `"sqlite"`: the SQL dialect the application writes."""
        return self._conn.dialect

    @property
    def fence(self) -> int:
        """The fence this instance restored (0 before `restore_checkpoint`)."""
        return self._fence

    @property
    def table(self) -> str:
        return self._conn.table

    async def restore_checkpoint(self, shard: Shard) -> pc.Checkpoint:
        """Fence out earlier instances of `shard` and return its checkpoint."""
        self._check_usable()
        fqn = shard.fqn
        conn = self._conn
        fence, data = await self._worker.call(lambda: conn.restore(fqn))
        try:
            checkpoint = pc.Checkpoint.parse(data)
        except Exception as exc:
            raise StoreError(
                f"checkpoint of shard {fqn} in table {conn.table} does not decode "
                f"({len(data)} bytes): {exc}"
            ) from exc
        self._fqn, self._fence = fqn, fence
        return checkpoint

    async def transaction(self) -> SQLTransaction:
        """The current consumer transaction's database transaction.

        Waits for the previous transaction's commit if it is still running
        (the store has a single connection) and raises `StoreStateError` if
        that commit failed.
        """
        self._check_usable()
        if self._commit is not None and not self._commit.done():
            try:
                await self._commit
            except trio.Cancelled:
                raise
            except BaseException:
                pass  # reported just below, like any earlier failure
        self._check_usable()
        return SQLTransaction(self, self._txn_seq)

    async def execute(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """Shorthand for `(await store.transaction()).execute(sql, params)`."""
        return await (await self.transaction()).execute(sql, params)

    def start_commit(
        self, shard: Shard, checkpoint: pc.Checkpoint, wait_for: OpFutures
    ) -> OpFuture[None]:
        """Commit the open transaction with `checkpoint` once `wait_for` resolved."""
        try:
            self._check_usable()
            if self._fqn is None:
                raise StoreStateError(
                    f"start_commit of shard {shard.fqn} before restore_checkpoint: "
                    "the store has no fence to commit under"
                )
            if shard.fqn != self._fqn:
                raise StoreStateError(
                    f"start_commit of shard {shard.fqn} on a store restored for {self._fqn}"
                )
            if self._commit is not None and not self._commit.done():
                raise StoreStateError(
                    f"start_commit of shard {shard.fqn} while the previous commit is running"
                )
            data = bytes(checkpoint)
        except StoreError as exc:
            return OpFuture.failed(exc)

        future: OpFuture[None] = OpFuture()
        try:
            shard.nursery.start_soon(
                self._run_commit, self._fqn, self._fence, data, set(wait_for), future
            )
        except RuntimeError as exc:  # the shard's nursery is closed: the shard ended
            return OpFuture.failed(
                StoreStateError(f"shard {shard.fqn} is no longer running: {exc}")
            )
        self._txn_seq += 1
        self._commit = future
        return future

    async def _run_commit(
        self, fqn: str, fence: int, data: bytes, wait_for: OpFutures, future: OpFuture[None]
    ) -> None:
        conn = self._conn

        async def write() -> None:
            try:
                await wait_all(wait_for)
            except trio.Cancelled:
                raise
            except BaseException as exc:
                try:
                    await self._worker.call(conn.rollback)
                except trio.Cancelled:
                    raise
                except Exception:
                    pass  # the dependency's failure is the one to report
                raise CommitDependencyError(
                    f"commit of shard {fqn} abandoned and rolled back: a future it waited "
                    f"for failed: {exc!r}"
                ) from exc
            await self._worker.call(lambda: conn.commit(fqn, fence, data))

        await run_commit(
            future,
            write,
            cancelled=lambda: self._fail(
                StoreStateError(f"commit of shard {fqn} was cancelled; its outcome is unknown")
            ),
            failed=self._fail,
        )

    def _fail(self, error: BaseException) -> BaseException:
        """The store is unusable after a failed commit: record why."""
        self._failed = error
        return error

    def destroy(self) -> None:
        """Roll back any open transaction and close the connection.

        The table and its rows stay: they are the shard's durable state.
        """
        self._worker.close(self._conn.close)

    def _check_usable(self) -> None:
        self._worker.check()
        if self._failed is not None:
            raise StoreStateError(
                f"{self._worker.name} is unusable after a failed commit: {self._failed}"
            ) from self._failed
