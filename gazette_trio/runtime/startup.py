"""Startup failures an operator can fix, told in one line.

A member (`gazette-trio serve`) or a journal server (`gazette-trio broker
serve`) that cannot start because of its surroundings (a port another
process holds, a data directory that is a file or sits on a read-only
disk, an etcd nobody answers at, a data directory another process holds)
used to end in a Trio exception group of 45 to 100 lines whose last line
(`[Errno 98] Address already in use`) named neither the port nor the key
that set it. Here such a failure becomes a `StartupError` whose message
names the config key (or option) and the path or address, says what is
wrong in words, and what to do; `exit_on_startup_error` prints it as one
line and exits 2, or, for `--debug`, lets the traceback through.

This module owns the wording of those failures and their exit. The places
that hit them (binding a port, making the data directory, reaching etcd)
call the helpers here with the key that configured them; the data
directory's lock and its own message stay in `datadir`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from typing import TypeVar

import click

from ..errors import GazetteTrioError
from .datadir import DataDirLocked

EXIT_STARTUP = 2

E = TypeVar("E", bound=BaseException)


class StartupError(GazetteTrioError):
    """The process cannot start; the message names the key or path and the remedy."""


def _setting(key: str, value: object) -> str:
    # A config key reads `key = value`, an option as it was typed.
    return f"{key} {value}" if key.startswith("-") else f"{key} = {value}"


_ADDRESS_ERRNOS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}


def address_problem(exc: OSError, key: str, host: str, port: int, remedy: str) -> StartupError:
    """A port that could not be bound, as a `StartupError` naming `key`.

    `remedy` is how to choose another port (an option, a variable)."""
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        what = f"{where} is already in use by another process"
        todo = f"stop that process, or choose another port ({remedy})"
    elif exc.errno == errno.EADDRNOTAVAIL:
        what = f"{host} is not an address of this machine"
        todo = "listen on one of its own interfaces"
    elif exc.errno == errno.EACCES:
        what = f"this user may not listen on {where} (ports below 1024 need privileges)"
        todo = f"choose a port of 1024 or more ({remedy})"
    else:
        what = f"cannot listen on {where}: {exc.strerror or exc}"
        todo = f"choose another address or port ({remedy})"
    return StartupError(f"{_setting(key, port)}: {what}; {todo}")


def is_address_problem(exc: BaseException) -> bool:
    """An error of binding a port (a file's errors name their file)."""
    return isinstance(exc, OSError) and exc.errno in _ADDRESS_ERRNOS and exc.filename is None


def path_problem(exc: OSError, key: str, directory: str | os.PathLike[str]) -> StartupError:
    """A data directory that could not be made or written, naming `key` and the path."""
    path = exc.filename if exc.filename is not None else directory
    if exc.errno == errno.EEXIST:
        what = f"{path} is a file, not a directory"
        todo = f"move the file away, or set {key} to a directory"
    elif exc.errno == errno.ENOTDIR:
        what = f"a part of {path} is a file, not a directory"
        todo = f"move the file away, or set {key} to a directory"
    elif exc.errno == errno.EROFS:
        what = f"{path} is on a read-only file system"
        todo = f"mount it read-write, or set {key} to a writable directory"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        what = f"this user may not write {path}"
        todo = f"give it write access, or set {key} to a directory it owns"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = f"no space left for {path}"
        todo = f"free some space, or set {key} to another disk"
    else:
        what = f"cannot use {path}: {exc.strerror or exc}"
        todo = f"fix it, or set {key} to another directory"
    return StartupError(f"{_setting(key, directory)}: {what}; {todo}")


def journal_server_problem(
    exc: BaseException, data_dir: str | os.PathLike[str] | None, host: str, port: int
) -> StartupError | None:
    """What stopped `broker serve` from starting, named by its options, or
    None if it is not one of the failures an operator fixes."""
    bad = find(exc, OSError)
    if bad is None:
        return None
    if is_address_problem(bad):
        return address_problem(bad, "--port", host, port, "--port")
    if data_dir is not None and bad.filename is not None:
        return path_problem(bad, "--data-dir", data_dir)
    return None


def find(exc: BaseException, kind: type[E]) -> E | None:
    """The first `kind` in `exc`, however deep in (Trio's) exception groups."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find(inner, kind)
            if found is not None:
                return found
    return None


@contextlib.contextmanager
def exit_on_startup_error(debug: bool = False) -> Iterator[None]:
    """For a serving command's body: a `StartupError` or `DataDirLocked`
    raised inside becomes `Error: <message>` on stderr and exit status 2.
    With `debug` the exception is left to print its traceback."""
    try:
        yield
    except BaseException as exc:
        if debug:
            raise
        problem: BaseException | None = find(exc, StartupError) or find(exc, DataDirLocked)
        if problem is None:
            raise
        click.echo(f"Error: {problem}", err=True)
        raise click.exceptions.Exit(EXIT_STARTUP) from None


__all__ = [
    "StartupError",
    "address_problem",
    "exit_on_startup_error",
    "find",
    "is_address_problem",
    "journal_server_problem",
    "path_problem",
]
