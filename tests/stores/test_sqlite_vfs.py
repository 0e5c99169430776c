"""RecordingVFS: how SQLite's transaction-log files map onto recovery-log Fnodes.

The cases of upstream's store-sqlite `TestFileBindingCases` that concern log
files (rollback journals, WALs), held against our VFS directly: a log file
semantically restarted in place (a zeroed rollback-journal header, a new
WAL header) or truncated to zero becomes a new Fnode, so its old content
leaves the live file set; other rewrites of its header (a hot journal's,
or an unknown one) do not. Whatever happens, a player rebuilds the file
byte for byte.
"""

from __future__ import annotations

import struct
from pathlib import Path

import apsw
import trio

from gazette_trio.consumer.stores.sqlite_vfs import RecordingVFS

from .recovery import log_service

HOT_JOURNAL = 0xD9D505F9
WAL_BIG_ENDIAN = 0x377F0683
WAL_LITTLE_ENDIAN = 0x377F0682
LOG_FLAGS = apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_MAIN_JOURNAL


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


async def test_log_files_restart_as_new_fnodes_and_play_back_exactly(tmp_path: Path) -> None:
    async with log_service() as logs:
        recorder = await logs.become_primary(tmp_path / "a")
        vfs = RecordingVFS(recorder)
        try:
            file = vfs.xOpen("log.file", [LOG_FLAGS, 0])
            vfs.drain()
            links = recorder.fsm.links
            fnode = links["/log.file"]

            file.xWrite(u32(HOT_JOURNAL) + b"journal content", 0)
            file.xSync(apsw.SQLITE_SYNC_NORMAL)
            for header in (HOT_JOURNAL, 12345678):  # not a restart
                file.xWrite(u32(header), 0)
                file.xSync(apsw.SQLITE_SYNC_NORMAL)
                assert links["/log.file"] == fnode
            for header in (0, WAL_BIG_ENDIAN, WAL_LITTLE_ENDIAN):  # restarts
                file.xWrite(u32(header), 0)
                file.xSync(apsw.SQLITE_SYNC_NORMAL)
                assert links["/log.file"] != fnode
                fnode = links["/log.file"]

            file.xTruncate(0)
            assert links["/log.file"] != fnode
            fnode = links["/log.file"]
            (segment,) = recorder.fsm.live_nodes[fnode].segments
            assert segment.first_seq_no == segment.last_seq_no  # its creation, nothing more

            file.xWrite(u32(HOT_JOURNAL) + b"x" * 100, 0)
            file.xTruncate(40)  # the log has no truncate: recorded afresh at 40 bytes
            file.xSync(apsw.SQLITE_SYNC_NORMAL)
            file.xClose()
            await recorder.barrier()

            await logs.replay(tmp_path / "b")
            assert (tmp_path / "b" / "log.file").read_bytes() == u32(HOT_JOURNAL) + b"x" * 36
            assert (tmp_path / "a" / "log.file").read_bytes() == u32(HOT_JOURNAL) + b"x" * 36
        finally:
            vfs.detach()
            vfs.unregister()
        logs.nursery.cancel_scope.cancel()


async def test_names_are_relative_to_the_recorders_directory(tmp_path: Path) -> None:
    """SQLite sees `x.db` for both `x.db` and `<directory>/x.db`, and the
    file lands in the directory whatever the working directory is."""
    async with log_service() as logs:
        recorder = await logs.become_primary(tmp_path / "a")
        vfs = RecordingVFS(recorder)
        try:
            assert vfs.xFullPathname("x.db") == "x.db"
            assert vfs.xFullPathname(str(tmp_path / "a" / "sub" / "x.db")) == "sub/x.db"
            db = apsw.Connection("x.db", vfs=vfs.name)
            db.execute("CREATE TABLE t (v); INSERT INTO t VALUES (1)")
            db.close()
            assert (tmp_path / "a" / "x.db").exists()
            assert "/x.db" in recorder.fsm.links
            await trio.lowlevel.checkpoint()
        finally:
            vfs.detach()
            vfs.unregister()
        logs.nursery.cancel_scope.cancel()
