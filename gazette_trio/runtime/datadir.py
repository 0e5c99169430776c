"""Exclusive ownership of a data directory by one process.

Two processes writing one data directory (two `gazette-trio serve`, or a
`broker serve` beside them) both believe they are the only writer: each runs
every shard as primary, their journals diverge, and the next start keeps only
what one of them wrote. So whoever writes a data directory first takes an OS
lock on a file inside it, `gazette-trio.lock`, and holds it for as long as it
uses the directory.

The lock is `flock(LOCK_EX | LOCK_NB)`: the kernel releases it when the
process exits however it exits (SIGKILL, OOM, power loss), so there is no
stale lock to clean up, and a pid file's guesswork (is that pid still us?) is
not needed. The file also holds the holder's pid, written after the lock is
taken, only so that a refused process can say who holds it.

The descriptor is close-on-exec: a child process (etcd, a shell hook) must
not keep the lock alive after its parent dies.

This module owns the lock and its error. `lock_data_dir` is called at one
point in each serve path; `exit_if_locked` turns a refusal into a one-line
error and exit status 2 for a command (`broker repair`); the serving
commands do the same through `runtime.startup`, with their other startup
failures.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import click

from ..errors import GazetteTrioError

LOCK_FILE = "gazette-trio.lock"
EXIT_LOCKED = 2


class DataDirLocked(GazetteTrioError):
    """Another process (or another user of this process) holds the directory."""

    def __init__(self, directory: Path, holder: int | None) -> None:
        self.directory = directory
        self.holder = holder
        who = f"process {holder}" if holder is not None else "another process"
        super().__init__(
            f"data directory {directory} is in use by {who} (it holds {directory / LOCK_FILE}); "
            "stop it first, or give this process another data directory"
        )


class DataDirLock:
    """A held lock on a data directory; `release()` (or exit) gives it up."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            # Closing the descriptor drops the flock; the file stays, so the
            # next holder locks the same inode and never races an unlink.
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def lock_data_dir(directory: str | os.PathLike[str]) -> DataDirLock:
    """Take the exclusive lock on `directory` (created if missing), or raise
    `DataDirLocked` naming the directory and the holder's pid."""
    path = Path(directory).absolute()
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DataDirLocked(path, holder) from None
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        os.close(fd)
        raise
    return DataDirLock(path, fd)


def _find_locked(exc: BaseException) -> DataDirLocked | None:
    if isinstance(exc, DataDirLocked):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find_locked(inner)
            if found is not None:
                return found
    return None


@contextlib.contextmanager
def exit_if_locked() -> Iterator[None]:
    """For a command's body: a `DataDirLocked` raised inside (however deep in
    exception groups) becomes one line on stderr and exit status 2."""
    try:
        yield
    except BaseException as exc:
        locked = _find_locked(exc)
        if locked is None:
            raise
        click.echo(f"Error: {locked}", err=True)
        raise click.exceptions.Exit(EXIT_LOCKED) from None
