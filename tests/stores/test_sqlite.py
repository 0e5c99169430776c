"""SQLiteStore: an embedded database rebuilt exactly from its recovery log.

Each test records transactions as one member, then plays the log back into
another directory as another member (a real Player against a real in-memory
journal server) and checks the database there holds exactly the committed
transactions and their checkpoint: no more, no less.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import pytest
import trio

from gazette_trio.consumer.stores import sqlite as sqlite_store
from gazette_trio.consumer.stores.errors import (
    CommitDependencyError,
    FencedError,
    StoreError,
    StoreStateError,
)
from gazette_trio.consumer.stores.sqlite import JOURNAL_MODES, SQLiteStore
from gazette_trio.opfuture import OpFuture
from gazette_trio.protocol import consumer as pc

from .recovery import LogService, log_service
from .shard import TestShard, checkpoint

FQN = "/gazette/consumers/test/items/shard-a"
SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL)"


async def recover(
    logs: LogService, directory: Path, nursery: trio.Nursery, *, hints: Any = None, **options: Any
) -> tuple[SQLiteStore, pc.Checkpoint, dict[str, bytes]]:
    """Become primary in `directory` and open the store there."""
    recorder = await logs.become_primary(directory, hints)
    store = await SQLiteStore.open(recorder, bootstrap=SCHEMA, **options)
    restored = await store.restore_checkpoint(TestShard(nursery, FQN))
    return store, restored, rows(store)


async def peek(logs: LogService, directory: Path) -> tuple[pc.Checkpoint, dict[str, bytes]]:
    """What a player would rebuild now, without taking the log over (an
    empty checkpoint and no rows if the log holds no database yet)."""
    await logs.replay(directory)
    if not (directory / "main.db").exists():
        return pc.Checkpoint(), {}
    db = apsw.Connection(str(directory / "main.db"), flags=apsw.SQLITE_OPEN_READWRITE)
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        (data,) = db.execute("SELECT checkpoint FROM gazette_checkpoint").fetchone()
        found = {k: bytes(v) for k, v in db.execute("SELECT k, v FROM kv")}
        return pc.Checkpoint.parse(bytes(data)), found
    finally:
        db.close()


def rows(store: SQLiteStore) -> dict[str, bytes]:
    return {k: bytes(v) for k, v in store.db.execute("SELECT k, v FROM kv")}


def put(store: SQLiteStore, key: str, value: bytes) -> None:
    store.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))


@pytest.mark.parametrize("journal_mode", JOURNAL_MODES)
async def test_committed_transactions_are_rebuilt_exactly_on_another_member(
    tmp_path: Path, journal_mode: str
) -> None:
    """Rows and checkpoint of the last commit come back; the transaction that
    was still open when the first member stopped does not. In every journal
    mode."""
    async with log_service() as logs, trio.open_nursery() as nursery:
        store = await SQLiteStore.open(
            await logs.become_primary(tmp_path / "a"), bootstrap=SCHEMA, journal_mode=journal_mode
        )
        shard = TestShard(nursery, FQN)
        assert await store.restore_checkpoint(shard) == pc.Checkpoint()
        expected: dict[str, bytes] = {}
        for i in range(20):
            for j in range(5):
                key, value = f"key-{(i * 7 + j) % 23}", f"value-{i}-{j}".encode() * 50
                put(store, key, value)
                expected[key] = value
            store.db.execute("DELETE FROM kv WHERE k = ?", (f"key-{i % 11}",))
            expected.pop(f"key-{i % 11}", None)
            await store.start_commit(shard, checkpoint({"journal/a": 100 * (i + 1)}), set())
        put(store, "uncommitted", b"lost with the member")

        other, restored, recovered = await recover(
            logs, tmp_path / "b", nursery, journal_mode=journal_mode
        )
        assert restored == checkpoint({"journal/a": 2000})
        assert recovered == expected
        assert other.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        other.destroy()
        store.destroy()
        nursery.cancel_scope.cancel()


async def test_playback_from_hints_and_from_the_whole_log_agree(tmp_path: Path) -> None:
    """A member starting from the recorder's hints and one reading the whole
    log rebuild the same database."""
    async with log_service() as logs, trio.open_nursery() as nursery:
        recorder = await logs.become_primary(tmp_path / "a")
        store = await SQLiteStore.open(recorder, bootstrap=SCHEMA)
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        for i in range(10):
            put(store, f"k{i % 4}", bytes([i]) * 3000)
            await store.start_commit(shard, checkpoint({"j": i}), set())
        hints = await recorder.build_hints()
        store.destroy()

        from_hints, cp_hints, rows_hints = await recover(logs, tmp_path / "b", nursery, hints=hints)
        from_hints.destroy()
        from_log, cp_log, rows_log = await recover(logs, tmp_path / "c", nursery)
        from_log.destroy()
        assert cp_hints == cp_log == checkpoint({"j": 9})
        assert rows_hints == rows_log == {f"k{i % 4}": bytes([i]) * 3000 for i in range(6, 10)}
        nursery.cancel_scope.cancel()


async def test_a_deposed_primary_cannot_commit_after_a_new_primary_took_the_log(
    tmp_path: Path,
) -> None:
    """The new primary's hand-off sets the log's author register: the old
    primary's commit fails with FencedError, its later statements fail, and
    nothing it wrote after the hand-off is ever played back."""
    async with log_service() as logs, trio.open_nursery() as nursery:
        old = await SQLiteStore.open(await logs.become_primary(tmp_path / "old"), bootstrap=SCHEMA)
        shard = TestShard(nursery, FQN)
        await old.restore_checkpoint(shard)
        put(old, "a", b"1")
        await old.start_commit(shard, checkpoint({"j": 1}), set())

        new, restored, recovered = await recover(logs, tmp_path / "new", nursery)
        assert (restored, recovered) == (checkpoint({"j": 1}), {"a": b"1"})

        put(old, "a", b"stale")
        with pytest.raises(FencedError, match=f"of shard {FQN} was taken over"):
            await old.start_commit(shard, checkpoint({"j": 2}), set())
        with pytest.raises(StoreStateError, match="unusable after a failure"):
            _ = old.db

        put(new, "b", b"2")
        await new.start_commit(shard, checkpoint({"j": 3}), set())
        third, restored, recovered = await recover(logs, tmp_path / "third", nursery)
        assert (restored, recovered) == (checkpoint({"j": 3}), {"a": b"1", "b": b"2"})
        for store in (old, new, third):
            store.destroy()
        nursery.cancel_scope.cancel()


async def test_a_failed_wait_for_future_fails_the_commit_and_records_none_of_it(
    tmp_path: Path,
) -> None:
    """The commit's writes are held back from the log until `wait_for`
    resolves; if a future fails they never reach it, the commit fails with
    CommitDependencyError, and recovery yields the previous commit."""
    async with log_service() as logs, trio.open_nursery() as nursery:
        store = await SQLiteStore.open(await logs.become_primary(tmp_path / "a"), bootstrap=SCHEMA)
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        put(store, "a", b"1")
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        head = logs.write_head

        put(store, "a", b"2" * 10_000)
        append: OpFuture[None] = OpFuture()
        commit = store.start_commit(shard, checkpoint({"j": 2}), {append})
        await trio.sleep(0.05)
        assert logs.write_head == head, "nothing of the commit is in the log yet"
        append.fail(OSError("append to journal/out failed"))
        with pytest.raises(CommitDependencyError, match="append to journal/out failed"):
            await commit
        with pytest.raises(StoreStateError):
            store.db.execute("SELECT 1")
        assert logs.write_head == head

        other, restored, recovered = await recover(logs, tmp_path / "b", nursery)
        assert (restored, recovered) == (checkpoint({"j": 1}), {"a": b"1"})
        other.destroy()
        store.destroy()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("journal_mode", JOURNAL_MODES)
async def test_the_next_transaction_runs_while_the_previous_commit_waits(
    tmp_path: Path, journal_mode: str
) -> None:
    """Pipelining: after `start_commit` the application goes on writing the
    next transaction locally at once; the log gets the first commit only
    when its futures resolve, and the second transaction only with its own
    commit. In every journal mode."""
    async with log_service() as logs, trio.open_nursery() as nursery:
        store = await SQLiteStore.open(
            await logs.become_primary(tmp_path / "a"), bootstrap=SCHEMA, journal_mode=journal_mode
        )
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        put(store, "zero", b"0")
        await store.start_commit(shard, checkpoint({"j": 0}), set())
        put(store, "first", b"1")
        append: OpFuture[None] = OpFuture()
        first = store.start_commit(shard, checkpoint({"j": 1}), {append})

        put(store, "second", b"2")  # the next transaction, while the commit waits
        assert rows(store) == {"zero": b"0", "first": b"1", "second": b"2"}
        assert await peek(logs, tmp_path / "while-waiting") == (
            checkpoint({"j": 0}),
            {"zero": b"0"},
        )
        append.resolve()
        await first
        assert await peek(logs, tmp_path / "after-first") == (
            checkpoint({"j": 1}),
            {"zero": b"0", "first": b"1"},
        )
        await store.start_commit(shard, checkpoint({"j": 2}), set())
        assert await peek(logs, tmp_path / "after-second") == (
            checkpoint({"j": 2}),
            {"zero": b"0", "first": b"1", "second": b"2"},
        )
        store.destroy()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("journal_mode", ["WAL", "TRUNCATE"])
async def test_compaction_keeps_playback_proportional_to_the_database(
    tmp_path: Path, journal_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewriting the same rows over and over grows the log without bound but
    not the database: compaction re-records the database file so that what
    a player must read stays within a small multiple of its size. Copies
    run in small chunks here, so commits (which write the database file
    itself in rollback-journal modes) land in the middle of every copy."""
    monkeypatch.setattr(sqlite_store, "COMPACT_CHUNK", 4096)
    options: dict[str, Any] = {
        "journal_mode": journal_mode,
        "wal_checkpoint_bytes": 64 << 10,
        "compact_factor": 3.0,
        "compact_min_bytes": 64 << 10,
    }
    async with log_service() as logs, trio.open_nursery() as nursery:
        recorder = await logs.become_primary(tmp_path / "a")
        store = await SQLiteStore.open(recorder, bootstrap=SCHEMA, **options)
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        for i in range(300):
            for j in range(4):
                put(store, f"k{j}", bytes([i % 256]) * 2000)
            await store.start_commit(shard, checkpoint({"j": i}), set())
            await trio.lowlevel.checkpoint()  # let a compaction task progress
        while store._compacting:
            await trio.sleep(0.01)
        await recorder.barrier()

        log_bytes = logs.write_head
        history = store.history_bytes()
        assert store.compactions >= 2
        assert store.wal_checkpoints >= (2 if journal_mode == "WAL" else 0)
        assert log_bytes > 20 * store.database_bytes
        assert history <= store.compaction_budget + options["wal_checkpoint_bytes"] + (64 << 10)

        hints = await recorder.build_hints()
        first = min(s.first_offset for node in hints.live_nodes for s in node.segments)
        assert log_bytes - first == pytest.approx(history, abs=64 << 10)
        other, restored, recovered = await recover(
            logs, tmp_path / "b", nursery, hints=hints, journal_mode=journal_mode
        )
        assert restored == checkpoint({"j": 299})
        assert recovered == {f"k{j}": bytes([299 % 256]) * 2000 for j in range(4)}
        assert other.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        other.destroy()
        store.destroy()
        nursery.cancel_scope.cancel()


