"""Upstream: consumer/store-sqlite/store_test.go (go.gazette.dev/core v0.103.0).

Upstream's sequence tests, run against `SQLiteStore`. Each sequence file is
read at test time from upstream's `consumer/store-sqlite/testdata/` (see
`tests.upstream`). Its statements (text up to each `;`, as upstream splits
them) run one by one against the store's database and against a plain
"golden" SQLite database in another directory, and every statement must
give both the same columns and rows. At each `CRASH_AND_RECOVER` the member
crashes: a new member plays the recovery log into a fresh directory from the
old recorder's hints and takes the log over (fencing the old one), the old
store is dropped without writing anything more, and the golden database is
closed and reopened (so both lose the transaction left open, and their
ATTACHments, as upstream's test arranges).

Differences from upstream's harness, and why:
- `ATTACH_DB1`/`ATTACH_DB2` become the plain names `attach_one.db` and
  `attach_two.db` for the store: its VFS roots relative names in the
  recorder's directory, where upstream substitutes `Store.URIForDB(name)`
  (a URI naming its per-instance VFS; ours is the connection's own).
- Rows are compared as the Python values apsw returns (type included),
  where upstream scans every column into a Go string.
- Each sequence runs in every journal mode `SQLiteStore` supports. Upstream
  runs them in the mode its store picks for the SQLite it links: WAL, or
  TRUNCATE where SQLite has batch-atomic writes.
- The member's last writes are in the log when it crashes (its recorder's
  hints are built, which waits for them), as upstream's harness has it: the
  golden database keeps every committed statement, so the log must too.

Cases that cannot apply:
- TestStoreCommitAndRecover: covered by `tests/stores/test_sqlite.py`
  (commit waiting on `wait_for`, visibility in the next transaction,
  recovery of the checkpoint); upstream's version also checks that Destroy
  removes the whole directory, where ours removes the files the log knows
  and the runtime removes the shard's playback directory (`LocalShard`).
- TestParsingOfPageFileHeader, TestFileBindingCases: test upstream's C++
  page file (SQLite pages kept in RocksDB) and its CGO write buffering,
  which this store does not have; it records the database file's own writes
  (`sqlite_vfs.py`). Their log-file cases (restart headers, truncation to
  zero as a new Fnode, non-restarting headers) are checked in
  `tests/stores/test_sqlite_vfs.py`.
- TestMain: Go's entry point of the test binary (it starts etcd for the
  package), not a case.
- test-sqllogic-full.sql: in upstream's testdata but run by no upstream test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
import trio

from gazette_trio.consumer.stores.sqlite import JOURNAL_MODES, SQLiteStore
from tests.stores.recovery import log_service
from tests.upstream import upstream_file

UPSTREAM = "consumer/store-sqlite/store_test.go"
TESTDATA = "consumer/store-sqlite/testdata"

NOT_APPLICABLE = {
    "TestMain": "Go's test-binary entry point, not a case",
    "TestStoreCommitAndRecover": "covered by tests/stores/test_sqlite.py; the runtime, not "
    "destroy(), removes the playback directory",
    "TestParsingOfPageFileHeader": "upstream's C++ page file (pages in RocksDB), which this "
    "store does not have",
    "TestFileBindingCases": "upstream's C++ page file and CGO buffering; its log-file cases "
    "are tests/stores/test_sqlite_vfs.py",
}
SEQUENCE_FILES = {
    "test-simple.sql",
    "test-sqllogic.sql",
    "test-attach-and-vacuum.sql",
    "test-trim-and-rollback.sql",
    "test-multi-db-txn.sql",
}

CRASH = "CRASH_AND_RECOVER"


def statements(path: Path) -> Iterator[str]:
    """The file's statements as upstream reads them: each run of text up to
    and including a `;`. Text after the last `;` is never run."""
    text = path.read_text()
    start = 0
    while (end := text.find(";", start)) != -1:
        yield text[start : end + 1]
        start = end + 1


def run(db: apsw.Connection, statement: str) -> tuple[Any, list[tuple[Any, ...]]]:
    """(column names or None, rows) of one statement."""
    cursor = db.cursor()
    cursor.execute(statement)
    try:
        columns: Any = [name for name, _ in cursor.getdescription()]
    except apsw.ExecutionCompleteError:
        columns = None  # no result rows at all
    return columns, cursor.fetchall()


async def run_sequence(sequence: Path, tmp_path: Path, journal_mode: str) -> int:
    """Run `sequence` with crash and recovery; returns how many members ran it."""
    gold_dir = tmp_path / "gold"
    gold_dir.mkdir()
    gold_names = {
        "ATTACH_DB1": str(gold_dir / "attach_one.db"),
        "ATTACH_DB2": str(gold_dir / "attach_two.db"),
    }
    store_names = {"ATTACH_DB1": "attach_one.db", "ATTACH_DB2": "attach_two.db"}

    def substitute(statement: str, names: dict[str, str]) -> str:
        for token, name in names.items():
            statement = statement.replace(token, name)
        return statement

    pending = statements(sequence)
    async with log_service() as logs:
        store: SQLiteStore | None = None
        hints = None
        for member in itertools.count(1):
            # The new member plays the log and takes it over, then the
            # crashed one goes away: nothing it does now reaches the log.
            recorder = await logs.become_primary(tmp_path / f"member-{member}", hints)
            if store is not None:
                head = logs.write_head
                store.destroy()
                assert logs.write_head == head
            store = await SQLiteStore.open(recorder, journal_mode=journal_mode)
            gold = apsw.Connection(str(gold_dir / "main.db"))
            gold.execute("PRAGMA synchronous=OFF")
            crashed = False
            for statement in pending:
                if CRASH in statement:
                    crashed = True
                    break
                want = run(gold, substitute(statement, gold_names))
                got = run(store.db, substitute(statement, store_names))
                assert got == want, f"statement {statement.strip()!r}"
                await trio.lowlevel.checkpoint()  # let recorded appends go out
            if not crashed:
                store.destroy()
                gold.close()
                logs.nursery.cancel_scope.cancel()
                return member
            hints = await recorder.build_hints()
            gold.close()
    raise AssertionError("unreachable")


async def run_upstream_sequence(name: str, tmp_path: Path, journal_mode: str) -> None:
    sequence = upstream_file(f"{TESTDATA}/{name}")
    crashes = sequence.read_text().count(CRASH)
    assert await run_sequence(sequence, tmp_path, journal_mode) == crashes + 1


modes = pytest.mark.parametrize("journal_mode", JOURNAL_MODES)


@modes
async def test_simple(tmp_path: Path, journal_mode: str) -> None:
    """A basic sequence, crashing with a transaction open."""
    await run_upstream_sequence("test-simple.sql", tmp_path, journal_mode)


@modes
async def test_sql_logic(tmp_path: Path, journal_mode: str) -> None:
    """SQLite's sqllogictest-derived statements, several crashes, deep page reads."""
    await run_upstream_sequence("test-sqllogic.sql", tmp_path, journal_mode)


@modes
async def test_attach_and_vacuum(tmp_path: Path, journal_mode: str) -> None:
    """ATTACHed databases, VACUUM and VACUUM INTO, re-attached after recovery."""
    await run_upstream_sequence("test-attach-and-vacuum.sql", tmp_path, journal_mode)


@modes
async def test_trim_and_rollback(tmp_path: Path, journal_mode: str) -> None:
    """A tiny page cache and a switch to TRUNCATE journaling, then a ROLLBACK
    of changes SQLite had already staged in the database file."""
    await run_upstream_sequence("test-trim-and-rollback.sql", tmp_path, journal_mode)


@modes
async def test_multi_db_txn(tmp_path: Path, journal_mode: str) -> None:
    """Transactions across several databases, crashing mid-transaction."""
    await run_upstream_sequence("test-multi-db-txn.sql", tmp_path, journal_mode)


def test_every_sequence_upstream_runs_is_ported() -> None:
    """Each `runSequenceTest` call in upstream's test file is a case here."""
    source = upstream_file(UPSTREAM).read_text()
    called = {
        line.split('"')[1].rsplit("/", 1)[-1]
        for line in source.splitlines()
        if "runSequenceTest(t, " in line
    }
    assert called == SEQUENCE_FILES
