"""Which errors that failed a shard a retry may heal.

A shard fails on any error; whether it should try again depends on what the
error says about the world. A database, broker or etcd that cannot be
reached, a connection cut by a restart, a full disk: these pass, and the
shard retries with backoff (reporting that it is retrying and why). A
fenced store (another primary took over), a malformed message, a bug in
the application, a damaged journal: these do not, and the shard stays
FAILED until its assignment is removed, as Gazette's.

An error counts as transient if it, or an error it was raised from (its
`__cause__`/`__context__` chain), is one of the transient kinds below and
none in the chain is a verdict (fencing, data loss, a refused request).

This module owns the classification only; `shard` acts on it.
"""

from __future__ import annotations

import sqlite3
import sys

from .. import aio
from ..broker.errors import JournalError
from ..etcd.types import EtcdUnavailable, LeaseLost
from ..recoverylog.recorder import RecorderFencedError
from .stores.errors import FencedError

# Transport-level failures to a broker, a Shard API or etcd.
_TRANSIENT_RPC = (aio.Unavailable, aio.DeadlineExceeded, aio.Aborted, aio.ResourceExhausted)
# Verdicts: no retry changes them.
_PERMANENT = (
    FencedError,
    RecorderFencedError,
    aio.DataLoss,
    aio.InvalidArgument,
    aio.PermissionDenied,
    aio.Unauthenticated,
)


def transient_reason(error: BaseException) -> str | None:
    """Why `error` may pass (a few words), or None if it is permanent."""
    reason: str | None = None
    for exc in _chain(error):
        if isinstance(exc, _PERMANENT):
            return None
        if reason is None:
            reason = _kind(exc)
    return reason


def _kind(exc: BaseException) -> str | None:
    if isinstance(exc, aio.ResourceExhausted):
        return "a server is out of space or over a limit"
    if isinstance(exc, _TRANSIENT_RPC):
        return "a server is unreachable"
    if isinstance(exc, JournalError) and exc.retryable:
        return "the journal's broker is not ready"
    if isinstance(exc, (EtcdUnavailable, LeaseLost)):
        return "etcd is unreachable"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "a connection failed"
    if _is_database_outage(exc):
        return "the database is unreachable"
    return None


def _is_database_outage(exc: BaseException) -> bool:
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        # Connection refused, cut by a restart ("terminating connection due
        # to administrator command"), or used after it was closed.
        return True
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _chain(error: BaseException) -> list[BaseException]:
    """`error` and what it was raised from or while handling, in order,
    through single-error groups."""
    out: list[BaseException] = []
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        exc = todo.pop(0)
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, BaseExceptionGroup):
            todo.extend(exc.exceptions)
            continue
        out.append(exc)
        if exc.__cause__ is not None:
            todo.append(exc.__cause__)
        elif exc.__context__ is not None and not exc.__suppress_context__:
            todo.append(exc.__context__)
    return out