async def test_a_shrinking_database_file_is_recorded_exactly(tmp_path: Path) -> None:
    """With auto_vacuum the main file shrinks after deletes; the log has no
    truncate, so the file is re-recorded at its new size."""
    async with log_service() as logs, trio.open_nursery() as nursery:
        options: dict[str, Any] = {"pragmas": {"auto_vacuum": "FULL"}, "wal_checkpoint_bytes": 0}
        recorder = await logs.become_primary(tmp_path / "a")
        store = await SQLiteStore.open(recorder, bootstrap=SCHEMA, **options)
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        for i in range(200):
            put(store, f"k{i}", bytes(2000))
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        grown = store.path.stat().st_size
        store.db.execute("DELETE FROM kv WHERE k != 'k7'")
        await store.start_commit(shard, checkpoint({"j": 2}), set())
        assert store.path.stat().st_size < grown / 10

        other, restored, recovered = await recover(logs, tmp_path / "b", nursery, **options)
        assert (restored, recovered) == (checkpoint({"j": 2}), {"k7": bytes(2000)})
        assert other.path.stat().st_size == store.path.stat().st_size
        other.destroy()
        store.destroy()
        nursery.cancel_scope.cancel()


async def test_heavy_statements_may_run_in_a_worker_thread(tmp_path: Path) -> None:
    """`run` executes in a worker thread inside the transaction; its file
    changes are recorded like any other."""
    async with log_service() as logs, trio.open_nursery() as nursery:
        store = await SQLiteStore.open(await logs.become_primary(tmp_path / "a"), bootstrap=SCHEMA)
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)

        def bulk(db: Any) -> int:
            db.executemany(
                "INSERT INTO kv (k, v) VALUES (?, ?)", ((f"k{i}", b"x" * 500) for i in range(5000))
            )
            return int(db.execute("SELECT count(*) FROM kv").fetchone()[0])

        assert await store.run(bulk) == 5000
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        other, restored, recovered = await recover(logs, tmp_path / "b", nursery)
        assert restored == checkpoint({"j": 1})
        assert recovered == {f"k{i}": b"x" * 500 for i in range(5000)}
        other.destroy()
        store.destroy()
        nursery.cancel_scope.cancel()


