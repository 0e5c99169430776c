"""RecordingVFS: an SQLite VFS whose file changes go into a recovery log.

SQLite reaches its files only through a VFS. `RecordingVFS` is an apsw VFS
written in Python that delegates every call to SQLite's default VFS and
records what changes the recorded files (main and ATTACHed databases, their
WALs, rollback journals and the super-journal of a multi-database
transaction; temporary files are not recorded) as recovery-log operations,
so a `Player` elsewhere rebuilds byte-identical files:

- open: the file is created (or found) in the recorder's file system;
- write: the bytes and offset. Contiguous writes are coalesced into one
  recorded write until the next sync or other operation, so a transaction's
  WAL frames become a single op rather than two per page;
- truncate to zero, and a log file (WAL or journal) being restarted at
  offset 0 while it has content (SQLite reuses the file, but semantically a
  new log begins): a new Fnode, so the old content drops out of the live
  file set and out of playback, as Gazette's store-sqlite does;
- truncate to a smaller non-zero size (rare: VACUUM shrinking the database):
  the file is recorded afresh with its remaining content, since the log has
  no truncate operation; growth by truncate is recorded as a zero byte at
  the new end;
- delete: the path is unlinked.

Names. SQLite sees every file by its name relative to the recorder's
directory (`xFullPathname` maps `x.db` and `<directory>/x.db` both to
`x.db`); the VFS roots names there when it opens, deletes or checks a file.
So `ATTACH 'other.db'` and `VACUUM INTO 'copy.db'` land in the directory and
are recorded, and the names SQLite writes into its files (a hot rollback
journal names its super-journal) mean the same thing in the directory a
player rebuilds elsewhere, as in Gazette's store-sqlite. A name outside the
directory is refused.

Syncs are not passed on to the disk: durability comes from the log, and a
member that crashed rebuilds the directory from the log rather than trusting
local files. A sync is a point where recorded operations are handed to the
recorder.

Ordering and holds. Operations queue in the order SQLite performs them and
are applied to the recorder only by `drain()`, on the Trio thread (the
recorder and the append service are Trio objects). A call made from a worker
thread leaves its operations queued for the store to drain when the call
returns; a call on the Trio thread drains at each sync point. A *hold*
stops draining: the store holds the queue while a committed transaction
waits for its `wait_for` futures, so nothing it wrote can reach the log
before they resolve; `discard()` drops the queue if one fails. Operations
recorded by the store itself (compaction) go through the same queue, so the
log always sees one history in the order it happened. While the store copies
a file for compaction, writes to it are queued for the copy as well
(`start_mirror`).

Failure. The first error applying an operation (for instance the recorder
was fenced by a new primary) is kept in `error`; from then on every file
change raises, SQLite sees an I/O error, and the local files are no longer
trusted. `detach()` stops recording altogether (the store is being
destroyed and its files are disposable).

This module owns the VFS and its operation queue. What to record when (the
checkpoint row, WAL checkpoints, compaction) is the store's, `sqlite.py`.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import TypeAlias

import apsw

from ...recoverylog.recorder import Recorder
from .errors import StoreError

_LOG_FILE_FLAGS = (
    apsw.SQLITE_OPEN_MAIN_JOURNAL | apsw.SQLITE_OPEN_SUPER_JOURNAL | apsw.SQLITE_OPEN_WAL
)

RECORDED_FLAGS = apsw.SQLITE_OPEN_MAIN_DB | _LOG_FILE_FLAGS
"""Files whose changes are recorded: main databases (including ATTACHed
ones and VACUUM INTO targets), rollback journals, super-journals and WALs."""

# Headers that, written at offset 0 of a log file with content, restart it.
_RESTART_HEADERS = (
    b"\x00\x00\x00\x00",  # an invalidated rollback-journal header
    b"\x37\x7f\x06\x82",  # WAL header, little-endian checksums
    b"\x37\x7f\x06\x83",  # WAL header, big-endian checksums
)

DRAIN_BYTES = 4 << 20
"""Queued write bytes that trigger a drain at the next write (on the Trio
thread), bounding memory for long transactions that spill to the WAL."""

_names = itertools.count(1)

Buffer: TypeAlias = bytes | bytearray | memoryview


@dataclass(slots=True)
class _Open:
    path: str
    truncate: bool


@dataclass(slots=True)
class _Write:
    path: str
    offset: int
    data: bytearray


@dataclass(slots=True)
class _Remove:
    path: str


@dataclass(slots=True)
class _Rename:
    source: str
    target: str


_Op = _Open | _Write | _Remove | _Rename


class VFSRecordingError(StoreError):
    """Recording into the recovery log failed; the local files have
    diverged from the log and may not be used further."""


class RecordingVFS(apsw.VFS):
    """A VFS recording changes of files under `recorder.directory`.

    Register one per store (its `name` is unique) and open the database
    with `apsw.Connection(path, vfs=vfs.name)`.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.name = f"gazette-trio-recorded-{os.getpid()}-{next(_names)}"
        super().__init__(self.name, "")
        self.recorder = recorder
        self.directory = str(recorder.directory)
        self._trio_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._ops: deque[_Op] = deque()
        self._queued_bytes = 0
        self._holds = 0
        self._detached = False
        self.error: BaseException | None = None
        # Size of each recorded file as the log knows it (equal to the local
        # file's while recording works).
        self.sizes: dict[str, int] = {}
        # Recorded writes per path, and size changes by truncation or
        # deletion: a changed count tells compaction its copy is void.
        self.writes: Counter[str] = Counter()
        self.truncations: Counter[str] = Counter()
        # (source, copy): writes to source are recorded into copy as well.
        self._mirror: tuple[str, str] | None = None
        self._fnodes: dict[str, int] = {}
        self.recorded_bytes = 0
        """Write payload bytes handed to the recorder so far."""

    # -- paths

    def relative_name(self, filename: str) -> str:
        """The name SQLite knows `filename` by: relative to the recorder's
        directory (`filename` is relative to it, or absolute inside it)."""
        full = os.path.normpath(os.path.join(self.directory, filename))
        if not full.startswith(self.directory + os.sep):
            raise ValueError(
                f"SQLite file {filename} is outside the recorder's directory {self.directory}: "
                "every file of a recorded database (ATTACHed ones, VACUUM INTO copies) is in it"
            )
        return os.path.relpath(full, self.directory)

    def log_path(self, filename: str) -> str:
        """`/relative/path` of a file under the recorder's directory."""
        return "/" + self.relative_name(filename).replace(os.sep, "/")

    def local_path(self, path: str) -> str:
        return os.path.join(self.directory, path.lstrip("/"))

    def fnode(self, path: str) -> int | None:
        """The Fnode `path` was last recorded as (once drained)."""
        return self._fnodes.get(path)

    # -- apsw.VFS

    def xFullPathname(self, name: str) -> str:
        return self.relative_name(name)

    def xAccess(self, pathname: str, flags: int) -> bool:
        return bool(super().xAccess(self.local_path(self.log_path(pathname)), flags))

    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> apsw.VFSFile:
        if name is None:
            return apsw.VFSFile("", name, flags)
        filename = name.filename() if isinstance(name, apsw.URIFilename) else name
        path = self.log_path(filename)
        # The default VFS gets the rooted path as a plain name: URI
        # parameters were SQLite's to interpret, and it has.
        inner = [flags[0] & ~apsw.SQLITE_OPEN_URI, 0]
        rooted = self.local_path(path)
        if not flags[0] & RECORDED_FLAGS or self._detached:
            plain = apsw.VFSFile("", rooted, inner)
            flags[1] = inner[1]
            return plain
        file = _RecordedFile(self, rooted, inner, path, bool(flags[0] & _LOG_FILE_FLAGS))
        flags[1] = inner[1]
        with self._lock:
            self._check()
            if path not in self.sizes:
                self.sizes[path] = file.xFileSize()
                self._ops.append(_Open(path, truncate=False))
        return file

    def xDelete(self, filename: str, syncdir: bool) -> None:
        path = self.log_path(filename)
        super().xDelete(self.local_path(path), syncdir)
        if self._detached:
            return
        with self._lock:
            # A file the player rebuilt and SQLite never opened is known by
            # the log only.
            if path in self.sizes or path in self.recorder.fsm.links:
                self._check()
                self.sizes.pop(path, None)
                self.truncations[path] += 1
                self._ops.append(_Remove(path))
        self.sync_point()

    # -- recording (any thread)

    def _check(self) -> None:
        if self.error is not None:
            raise VFSRecordingError(f"recording into the recovery log failed: {self.error}")

    def record_write(self, path: str, data: Buffer, offset: int, log_file: bool) -> None:
        if self._detached:
            return
        view = memoryview(data)
        with self._lock:
            self._check()
            size = self.sizes.get(path, 0)
            if log_file and offset == 0 and size > 0 and bytes(view[:4]) in _RESTART_HEADERS:
                self._ops.append(_Open(path, truncate=True))
                size = 0
            last = self._ops[-1] if self._ops else None
            if (
                isinstance(last, _Write)
                and last.path == path
                and last.offset + len(last.data) == offset
            ):
                last.data += view
            else:
                self._ops.append(_Write(path, offset, bytearray(view)))
            self.sizes[path] = max(size, offset + len(view))
            self.writes[path] += 1
            self._queued_bytes += len(view)
            if self._mirror is not None and self._mirror[0] == path:
                copy = self._mirror[1]
                self._ops.append(_Write(copy, offset, bytearray(view)))
                self.sizes[copy] = max(self.sizes.get(copy, 0), offset + len(view))
                self._queued_bytes += len(view)
            full = self._queued_bytes >= DRAIN_BYTES
        if full:
            self.sync_point()

    def record_truncate(self, file: _RecordedFile, size: int) -> None:
        if self._detached:
            return
        path = file.path
        with self._lock:
            self._check()
            known = self.sizes.get(path, 0)
            if size == 0:
                if known:
                    self._ops.append(_Open(path, truncate=True))
            elif size < known:
                # The log cannot truncate a file: record it afresh with what
                # remains (read from the just-truncated local file).
                content = bytearray(file.xRead(size, 0))
                self._ops.append(_Open(path, truncate=True))
                self._ops.append(_Write(path, 0, content))
                self._queued_bytes += size
            elif size > known:
                self._ops.append(_Write(path, size - 1, bytearray(1)))
            if size != known:
                self.sizes[path] = size
                self.writes[path] += 1
                self.truncations[path] += 1
        self.sync_point()

    # -- store-issued operations (Trio thread)

    def start_mirror(self, source: str, copy: str) -> None:
        """Record every later write to `source` into `copy` too, at the
        same offset: a copy made chunk by chunk then stays equal to the
        source however the source changes meanwhile (a truncation of the
        source is not mirrored: see `truncations`)."""
        with self._lock:
            self._mirror = (source, copy)

    def stop_mirror(self) -> None:
        with self._lock:
            self._mirror = None

    def enqueue_open(self, path: str, *, truncate: bool) -> None:
        with self._lock:
            self._check()
            self._ops.append(_Open(path, truncate))
            self.sizes[path] = 0 if truncate else self.sizes.get(path, 0)

    def enqueue_write(self, path: str, data: bytes, offset: int) -> None:
        self.record_write(path, data, offset, log_file=False)

    def enqueue_remove(self, path: str) -> None:
        with self._lock:
            self._check()
            self.sizes.pop(path, None)
            self._ops.append(_Remove(path))

    def enqueue_rename(self, source: str, target: str) -> None:
        with self._lock:
            self._check()
            self.sizes[target] = self.sizes.pop(source, 0)
            self._ops.append(_Rename(source, target))

    # -- draining (Trio thread)

    def sync_point(self) -> None:
        """Drain now if called on the Trio thread (else the store will)."""
        if threading.get_ident() == self._trio_thread:
            self.drain()

    def hold(self) -> None:
        """Stop draining until `release()`; operations keep queuing."""
        self._holds += 1

    def release(self) -> None:
        """Undo one `hold()` and drain what queued meanwhile."""
        if self._holds <= 0:
            raise RuntimeError("RecordingVFS.release without a hold")
        self._holds -= 1
        self.drain()

    @property
    def held(self) -> bool:
        return self._holds > 0

    def discard(self, reason: BaseException) -> None:
        """Drop every queued operation and refuse further recording: what
        was queued must never reach the log (`reason` says why)."""
        with self._lock:
            self._ops.clear()
            self._queued_bytes = 0
            if self.error is None:
                self.error = reason

    def drain(self) -> None:
        """Apply queued operations to the recorder, in order."""
        if self._holds or self._detached:
            return
        if threading.get_ident() != self._trio_thread:
            raise RuntimeError("RecordingVFS.drain called off the Trio thread")
        with self._lock:
            self._check()
            ops = list(self._ops)
            self._ops.clear()
            self._queued_bytes = 0
        recorder = self.recorder
        try:
            # The recorder takes paths relative to its directory.
            for op in ops:
                if isinstance(op, _Write):
                    recorder.record_write_at(self._fnodes[op.path], op.data, op.offset)
                    self.recorded_bytes += len(op.data)
                elif isinstance(op, _Open):
                    self._fnodes[op.path] = recorder.record_open(
                        op.path[1:], create=True, truncate=op.truncate
                    )
                elif isinstance(op, _Remove):
                    recorder.record_remove(op.path[1:])
                    self._fnodes.pop(op.path, None)
                else:
                    recorder.record_rename(op.source[1:], op.target[1:])
                    self._fnodes[op.target] = self._fnodes.pop(op.source)
        except BaseException as exc:
            with self._lock:
                self._ops.clear()
                if self.error is None:
                    self.error = exc
            raise

    def detach(self) -> None:
        """Stop recording: later file changes stay local only."""
        self._detached = True
        with self._lock:
            self._ops.clear()


class _RecordedFile(apsw.VFSFile):
    """A recorded file: the default VFS's file, with changes reported."""

    def __init__(
        self,
        vfs: RecordingVFS,
        name: str | apsw.URIFilename,
        flags: list[int],
        path: str,
        log_file: bool,
    ) -> None:
        super().__init__("", name, flags)
        self.vfs = vfs
        self.path = path
        self.log_file = log_file

    def xWrite(self, data: Buffer, offset: int) -> None:
        super().xWrite(data, offset)
        self.vfs.record_write(self.path, data, offset, self.log_file)

    def xTruncate(self, newsize: int) -> None:
        super().xTruncate(newsize)
        self.vfs.record_truncate(self, newsize)

    def xSync(self, flags: int) -> None:
        # Durability is the recovery log's; the local disk need not sync.
        self.vfs.sync_point()

    def xClose(self) -> None:
        super().xClose()
        if not self.vfs._detached:
            self.vfs.sync_point()
