"""SQLiteStore: an embedded SQLite database recorded into the shard's recovery log.

The application keeps its state in an ordinary SQLite database (through
apsw) in the recorder's directory and uses plain SQL on `store.db`. Every
change SQLite makes to its files is recorded into the shard's recovery log
by `RecordingVFS`, so another member rebuilds the database with a `Player`
and carries on exactly where the last commit left off. This is Gazette's
`store-sqlite`, without its RocksDB page store (see compaction below).

Transactions. The store keeps a database transaction open between commits:
it BEGINs after `restore_checkpoint` and after each commit, so everything
the application executes during `consume_message` and `finalize_txn` is part
of the consumer transaction. `start_commit` writes the checkpoint into the
single-row table `gazette_checkpoint` (as upstream) and COMMITs, all inline:
the checkpoint and the application's writes are one SQLite transaction.

Durability and ordering. Local files are not fsynced; the commit is durable
when its recorded writes are in the log, so the commit's future is the
recorder's barrier. While the commit's `wait_for` futures are pending, the
VFS *holds* the recorded operations (the COMMIT's WAL frames, and anything
the next transaction writes meanwhile) in memory; they reach the recorder
only once every future resolved, and are discarded if one fails (the commit
then fails with `CommitDependencyError` and the store is unusable). The next
transaction runs against the local database immediately: pipelining costs
the application nothing.

Fencing. When another member's player takes the log over, this recorder's
appends fail on the journal's `author` register; the commit's future then
fails with `FencedError`, further file changes raise inside SQLite, and the
deposed instance can commit nothing more.

Journal modes. The database runs with exclusive locking (one connection,
no shared-memory file) and `synchronous=FULL` (each commit syncs its
journal or WAL, which is where the VFS hands records over; it costs no disk
sync), in the journal mode the application picks: WAL (the default, as
upstream's without batch-atomic writes), or a rollback journal (DELETE,
TRUNCATE, PERSIST), whose every restart the VFS records as a new Fnode.
MEMORY and OFF are refused: with them a member dying mid-transaction leaves
a half-written database in the log and no journal to roll it back. A hot
rollback journal rebuilt by a player is rolled back by SQLite when the next
member opens the database, and that rollback is recorded like any write.
In WAL mode automatic checkpoints are off: the store checkpoints
(`PRAGMA wal_checkpoint(TRUNCATE)`) right after a commit once the WAL
exceeds `wal_checkpoint_bytes`, so the WAL starts over as a new Fnode.
An authorizer refuses statements that would change these settings later.

VACUUM. SQLite cannot VACUUM inside a transaction and the store keeps one
open, so `await store.vacuum()` (and `vacuum(into=name)`, and
`outside_transaction(fn)` for other such statements) runs between consumer
transactions: before the current one has written anything, it ends the
transaction, runs the statement in a worker thread and begins a new one.
Its writes are recorded like any other (a file that shrinks is recorded
afresh at its new size, see `sqlite_vfs.py`); they become durable with the
next commit.

Compaction: bounded playback. A player replays every op of every live Fnode
since its creation, reading the log from the oldest one. The WAL is bounded
by the checkpoints above, but the main database file lives forever and is
rewritten page by page, and a file written once and left alone (an ATTACHed
database, its journal, a VACUUM INTO copy) keeps its old Fnode live too.
Gazette bounds this with RocksDB; here the store *re-records* files: after a
commit, the live file whose log history (write head minus the first offset
of its Fnode) is longest, if that exceeds `compact_factor` times the size of
all live files (at least `compact_min_bytes`), is copied chunk by chunk into
a new Fnode at `<file>.compact`, and a rename of that over the file is
recorded; then the next such file, until none is over. Only the log changes
(the local file already has that content, and SQLite keeps its handle); the
old Fnode is no longer live, so hints skip it and playback reads O(database
size + recent writes). While a copy runs, transactions go on: the VFS
records each write to the file into the copy as well, and each chunk is
read and recorded in one step on the Trio thread, so the copy equals the
file whatever was written meanwhile (rollback-journal modes write the main
file at every commit). A truncation or deletion of the file voids the copy,
which is then abandoned and retried later. A copy cut short by a crash
leaves a `.compact` file that the next open removes.

Threads. SQLite calls run inline on the Trio thread: for the small
statements of a consumer transaction that is several times faster than a
worker-thread round trip (`benchmarks/stores.py` measures it). For a heavy
query use `await store.run(fn)`, which calls `fn(db)` in a worker thread;
its recorded operations are drained when it returns. Do not touch `db` from
other tasks while `run` is in progress (apsw raises ThreadingViolationError).

This module owns the store: setup, checkpoint row, commit, WAL checkpoints
and compaction. Recording file changes is `sqlite_vfs.py`'s.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import apsw
import trio

from ...opfuture import OpFuture, OpFutures
from ...protocol import consumer as pc
from ...recoverylog.recorder import Recorder
from ..contracts import Shard
from .commit import run_commit, wait_dependencies
from .errors import (
    CommitDependencyError,
    StoreError,
    StoreStateError,
    fenced_or_same,
)
from .sqlite_vfs import RecordingVFS

T = TypeVar("T")

DEFAULT_FILENAME = "main.db"
COMPACT_SUFFIX = ".compact"
COMPACT_CHUNK = 1 << 20

# Settings the store depends on; an application may not override them.
_FIXED_PRAGMAS = ("locking_mode", "journal_mode", "synchronous", "wal_autocheckpoint")

JOURNAL_MODES = ("WAL", "DELETE", "TRUNCATE", "PERSIST")
"""Journal modes the store runs in: each commit leaves a journal or WAL from
which SQLite recovers the database at any point a member may die."""

_UNSAFE_JOURNAL_MODES = ("MEMORY", "OFF")

_CHECKPOINT_TABLE = """
CREATE TABLE IF NOT EXISTS gazette_checkpoint (
    rowid INTEGER PRIMARY KEY DEFAULT 0 CHECK (rowid = 0),
    checkpoint BLOB
);
INSERT OR IGNORE INTO gazette_checkpoint (rowid, checkpoint) VALUES (0, x'');
"""


class SQLiteStore:
    """A `Store` in an embedded SQLite database recorded into a recovery log.

    Build it with `await SQLiteStore.open(recorder, ...)` in
    `Application.new_store`. `cache` is free for the application (as
    Gazette's `Store.Cache`).
    """

    def __init__(
        self,
        recorder: Recorder,
        vfs: RecordingVFS,
        db: apsw.Connection,
        main_path: str,
        *,
        wal_checkpoint_bytes: int,
        compact_factor: float,
        compact_min_bytes: int,
    ) -> None:
        self._recorder = recorder
        self._vfs = vfs
        self._db = db
        self._main = main_path
        self._wal = main_path + "-wal"
        self.wal_checkpoint_bytes = wal_checkpoint_bytes
        self.compact_factor = compact_factor
        self.compact_min_bytes = compact_min_bytes
        self.cache: Any = None
        self._fqn = "(not yet restored)"
        self._commit: OpFuture[None] | None = None
        self._failed: BaseException | None = None
        self._destroyed = False
        self._compacting = False
        self._run_lock = trio.Lock()
        self.compactions = 0
        """Completed compactions of the main database file."""
        self.wal_checkpoints = 0
        """WAL checkpoints the store ran."""

    @classmethod
    async def open(
        cls,
        recorder: Recorder | None,
        *,
        bootstrap: str = "",
        filename: str = DEFAULT_FILENAME,
        pragmas: Mapping[str, str | int] | None = None,
        journal_mode: str = "WAL",
        wal_checkpoint_bytes: int = 4 << 20,
        compact_factor: float = 4.0,
        compact_min_bytes: int = 4 << 20,
    ) -> SQLiteStore:
        """Open (or create) the database `filename` in the recorder's directory.

        `bootstrap` SQL runs first, in its own transaction: create tables
        and indexes there (`IF NOT EXISTS`: it runs at every open). `pragmas`
        are applied before anything else (e.g. `{"cache_size": -65536}`,
        `{"auto_vacuum": "FULL"}`); `journal_mode` is one of `JOURNAL_MODES`;
        the locking and sync settings are the store's and cannot be changed.
        The directory must be the recorder's, as a player left it: a
        database file there that the log does not know (or the reverse) is
        an error.
        """
        if recorder is None:
            raise ValueError(
                "SQLiteStore records into the shard's recovery log, and this shard has no "
                "recorder: give its ShardSpec a recovery_log_prefix, or keep the state in "
                "an SQLite file with SQLStore.sqlite(path), e.g. under the shard's durable "
                "shard.store_directory"
            )
        if compact_factor <= 1:
            raise ValueError(f"compact_factor must be above 1, not {compact_factor}")
        mode = _journal_mode(journal_mode)
        for name in pragmas or {}:
            if name.lower() == "journal_mode":
                raise ValueError("PRAGMA journal_mode: pass SQLiteStore.open(journal_mode=...)")
            if name.lower() in _FIXED_PRAGMAS:
                raise ValueError(f"PRAGMA {name} is set by SQLiteStore and cannot be overridden")
        vfs = RecordingVFS(recorder)
        main = vfs.log_path(os.path.join(vfs.directory, filename))
        leftovers = _check_local_files(vfs, main, recorder.fsm.links)
        for leftover in leftovers:
            vfs.enqueue_remove(leftover)
        vfs.drain()
        # The application's pragmas come first: some (auto_vacuum, page_size)
        # only take effect before the database file is first written, which
        # switching to WAL does.
        set_mode = f"PRAGMA journal_mode={mode}"
        statements = [
            *(f"PRAGMA {name}={value}" for name, value in (pragmas or {}).items()),
            "PRAGMA locking_mode=EXCLUSIVE",
            set_mode,
            "PRAGMA synchronous=FULL",
            "PRAGMA wal_autocheckpoint=0",
        ]

        def connect() -> apsw.Connection:
            # By its name relative to the directory, as the VFS names files.
            db = apsw.Connection(
                vfs.relative_name(filename),
                flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_URI,
                vfs=vfs.name,
            )
            try:
                for statement in statements:
                    rows = db.execute(statement).fetchall()
                    if statement == set_mode and rows != [(mode.lower(),)]:
                        raise StoreError(f"SQLite refused journal mode {mode} for {main}: {rows}")
                db.authorizer = _guard_fixed_pragmas
                if bootstrap:
                    with db:
                        db.execute(bootstrap)
                with db:
                    db.execute(_CHECKPOINT_TABLE)
            except BaseException:
                db.close()
                raise
            return db

        try:
            db = await trio.to_thread.run_sync(connect)
            vfs.drain()
        except BaseException as exc:
            vfs.detach()
            vfs.unregister()
            if vfs.error is not None and exc is not vfs.error:
                raise fenced_or_same(vfs.error, "(not yet restored)", recorder.log) from exc
            raise
        return cls(
            recorder,
            vfs,
            db,
            main,
            wal_checkpoint_bytes=wal_checkpoint_bytes,
            compact_factor=compact_factor,
            compact_min_bytes=compact_min_bytes,
        )

    # -- what the application uses

    @property
    def db(self) -> apsw.Connection:
        """The apsw connection. Between `restore_checkpoint` and `destroy` a
        transaction is always open on it: the current consumer transaction."""
        self._check_usable()
        return self._db

    @property
    def path(self) -> Path:
        """The main database file on local disk."""
        return Path(self._vfs.local_path(self._main))

    async def run(self, fn: Callable[[apsw.Connection], T]) -> T:
        """Call `fn(db)` in a worker thread (for heavy statements), inside the
        current transaction. `fn` must not COMMIT or ROLLBACK."""
        self._check_usable()
        async with self._run_lock:
            try:
                return await trio.to_thread.run_sync(fn, self._db)
            finally:
                self._drain()

    async def outside_transaction(self, fn: Callable[[apsw.Connection], T]) -> T:
        """Call `fn(db)` in a worker thread with no transaction open, for the
        statements SQLite refuses inside one (VACUUM, a change of journal
        mode to or from WAL). It runs between consumer transactions: the
        current one must not have written anything yet (call it at the start
        of a transaction, or right after `restore_checkpoint`); a new one
        begins when `fn` returns. `fn` must leave no transaction open. What it
        changes is recorded, and durable with the next commit."""
        self._check_usable()
        async with self._run_lock:
            db = self._db
            if db.txn_state() == apsw.SQLITE_TXN_WRITE:
                raise StoreStateError(
                    f"SQLiteStore {self._main}: statements outside a transaction run between "
                    "consumer transactions, and the current one has already written; run them "
                    "before its first write"
                )
            if not db.getautocommit():
                db.execute("ROLLBACK")  # nothing written: only a read snapshot is let go
            try:
                result = await trio.to_thread.run_sync(fn, db)
                if not db.getautocommit():
                    db.execute("ROLLBACK")
                    raise StoreStateError(
                        f"SQLiteStore {self._main}: a function run outside the consumer "
                        "transaction left a transaction open (it was rolled back)"
                    )
            finally:
                self._drain()
                if not self._destroyed and self._failed is None and db.getautocommit():
                    db.execute("BEGIN")
            return result

    async def vacuum(self, into: str | None = None) -> None:
        """VACUUM the main database, or with `into` write a vacuumed copy to
        that file (a name in the recorder's directory, recorded too), between
        consumer transactions (see `outside_transaction`)."""

        def run(db: apsw.Connection) -> None:
            if into is None:
                db.execute("VACUUM")
            else:
                db.execute("VACUUM INTO ?", (into,))

        await self.outside_transaction(run)

    # -- the Store contract

    async def restore_checkpoint(self, shard: Shard) -> pc.Checkpoint:
        """The checkpoint committed with the database's last transaction."""
        self._check_usable()
        self._fqn = shard.fqn
        db = self._db
        if not db.getautocommit():
            db.execute("ROLLBACK")
        row = db.execute("SELECT checkpoint FROM gazette_checkpoint").fetchone()
        data = bytes(row[0]) if row and row[0] is not None else b""
        try:
            checkpoint = pc.Checkpoint.parse(data)
        except Exception as exc:
            raise StoreError(
                f"checkpoint of shard {shard.fqn} in {self._main} does not decode "
                f"({len(data)} bytes): {exc}"
            ) from exc
        db.execute("BEGIN")
        await trio.lowlevel.checkpoint()
        return checkpoint

    def start_commit(
        self, shard: Shard, checkpoint: pc.Checkpoint, wait_for: OpFutures
    ) -> OpFuture[None]:
        """COMMIT the open transaction with `checkpoint`; the future resolves
        once its writes are in the recovery log (after every `wait_for`)."""
        fqn = shard.fqn
        try:
            self._check_usable()
            if self._commit is not None and not self._commit.done():
                raise StoreStateError(
                    f"start_commit of shard {fqn} while the previous commit is running"
                )
            data = bytes(checkpoint)
        except StoreError as exc:
            return OpFuture.failed(exc)

        vfs, db = self._vfs, self._db
        waits = set(wait_for)
        if waits:
            vfs.hold()
        try:
            if db.getautocommit():
                db.execute("BEGIN")
            db.execute("UPDATE gazette_checkpoint SET checkpoint = ?", (data,))
            db.execute("COMMIT")
            self._maybe_checkpoint_wal()
            db.execute("BEGIN")
            if not waits:
                vfs.drain()
        except Exception as exc:
            error = self._fail(exc)
            if waits:
                vfs.discard(error)
            return OpFuture.failed(error)

        future: OpFuture[None] = OpFuture()
        try:
            shard.nursery.start_soon(self._finish_commit, shard.nursery, fqn, waits, future)
        except RuntimeError as exc:  # the shard's nursery is closed
            error = self._fail(StoreStateError(f"shard {fqn} is no longer running: {exc}"))
            vfs.discard(error)
            return OpFuture.failed(error)
        self._commit = future
        return future

    async def _finish_commit(
        self, nursery: trio.Nursery, fqn: str, waits: OpFutures, future: OpFuture[None]
    ) -> None:
        vfs = self._vfs

        def abandoned(exc: BaseException) -> BaseException:
            error = CommitDependencyError(
                f"commit of shard {fqn} abandoned: a future it waited for failed: {exc!r}; "
                "its writes were never recorded"
            )
            error.__cause__ = exc
            vfs.discard(error)
            return error

        async def write() -> None:
            if waits:
                await wait_dependencies(waits, abandoned)
                if self._destroyed:
                    raise StoreStateError(
                        f"commit of shard {fqn} was never recorded: the store was destroyed "
                        "while it waited"
                    )
                vfs.release()
            await self._recorder.barrier()

        if await run_commit(
            future,
            write,
            cancelled=lambda: self._fail(StoreStateError(f"commit of shard {fqn} was cancelled")),
            failed=self._fail,
        ):
            self._maybe_compact(nursery)

    def destroy(self) -> None:
        """Close the database and delete its local files (the log keeps
        everything committed)."""
        if self._destroyed:
            return
        self._destroyed = True
        self._vfs.detach()
        with contextlib.suppress(apsw.Error):
            self._db.close(True)
        self._vfs.unregister()
        paths = {self._main, self._wal, self._main + "-journal", self._main + COMPACT_SUFFIX}
        paths.update(self._recorder.fsm.links)  # ATTACHed databases, VACUUM INTO copies
        for path in paths:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(self._vfs.local_path(path))

    # -- introspection

    @property
    def database_bytes(self) -> int:
        """Size of the live files the log holds: the main file, its WAL or
        journal, ATTACHed databases and VACUUM INTO copies."""
        return sum(self._live_sizes().values())

    def _live_sizes(self) -> dict[str, int]:
        sizes = self._vfs.sizes
        out: dict[str, int] = {}
        for path in self._recorder.fsm.links:
            size = sizes.get(path)
            if size is None:  # rebuilt by the player, not opened since
                try:
                    size = os.stat(self._vfs.local_path(path)).st_size
                except OSError:
                    size = 0
            out[path] = size
        return out

    def history_bytes(self, path: str | None = None) -> int:
        """Log bytes from the creation of a file's live Fnode (default: the
        oldest live Fnode of the recorder) to the write head: what a player
        reads to rebuild it."""
        fsm = self._recorder.fsm
        if path is None:
            fnodes = list(fsm.live_nodes)
        else:
            fnode = fsm.links.get(path)
            fnodes = [] if fnode is None else [fnode]
        offsets = [
            fsm.live_nodes[f].segments[0].first_offset for f in fnodes if fsm.live_nodes[f].segments
        ]
        return max(0, self._recorder.write_head - min(offsets)) if offsets else 0

    @property
    def compaction_budget(self) -> int:
        """History of the main file beyond which it is compacted."""
        return int(self.compact_factor * max(self.database_bytes, self.compact_min_bytes))

    # -- maintenance

    def _maybe_checkpoint_wal(self) -> None:
        # Called between COMMIT and BEGIN: no transaction is open. Without a
        # schema the pragma checkpoints the WALs of ATTACHed databases too.
        budget = None
        for path, size in self._vfs.sizes.items():
            if not path.endswith("-wal") or not size:
                continue
            if budget is None:
                budget = self.compaction_budget
            if size > self.wal_checkpoint_bytes or self.history_bytes(path) > budget:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self.wal_checkpoints += 1
                return

    def _maybe_compact(self, nursery: trio.Nursery) -> None:
        """Start re-recording the live file whose history is longest, if it
        exceeds the budget: any old live Fnode (the main file, an ATTACHed
        database, a journal left as it was, a VACUUM INTO copy) is where a
        player starts reading."""
        if self._compacting or self._failed is not None or self._destroyed:
            return
        budget = self.compaction_budget
        histories = {path: self.history_bytes(path) for path in self._recorder.fsm.links}
        if not histories:
            return
        path = max(histories, key=lambda p: histories[p])
        if histories[path] <= budget:
            return
        self._compacting = True
        try:
            nursery.start_soon(self._compact, path, nursery)
        except RuntimeError:  # the shard is ending
            self._compacting = False

    async def _compact(self, main: str, nursery: trio.Nursery) -> None:
        vfs = self._vfs
        compact = main + COMPACT_SUFFIX

        def void() -> bool:
            return vfs.truncations[main] != truncations or bool(self._failed or self._destroyed)

        try:
            fd = os.open(vfs.local_path(main), os.O_RDONLY)
            try:
                truncations = vfs.truncations[main]
                size = vfs.sizes.get(main)
                if size is None:  # not opened since playback: nothing writes it
                    size = os.fstat(fd).st_size
                vfs.enqueue_open(compact, truncate=True)
                vfs.start_mirror(main, compact)
                for offset in range(0, size, COMPACT_CHUNK):
                    # No other task, and no `run` worker, writes the file
                    # between this read and its recording: a later write is
                    # recorded after the chunk, into both files.
                    async with self._run_lock:
                        if void():
                            break
                        vfs.enqueue_write(compact, os.pread(fd, COMPACT_CHUNK, offset), offset)
                        self._drain()
                    await trio.lowlevel.checkpoint()
                vfs.stop_mirror()
                if void():
                    if not self._failed and not self._destroyed:
                        vfs.enqueue_remove(compact)
                        self._drain()
                    return
                # Flush what is queued so the rename's three ops are appended
                # together rather than split by a size-triggered flush.
                self._drain()
                self._recorder.barrier()
                vfs.enqueue_rename(compact, main)
                self._drain()
                self.compactions += 1
            finally:
                vfs.stop_mirror()
                os.close(fd)
        except trio.Cancelled:
            raise
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._compacting = False
        # Other files may be over budget too: renew them now rather than one
        # per commit (an abandoned copy returned above and waits for one).
        self._maybe_compact(nursery)

    # -- internals

    def _drain(self) -> None:
        try:
            self._vfs.drain()
        except Exception as exc:
            raise self._fail(exc) from exc

    def _fail(self, exc: BaseException) -> BaseException:
        """Record the store's first failure; return the error to report."""
        if self._failed is None:
            cause = self._vfs.error if self._vfs.error is not None else exc
            error = fenced_or_same(cause, self._fqn, self._recorder.log)
            if error is cause and cause is not exc and isinstance(exc, apsw.Error):
                error = StoreError(f"SQLite failed because recording failed: {cause}")
                error.__cause__ = cause
            self._failed = error
            with contextlib.suppress(apsw.Error):
                if not self._db.getautocommit():
                    self._db.execute("ROLLBACK")
        return self._failed

    def _check_usable(self) -> None:
        if self._destroyed:
            raise StoreStateError(f"SQLiteStore {self._main} was destroyed")
        if self._failed is not None:
            raise StoreStateError(
                f"SQLiteStore {self._main} is unusable after a failure: {self._failed}"
            ) from self._failed


def _journal_mode(mode: str) -> str:
    upper = mode.strip().upper()
    if upper in _UNSAFE_JOURNAL_MODES:
        raise ValueError(
            f"journal_mode {mode} is not crash-safe in SQLiteStore: a member dying "
            "mid-transaction would leave a half-written database in the recovery log with no "
            f"journal to roll it back; use one of {', '.join(JOURNAL_MODES)}"
        )
    if upper not in JOURNAL_MODES:
        raise ValueError(f"journal_mode {mode!r} is not one of {', '.join(JOURNAL_MODES)}")
    return upper


def _guard_fixed_pragmas(
    action: int, name: str | None, value: str | None, schema: str | None, trigger: str | None
) -> int:
    """Authorizer: refuse statements that change the settings the store
    depends on (reading them is fine)."""
    if action != apsw.SQLITE_PRAGMA or value is None or name is None:
        return apsw.SQLITE_OK
    pragma = name.lower()
    if pragma == "journal_mode":
        _journal_mode(value.strip("'\""))  # raises ValueError naming the problem
    elif pragma in _FIXED_PRAGMAS:
        raise ValueError(f"PRAGMA {name} is set by SQLiteStore and cannot be changed")
    return apsw.SQLITE_OK


def _check_local_files(vfs: RecordingVFS, main: str, links: Mapping[str, int]) -> list[str]:
    """Check that the local files and the log agree; returns the abandoned
    compaction copies in the log (their local files are removed here), for
    the caller to record as removed."""
    for path in (main, main + "-wal", main + "-journal"):
        local = os.path.exists(vfs.local_path(path))
        if local and path not in links:
            raise StoreError(
                f"{vfs.local_path(path)} exists but the recovery log has no {path}: "
                "the directory was not played back from this log"
            )
        if not local and path in links:
            raise StoreError(
                f"the recovery log has {path} but {vfs.local_path(path)} is missing: "
                "the directory was not played back from this log"
            )
    with contextlib.suppress(FileNotFoundError):
        os.unlink(vfs.local_path(main + COMPACT_SUFFIX))
    leftovers = [
        path
        for path in links
        if path.endswith(COMPACT_SUFFIX) and path.removesuffix(COMPACT_SUFFIX) in links
    ]
    for path in leftovers:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(vfs.local_path(path))
    return leftovers