async def test_an_abandoned_compaction_file_is_removed_on_open(tmp_path: Path) -> None:
    """A member that died while copying the database leaves a partial
    `.compact` file in the log; the next member's store removes it."""
    async with log_service() as logs, trio.open_nursery() as nursery:
        recorder = await logs.become_primary(tmp_path / "a")
        store = await SQLiteStore.open(recorder, bootstrap=SCHEMA)
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        put(store, "a", b"1")
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        with recorder.create("main.db.compact") as partial:
            partial.write(b"SQLite format 3\x00 and then the member died")
        await recorder.barrier()

        successor = await logs.become_primary(tmp_path / "b")
        assert (tmp_path / "b" / "main.db.compact").exists()
        other = await SQLiteStore.open(successor, bootstrap=SCHEMA)
        assert not (tmp_path / "b" / "main.db.compact").exists()
        assert "/main.db.compact" not in successor.fsm.links
        assert await other.restore_checkpoint(shard) == checkpoint({"j": 1})
        other.destroy()
        store.destroy()
        nursery.cancel_scope.cancel()


async def test_a_database_the_log_does_not_know_is_refused(tmp_path: Path) -> None:
    """Opening over local files that did not come from the log would record
    changes to content the log never had; the store refuses, naming it."""
    async with log_service() as logs:
        recorder = await logs.become_primary(tmp_path / "a")
        (tmp_path / "a" / "main.db").write_bytes(b"not from the log")
        with pytest.raises(StoreError, match="exists but the recovery log has no /main\\.db"):
            await SQLiteStore.open(recorder)
        logs.nursery.cancel_scope.cancel()


