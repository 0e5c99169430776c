"""The Recorder: a directory whose every file change is recorded into a log.

A store keeps its files in the recorder's directory and changes them only
through the recorder: `create`/`open` give a `RecordedFile` to write at
offsets; `rename`, `link` and `remove` change paths. Each change is made on
local disk and recorded as Gazette RecordedOps (a write's bytes follow its
op), sequenced and checksummed by the recorder's FSM, and appended to the
recovery-log journal through the append service. Stores that do their own
file I/O (SQLite through a VFS) call the `record_*` methods instead, which
record without touching disk.

Recording is synchronous and never blocks: ops accumulate in a buffer that is
appended when it grows past `flush_bytes` or when `barrier()` is called.
The ops one call records together (a rename's unlink of the old target,
link and unlink of the source; a truncation's unlink, create and rewrite)
always go out in one append: a size-triggered flush waits for the end of the
call, so no crash can leave the log holding half of one (a rename cut after
its first op would lose the target path, and the state it held).
`barrier()` returns the future of everything recorded so far; a store's
commit waits on it, so a commit is durable exactly when its file changes are
in the log. `barrier(wait_for)` additionally holds back every later append
until `wait_for` resolved (Gazette's `Recorder.Barrier`).

Every append checks the journal register `author=<this author>`. A player
taking the log over unions its own author into the register with its
hand-off no-op, after which this recorder's appends (and so its barriers)
fail with `JournalError(REGISTER_MISMATCH)`, and further recording raises
`RecorderFencedError`. A deposed primary can no longer write.

Paths are recorded relative to the directory, as `/a/b`, so a log plays
back into any directory.

Some well-known paths are properties rather than files (`PROPERTY_FILES`,
as Gazette's: RocksDB's `/IDENTITY`): a rename onto one records its content
as a property op, which may be recorded again to update it, and a player
writes it out when playback completes. Opening, linking or removing a
property path is refused. This module owns recording; playback is
`player.py`, sequencing rules are the FSM's.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from ..broker.errors import JournalError
from ..errors import RecoveryLogError
from ..opfuture import OpFuture, wait_all
from ..protocol import protocol as pb
from ..protocol.recoverylog import (
    FsmHints,
    Property,
    RecordedOp,
    RecordedOpCreate,
    RecordedOpLink,
    RecordedOpWrite,
)
from .author import fence, fence_selector
from .codec import frame_op
from .fsm import FSM, Outcome

_TRUNCATE_PIECE = 1 << 20

PROPERTY_FILES = frozenset({"/IDENTITY"})
"""Paths recorded as properties (content in the op), not as Fnodes."""

DEFAULT_FLUSH_BYTES = 1 << 20
"""Buffered recorded bytes that trigger an append without waiting for a barrier."""


class LogAppender(Protocol):
    """The part of the append service a recorder uses."""

    def append(
        self,
        journal: str,
        content: bytes,
        *,
        check_registers: pb.LabelSelector | None = None,
        union_registers: pb.LabelSet | None = None,
        subtract_registers: pb.LabelSet | None = None,
        depends_on: OpFuture[Any] | None = None,
    ) -> OpFuture[pb.AppendResponse]: ...


class AllOf(OpFuture[pb.AppendResponse]):
    """A future of several appends: done when all are, failed with the first
    failure in order, else the value of the last one.

    It computes its state from its parts instead of being resolved, so it
    needs no task to watch them; the append service can wait on it as a
    dependency like any OpFuture.
    """

    __slots__ = ("_parts",)

    def __init__(self, parts: list[OpFuture[Any]]) -> None:
        if not parts:
            raise ValueError("AllOf needs at least one future")
        super().__init__()
        self._parts = parts

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("failed" if self.error() else "resolved")
        return f"<AllOf of {len(self._parts)} {state}>"

    def done(self) -> bool:
        return all(part.done() for part in self._parts)

    def error(self) -> BaseException | None:
        if not self.done():
            return None
        for part in self._parts:
            error = part.error()
            if error is not None:
                return error
        return None

    def result(self) -> pb.AppendResponse:
        if not self.done():
            raise RuntimeError("OpFuture is not done")
        error = self.error()
        if error is not None:
            raise error
        return self._parts[-1].result()  # type: ignore[no-any-return]

    def resolve(self, value: pb.AppendResponse | None = None) -> None:
        raise RuntimeError("an AllOf future resolves from its parts")

    def fail(self, error: BaseException) -> None:
        raise RuntimeError("an AllOf future fails from its parts")

    async def wait(self) -> pb.AppendResponse:
        await wait_all(self._parts)
        return self.result()


class RecorderError(RecoveryLogError):
    """The recorder cannot record: misuse (an unknown path) or a failed log."""


class RecorderFencedError(RecorderError):
    """Another author took over the log; this recorder may not write to it."""


class Recorder:
    """Records file operations under `directory` into the journal `log`.

    Build one with `await open_recorder(...)` from the FSM a player handed
    over (or a fresh `FSM(FsmHints(log=log))` for a new, empty log).
    """

    def __init__(
        self,
        *,
        log: str,
        fsm: FSM,
        author: int,
        directory: str | os.PathLike[str],
        appender: LogAppender,
        write_head: int = 0,
        fenced: bool = True,
        flush_bytes: int = DEFAULT_FLUSH_BYTES,
    ) -> None:
        """Prefer `open_recorder`, which learns the write head and fences the log.
        `fenced=False` disables register checks (for testing how playback
        copes with racing recorders, as Gazette's DisableRegisterChecks)."""
        directory = Path(directory).resolve()
        if not directory.is_dir():
            raise RecorderError(f"recorder directory {directory} does not exist")
        self._log = log
        self._fsm = fsm
        self._author = author
        self._dir = directory
        self._dir_str = str(directory)
        self._appender = appender
        self._check = fence_selector(author) if fenced else None
        self._flush_bytes = flush_bytes
        self._pending: list[bytes] = []
        self._pending_size = 0
        # Nesting depth of calls whose ops must reach the log in one append.
        self._grouped = 0
        self._write_head = write_head
        # Appends not yet known to have succeeded, in order.
        self._inflight: deque[OpFuture[pb.AppendResponse]] = deque()
        self._last_response: pb.AppendResponse | None = None
        self._failure: BaseException | None = None

    # ------------------------------------------------------------------
    # Properties

    @property
    def log(self) -> str:
        return self._log

    @property
    def author(self) -> int:
        return self._author

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def fsm(self) -> FSM:
        """The recorder's FSM (read it; never apply to it)."""
        return self._fsm

    @property
    def write_head(self) -> int:
        """The highest log offset an append of this recorder is known to
        have committed through (a lower bound for new ops)."""
        self._observe()
        return self._write_head

    def local_path(self, path: str | os.PathLike[str]) -> Path:
        """Where `path` (relative to the directory) lives on local disk."""
        return self._dir / self._normalize(path)[1:]

    # ------------------------------------------------------------------
    # File API: local disk and log together

    def create(self, path: str | os.PathLike[str]) -> RecordedFile:
        """Create `path`, or truncate it (as a new Fnode) if it exists."""
        return self.open(path, create=True, truncate=True)

    def open(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        truncate: bool = False,
        exclusive: bool = False,
    ) -> RecordedFile:
        """Open `path` for writing, with `os.open`'s O_CREAT / O_TRUNC /
        O_EXCL meanings. A truncated file is recorded as a new Fnode."""
        self._ready()
        name = self._normalize(path)
        self._check_open(name, create=create, exclusive=exclusive)
        local = self._dir / name[1:]
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        flags |= (os.O_TRUNC if truncate else 0) | (os.O_EXCL if exclusive else 0)
        if create:
            local.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(local, flags, 0o666)
        try:
            fnode = self._record_open(name, truncate=truncate)
        except BaseException:
            os.close(fd)
            raise
        return RecordedFile(self, name, fnode, fd)

    def remove(self, path: str | os.PathLike[str]) -> None:
        """Remove the file at `path`."""
        self._ready()
        name = self._known(path, "remove")
        os.unlink(self._dir / name[1:])
        self._record_unlink(name)

    def link(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        """Hard-link the file at `src` to the new path `dst`."""
        self._ready()
        source = self._known(src, "link")
        target = self._normalize(dst)
        local = self._dir / target[1:]
        local.parent.mkdir(parents=True, exist_ok=True)
        self._check_new(source, target)
        os.link(self._dir / source[1:], local)
        self._record_link(source, target)

    def rename(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        """Rename `src` to `dst`, replacing a file at `dst` (atomic on disk)."""
        self._ready()
        source = self._known(src, "rename")
        target = self._normalize(dst)
        local = self._dir / target[1:]
        local.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._dir / source[1:], local)
        self._record_rename(source, target)

    # ------------------------------------------------------------------
    # Record API: the log only (the caller did the disk work)

    def record_open(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        truncate: bool = False,
        exclusive: bool = False,
    ) -> int:
        """Record an open of `path` with O_CREAT / O_TRUNC / O_EXCL meanings;
        returns the Fnode now linked there."""
        name = self._normalize(path)
        self._check_open(name, create=create, exclusive=exclusive)
        return self._record_open(name, truncate=truncate)

    def record_write_at(
        self, fnode: int, data: bytes | bytearray | memoryview, offset: int
    ) -> None:
        """Record `data` written at `offset` of the file `fnode`."""
        self._check_writable(fnode)
        if offset < 0:
            raise RecorderError(f"write to fnode {fnode} at negative offset {offset}")
        payload = bytes(data)
        op = RecordedOp(write=RecordedOpWrite(fnode=fnode, offset=offset, length=len(payload)))
        self._record(op, payload)

    def record_remove(self, path: str | os.PathLike[str]) -> None:
        """Record the removal of `path`."""
        self._record_unlink(self._known(path, "remove"))

    def record_rename(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        """Record `src` renamed to `dst` (replacing `dst` if it exists): an
        unlink of the old target, a link at `dst` (or, at a property path,
        the content now on disk at `dst` as a property), an unlink of `src`."""
        source = self._known(src, "rename")
        target = self._normalize(dst)
        self._record_rename(source, target)

    def _record_open(self, name: str, *, truncate: bool) -> int:
        with self._atomic():
            fnode = self._fsm.links.get(name)
            if fnode is not None and truncate:
                self._record(RecordedOp(unlink=RecordedOpLink(fnode=fnode, path=name)))
                fnode = None
            if fnode is None:
                self._record(RecordedOp(create=RecordedOpCreate(path=name)))
                fnode = self._fsm.links[name]
            return fnode

    def _record_unlink(self, name: str) -> None:
        fnode = self._fsm.links[name]
        self._record(RecordedOp(unlink=RecordedOpLink(fnode=fnode, path=name)))

    def _record_link(self, source: str, target: str) -> None:
        fnode = self._fsm.links[source]
        self._record(RecordedOp(link=RecordedOpLink(fnode=fnode, path=target)))

    def _record_rename(self, source: str, target: str) -> None:
        if source == target:
            return
        fnode = self._fsm.links[source]
        previous = self._fsm.links.get(target)
        content: str | None = None
        if target in PROPERTY_FILES:
            # The rename happened on disk already: the target holds the content.
            try:
                content = (self._dir / target[1:]).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise RecorderError(f"rename of {source} to property {target}: {exc}") from exc
        elif target in self._fsm.properties:
            raise RecorderError(f"rename of {source} to {target}, which is a property file")
        with self._atomic():
            if previous is not None:
                self._record(RecordedOp(unlink=RecordedOpLink(fnode=previous, path=target)))
            if content is not None:
                self._record(RecordedOp(property=Property(path=target, content=content)))
            else:
                self._record(RecordedOp(link=RecordedOpLink(fnode=fnode, path=target)))
            self._record(RecordedOp(unlink=RecordedOpLink(fnode=fnode, path=source)))

    def _check_new(self, source: str, target: str) -> None:
        if target in PROPERTY_FILES:
            raise RecorderError(f"link of {source} to {target}, which is a property path")
        if target in self._fsm.links or target in self._fsm.properties:
            raise RecorderError(f"link of {source} to {target}, which already exists")

    # ------------------------------------------------------------------
    # Durability

    def barrier(self, wait_for: Iterable[OpFuture[Any]] = ()) -> OpFuture[pb.AppendResponse]:
        """The future of every op recorded so far reaching the log; its value
        is the response of the latest append.

        With `wait_for`, an empty append that waits on those futures is also
        issued, so appends of ops recorded later queue behind it (the service
        writes a journal's appends in order). The future fails with the first
        append error, e.g. `JournalError` REGISTER_MISMATCH once another
        author fenced the log, or `DependencyFailed` if `wait_for` failed.
        """
        self._observe()
        if self._failure is not None:
            return OpFuture.failed(self._failure)
        self._flush()
        waits = list(wait_for)
        if waits:
            depends: OpFuture[Any] = waits[0] if len(waits) == 1 else AllOf(waits)
            self._append(b"", depends_on=depends)
        if not self._inflight:
            return OpFuture.resolved(self._last_response or pb.AppendResponse())
        return AllOf(list(self._inflight))

    async def build_hints(self) -> FsmHints:
        """Hints of every op recorded so far, once those ops are in the log
        (raises the append's error if they never get there)."""
        hints = self._fsm.build_hints(self._log)
        await self.barrier()
        return hints

    # ------------------------------------------------------------------
    # Internals

    def _normalize(self, path: str | os.PathLike[str]) -> str:
        raw = os.fspath(path)
        full = os.path.normpath(os.path.join(self._dir_str, raw))
        if not full.startswith(self._dir_str + os.sep):
            raise RecorderError(f"path {raw!r} is not a file under {self._dir}")
        return "/" + os.path.relpath(full, self._dir_str).replace(os.sep, "/")

    def _known(self, path: str | os.PathLike[str], what: str) -> str:
        name = self._normalize(path)
        if name not in self._fsm.links:
            raise RecorderError(f"{what} of {name}, which is not a recorded file of {self._log}")
        return name

    def _check_open(self, name: str, *, create: bool, exclusive: bool) -> None:
        if name in self._fsm.properties or name in PROPERTY_FILES:
            raise RecorderError(f"open of {name}, which is a property file")
        exists = name in self._fsm.links
        if not exists and not create:
            raise RecorderError(f"open of {name}, which is not a recorded file (and not create)")
        if exists and exclusive:
            raise RecorderError(f"exclusive open of {name}, which already exists")

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[None]:
        """Ops recorded inside the block reach the log in one append: a
        size-triggered flush waits for the end of the outermost block.

        An error inside the block leaves its first ops applied to the FSM and
        buffered, which the log must never hold alone, so it fails the
        recorder (crash-only, as Gazette's recorder panics on an
        inconsistent op)."""
        outermost = not self._grouped
        if outermost:
            self._observe()
            self._raise_failure()
        buffered = len(self._pending)
        self._grouped += 1
        try:
            yield
        except BaseException as exc:
            if outermost and len(self._pending) > buffered:
                self._fail(
                    RecorderError(
                        f"recording into {self._log} was interrupted in the middle of one "
                        f"operation's ops ({exc!r}); the recorder can write no more"
                    )
                )
            raise
        finally:
            self._grouped -= 1
        if not self._grouped and self._pending_size >= self._flush_bytes:
            self._flush()

    def _observe(self) -> None:
        # Learn the write head from appends that completed (a lower bound for
        # new ops, as in Gazette), and failures, without ever blocking.
        inflight = self._inflight
        while inflight and inflight[0].done():
            future = inflight.popleft()
            error = future.error()
            if error is not None:
                self._fail(error)
                continue
            response = future.result()
            self._last_response = response
            end = response.commit.end if response.commit is not None else 0
            if end < self._write_head:
                self._fail(
                    RecorderError(
                        f"log {self._log} write head went back from {self._write_head} to "
                        f"{end} (broker data loss?)"
                    )
                )
            else:
                self._write_head = end

    def _ready(self) -> None:
        # File API methods check before touching disk, so a failed recorder
        # leaves local files as the log has them.
        self._observe()
        self._raise_failure()

    def _check_writable(self, fnode: int) -> None:
        self._ready()
        if fnode not in self._fsm.live_nodes:
            raise RecorderError(f"write to fnode {fnode}, which is not a live file of {self._log}")

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error

    def _raise_failure(self) -> None:
        error = self._failure
        if error is None:
            return
        if isinstance(error, RecorderError):
            raise error
        if isinstance(error, JournalError) and error.status == pb.Status.REGISTER_MISMATCH:
            raise RecorderFencedError(
                f"recorder author {self._author:#x} was fenced off log {self._log}: "
                "another player took the log over"
            ) from error
        raise RecorderError(f"an append to recovery log {self._log} failed: {error}") from error

    def _record(self, op: RecordedOp, payload: bytes = b"") -> None:
        if not self._grouped:
            # Inside a group, the group checked once: ops of one call are
            # recorded all or none.
            self._observe()
            self._raise_failure()
        fsm = self._fsm
        op.author = self._author
        op.seq_no = fsm.next_seq_no
        op.checksum = fsm.next_checksum
        framed, body = frame_op(op)
        op.first_offset = self._write_head
        op.log = self._log
        outcome = fsm.apply(op, body)
        if outcome is not Outcome.APPLIED:
            raise RecorderError(f"recorded op {op} did not apply to the recorder's FSM: {outcome}")
        self._pending.append(framed)
        self._pending_size += len(framed)
        if payload:
            self._pending.append(payload)
            self._pending_size += len(payload)
        if self._pending_size >= self._flush_bytes and not self._grouped:
            self._flush()

    def _flush(self, *, union_registers: pb.LabelSet | None = None) -> None:
        if not self._pending:
            return
        content = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self._append(content, union_registers=union_registers)

    def _append(
        self,
        content: bytes,
        *,
        union_registers: pb.LabelSet | None = None,
        depends_on: OpFuture[Any] | None = None,
    ) -> OpFuture[pb.AppendResponse]:
        future = self._appender.append(
            self._log,
            content,
            check_registers=self._check,
            union_registers=union_registers,
            depends_on=depends_on,
        )
        self._inflight.append(future)
        return future


async def open_recorder(
    *,
    log: str,
    fsm: FSM,
    author: int,
    directory: str | os.PathLike[str],
    appender: LogAppender,
    flush_bytes: int = DEFAULT_FLUSH_BYTES,
) -> Recorder:
    """A recorder continuing `fsm` into `log` as `author`.

    Waits for a write barrier to learn the log's write head (a lower bound
    for the offsets of ops recorded from here on). If `fsm` was played
    from another log, first appends a correctly sequenced no-op that also
    fences `log` to `author`, so the new log starts a consistent history.
    """
    recorder = Recorder(
        log=log,
        fsm=fsm,
        author=author,
        directory=directory,
        appender=appender,
        fenced=False,
        flush_bytes=flush_bytes,
    )
    if fsm.last_log != log:
        recorder._record(RecordedOp())
        recorder._flush(union_registers=fence(author))
    await recorder._append(b"")
    recorder._observe()
    recorder._raise_failure()
    recorder._check = fence_selector(author)
    return recorder


class RecordedFile:
    """A file of a recorder's directory, open for writing.

    Writes go to local disk and into the log. Use as a context manager, or
    `close()` it; closing records nothing (the log knows only contents).
    """

    __slots__ = ("_fd", "_recorder", "fnode", "offset", "path")

    def __init__(self, recorder: Recorder, path: str, fnode: int, fd: int) -> None:
        self._recorder = recorder
        self._fd: int | None = fd
        self.path = path
        """The file's path in the log (`/`-rooted, relative to the directory)."""
        self.fnode = fnode
        """The Fnode the file was opened as."""
        self.offset = 0
        """Where `write` writes next."""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write `data` at `offset` and advance it; returns the length."""
        n = len(data)
        self.write_at(data, self.offset)
        self.offset += n
        return n

    def write_at(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        """Write `data` at `offset` (the current `offset` is unchanged)."""
        fd = self._require_open()
        if offset < 0:
            raise RecorderError(f"write to {self.path} at negative offset {offset}")
        self._recorder._check_writable(self.fnode)
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], offset + written)
        self._recorder.record_write_at(self.fnode, view, offset)

    def truncate(self, size: int) -> None:
        """Cut the file to `size` bytes.

        RecordedOps have no truncate, so this is recorded as a new Fnode at
        the path holding the kept bytes (read back from disk), all in one
        append: it costs O(size) log bytes, and suits rare truncations (a journal file emptied,
        a database shrunk by VACUUM). The file must have exactly one path;
        other open handles of it become stale, and writing through them
        raises RecorderError."""
        fd = self._require_open()
        recorder = self._recorder
        recorder._ready()
        fsm = recorder.fsm
        node = fsm.live_nodes.get(self.fnode)
        if node is None or fsm.links.get(self.path) != self.fnode:
            raise RecorderError(f"truncate of {self.path} through a stale handle")
        if len(node.links) != 1:
            raise RecorderError(
                f"truncate of {self.path}, which has {len(node.links)} paths: "
                "a truncation is recorded as a new file, which would split them"
            )
        if size < 0:
            raise RecorderError(f"truncate of {self.path} to negative size {size}")
        os.ftruncate(fd, size)
        # One append: a log cut after the unlink would lose the path, and one
        # after the create would hold a shorter file than was kept.
        with recorder._atomic():
            self.fnode = recorder._record_open(self.path, truncate=True)
            offset = 0
            while offset < size:
                piece = os.pread(fd, min(_TRUNCATE_PIECE, size - offset), offset)
                if not piece:
                    raise RecorderError(
                        f"truncate of {self.path}: file ended at {offset} of {size}"
                    )
                recorder.record_write_at(self.fnode, piece, offset)
                offset += len(piece)
        self.offset = min(self.offset, size)

    def sync(self) -> OpFuture[pb.AppendResponse]:
        """The future of this file's writes (and all others so far) being in
        the log: the recorder's barrier. The log, not local disk, is what
        survives the machine."""
        self._require_open()
        return self._recorder.barrier()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _require_open(self) -> int:
        if self._fd is None:
            raise RecorderError(f"file {self.path} is closed")
        return self._fd

    def __enter__(self) -> RecordedFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