async def test_a_shard_without_a_recovery_log_is_told_what_to_do() -> None:
    with pytest.raises(ValueError, match="give its ShardSpec a recovery_log_prefix"):
        await SQLiteStore.open(None)


async def test_the_store_owns_locking_and_sync_settings() -> None:
    with pytest.raises(ValueError, match="PRAGMA synchronous is set by SQLiteStore"):
        await SQLiteStore.open(object(), pragmas={"synchronous": "OFF"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"pass SQLiteStore.open\(journal_mode=\.\.\.\)"):
        await SQLiteStore.open(object(), pragmas={"journal_mode": "DELETE"})  # type: ignore[arg-type]


async def test_a_commit_still_waiting_when_the_store_is_destroyed_fails(tmp_path: Path) -> None:
    """Destroying the store drops what it had not recorded yet; a commit
    still waiting for its futures then fails instead of claiming success."""
    async with log_service() as logs, trio.open_nursery() as nursery:
        store = await SQLiteStore.open(await logs.become_primary(tmp_path / "a"), bootstrap=SCHEMA)
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        put(store, "a", b"1")
        append: OpFuture[None] = OpFuture()
        commit = store.start_commit(shard, checkpoint({"j": 1}), {append})
        store.destroy()
        append.resolve()
        with pytest.raises(StoreStateError, match="never recorded: the store was destroyed"):
            await commit
        nursery.cancel_scope.cancel()


HOT_JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")  # a rollback journal's header


@pytest.mark.parametrize("journal_mode", ["DELETE", "TRUNCATE", "PERSIST"])
async def test_a_member_dying_mid_transaction_leaves_a_hot_journal_that_is_rolled_back(
    tmp_path: Path, journal_mode: str
) -> None:
    """In a rollback-journal mode a transaction too big for the page cache
    writes the database file before it commits, after saving the original
    pages in the journal. Both are recorded, so a member dying then leaves a
    hot journal in the log, and SQLite rolls the rebuilt database back to the
    last commit when the next member opens it."""
    options: dict[str, Any] = {"journal_mode": journal_mode, "pragmas": {"cache_size": 5}}
    async with log_service() as logs, trio.open_nursery() as nursery:
        recorder = await logs.become_primary(tmp_path / "a")
        store = await SQLiteStore.open(recorder, bootstrap=SCHEMA, **options)
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        committed = {f"k{i}": bytes([i]) * 2000 for i in range(50)}
        for key, value in committed.items():
            put(store, key, value)
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        for i in range(300):
            put(store, f"k{i % 70}", bytes([255 - i % 256]) * 4000)
        await recorder.barrier()  # the member dies once what it recorded is in the log

        await logs.replay(tmp_path / "rebuilt")
        journal = (tmp_path / "rebuilt" / "main.db-journal").read_bytes()
        assert journal[:8] == HOT_JOURNAL_MAGIC

        other, restored, recovered = await recover(logs, tmp_path / "b", nursery, **options)
        assert (restored, recovered) == (checkpoint({"j": 1}), committed)
        assert other.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        other.destroy()
        store.destroy()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("journal_mode", JOURNAL_MODES)
async def test_vacuum_runs_between_consumer_transactions_and_is_recovered(
    tmp_path: Path, journal_mode: str
) -> None:
    """VACUUM (and VACUUM INTO a file in the directory) run before the
    current transaction writes; the shrunk database and the copy are
    recorded and rebuilt by the next member."""
    options: dict[str, Any] = {"journal_mode": journal_mode, "wal_checkpoint_bytes": 0}
    async with log_service() as logs, trio.open_nursery() as nursery:
        store = await SQLiteStore.open(
            await logs.become_primary(tmp_path / "a"), bootstrap=SCHEMA, **options
        )
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        for i in range(300):
            put(store, f"k{i}", bytes([i % 256]) * 2000)
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        store.db.execute("DELETE FROM kv WHERE k NOT IN ('k1', 'k2')")
        await store.start_commit(shard, checkpoint({"j": 2}), set())
        grown = store.path.stat().st_size

        put(store, "k3", b"written first")
        with pytest.raises(StoreStateError, match="the current one has already written"):
            await store.vacuum()
        await store.start_commit(shard, checkpoint({"j": 3}), set())

        assert store.db.execute("SELECT count(*) FROM kv").fetchone() == (3,)  # reads are fine
        await store.vacuum()
        await store.vacuum(into="copy.db")
        put(store, "k4", b"after the vacuum")
        await store.start_commit(shard, checkpoint({"j": 4}), set())
        assert store.path.stat().st_size < grown / 10

        expected = {
            "k1": bytes([1]) * 2000,
            "k2": bytes([2]) * 2000,
            "k3": b"written first",
            "k4": b"after the vacuum",
        }
        other, restored, recovered = await recover(logs, tmp_path / "b", nursery, **options)
        assert (restored, recovered) == (checkpoint({"j": 4}), expected)
        assert other.path.stat().st_size == store.path.stat().st_size
        copy = apsw.Connection(str(tmp_path / "b" / "copy.db"), flags=apsw.SQLITE_OPEN_READONLY)
        assert dict(copy.execute("SELECT k, v FROM kv")) == {
            k: v for k, v in expected.items() if k != "k4"
        }
        copy.close()
        other.destroy()
        store.destroy()
        nursery.cancel_scope.cancel()


async def test_attached_databases_are_named_in_the_directory_and_recovered(
    tmp_path: Path,
) -> None:
    """`ATTACH 'side.db'` opens side.db in the recorder's directory and
    records it; a transaction over both databases commits atomically (a
    super-journal in rollback modes) and both come back. Names outside the
    directory are refused."""
    options: dict[str, Any] = {"journal_mode": "TRUNCATE"}
    attach = "ATTACH 'side.db' AS side"
    async with log_service() as logs, trio.open_nursery() as nursery:
        store = await SQLiteStore.open(
            await logs.become_primary(tmp_path / "a"), bootstrap=SCHEMA, **options
        )
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        await store.outside_transaction(lambda db: db.execute(attach))
        store.db.execute("CREATE TABLE side.notes (n TEXT)")
        store.db.execute("INSERT INTO side.notes VALUES ('beside the main database')")
        put(store, "a", b"1")
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        assert (tmp_path / "a" / "side.db").exists()
        with pytest.raises(ValueError, match=r"elsewhere\.db is outside the recorder's directory"):
            await store.outside_transaction(
                lambda db: db.execute(f"ATTACH '{tmp_path / 'elsewhere.db'}' AS elsewhere")
            )

        other, restored, recovered = await recover(logs, tmp_path / "b", nursery, **options)
        assert (restored, recovered) == (checkpoint({"j": 1}), {"a": b"1"})
        await other.outside_transaction(lambda db: db.execute(attach))
        assert other.db.execute("SELECT n FROM side.notes").fetchall() == [
            ("beside the main database",)
        ]
        other.destroy()
        assert not (tmp_path / "b" / "side.db").exists()
        store.destroy()
        nursery.cancel_scope.cancel()


async def test_journal_modes_without_crash_safety_and_store_settings_are_refused(
    tmp_path: Path,
) -> None:
    """MEMORY and OFF would leave nothing to roll a half-written database
    back with; the store refuses them when opened and when a statement
    asks for them later, and refuses changes to the settings it owns.
    Switching between the modes it supports is fine."""
    with pytest.raises(ValueError, match="journal_mode OFF is not crash-safe"):
        await SQLiteStore.open(object(), journal_mode="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'wal2' is not one of WAL, DELETE, TRUNCATE, PERSIST"):
        await SQLiteStore.open(object(), journal_mode="wal2")  # type: ignore[arg-type]
    async with log_service() as logs, trio.open_nursery() as nursery:
        store = await SQLiteStore.open(await logs.become_primary(tmp_path / "a"), bootstrap=SCHEMA)
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        with pytest.raises(ValueError, match="journal_mode memory is not crash-safe"):
            store.db.execute("PRAGMA journal_mode=memory")
        with pytest.raises(ValueError, match="PRAGMA locking_mode is set by SQLiteStore"):
            store.db.execute("PRAGMA locking_mode=NORMAL")
        with pytest.raises(ValueError, match="PRAGMA synchronous is set by SQLiteStore"):
            store.db.execute("PRAGMA main.synchronous=OFF")
        assert store.db.execute("PRAGMA journal_mode").fetchall() == [("wal",)]

        mode = await store.outside_transaction(
            lambda db: db.execute("PRAGMA journal_mode=PERSIST").fetchall()
        )
        assert mode == [("persist",)]
        put(store, "a", b"1")
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        other, restored, recovered = await recover(
            logs, tmp_path / "b", nursery, journal_mode="PERSIST"
        )
        assert (restored, recovered) == (checkpoint({"j": 1}), {"a": b"1"})
        other.destroy()
        store.destroy()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("journal_mode", ["WAL", "TRUNCATE"])
async def test_compaction_also_renews_attached_databases_and_copies_nothing_writes(
    tmp_path: Path, journal_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A player starts reading at the oldest live file's creation, so a file
    written once and left alone (an ATTACHed database, its journal, a VACUUM
    INTO copy) would pin playback to it forever; compaction re-records
    whichever live file's history is longest, keeping playback bounded."""
    monkeypatch.setattr(sqlite_store, "COMPACT_CHUNK", 4096)
    options: dict[str, Any] = {
        "journal_mode": journal_mode,
        "wal_checkpoint_bytes": 64 << 10,
        "compact_factor": 3.0,
        "compact_min_bytes": 64 << 10,
    }
    notes = [(f"note {i}" * 40,) for i in range(50)]
    async with log_service() as logs, trio.open_nursery() as nursery:
        recorder = await logs.become_primary(tmp_path / "a")
        store = await SQLiteStore.open(recorder, bootstrap=SCHEMA, **options)
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        await store.outside_transaction(lambda db: db.execute("ATTACH 'side.db' AS side"))
        store.db.execute("CREATE TABLE side.notes (n TEXT)")
        store.db.executemany("INSERT INTO side.notes VALUES (?)", notes)
        put(store, "k0", b"first")
        await store.start_commit(shard, checkpoint({"j": 0}), set())
        await store.vacuum(into="copy.db")
        for i in range(1, 300):
            for j in range(4):
                put(store, f"k{j}", bytes([i % 256]) * 2000)
            await store.start_commit(shard, checkpoint({"j": i}), set())
            await trio.lowlevel.checkpoint()
        while store._compacting:
            await trio.sleep(0.01)
        await recorder.barrier()

        # Each renewal appends a copy, which the others' histories then include.
        for path in ("/side.db", "/copy.db"):
            assert store.history_bytes(path) <= store.compaction_budget + store.database_bytes
        assert logs.write_head > 20 * store.database_bytes
        slack = options["wal_checkpoint_bytes"] + (64 << 10)
        assert store.history_bytes() <= store.compaction_budget + slack

        hints = await recorder.build_hints()
        other, restored, recovered = await recover(
            logs, tmp_path / "b", nursery, hints=hints, **options
        )
        assert restored == checkpoint({"j": 299})
        assert recovered == {f"k{j}": bytes([299 % 256]) * 2000 for j in range(4)}
        await other.outside_transaction(lambda db: db.execute("ATTACH 'side.db' AS side"))
        assert other.db.execute("SELECT n FROM side.notes").fetchall() == notes
        copy = apsw.Connection(str(tmp_path / "b" / "copy.db"), flags=apsw.SQLITE_OPEN_READONLY)
        assert copy.execute("SELECT k, v FROM kv").fetchall() == [("k0", b"first")]
        copy.close()
        other.destroy()
        store.destroy()
        nursery.cancel_scope.cancel()
