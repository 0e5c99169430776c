"""A blocking connection driven from Trio: one call at a time, in order.

Database drivers such as sqlite3, apsw and psycopg's synchronous connection
block the calling thread. A store keeps one such connection and reaches it
only through a `BlockingWorker`, which runs each call in one of Trio's worker
threads (`trio.to_thread.run_sync`) and guarantees:

- calls run one at a time, in the order they were made (a per-worker
  `trio.CapacityLimiter(1)`, which queues fairly, plus a condition variable
  that also covers a thread Trio has stopped waiting for);
- cancellation is prompt: a call cancelled before it started never runs; a
  call cancelled while it runs is abandoned by Trio and the worker asks the
  driver to interrupt it (`sqlite3.Connection.interrupt`, a PostgreSQL
  cancel request). The connection is then in an unknown state, so the worker
  is *broken*: every later call raises `StoreStateError`. Cancellation means
  the shard is ending, and its store with it;
- `close` releases the connection exactly once, immediately if it is idle,
  otherwise as soon as the running call returns.

This module owns the thread discipline only; what runs in the thread (SQL,
transactions) belongs to the stores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import trio

from .errors import StoreStateError

T = TypeVar("T")


class _Skipped(Exception):
    """A call whose caller was cancelled before its thread started."""


class _Ticket:
    """One call's progress, shared by the Trio side and its thread."""

    __slots__ = ("skip", "started")

    def __init__(self) -> None:
        self.started = False
        self.skip = False


class BlockingWorker:
    """Serializes the blocking calls of one connection onto worker threads."""

    def __init__(self, name: str, interrupt: Callable[[], None] | None = None) -> None:
        self.name = name
        self._interrupt = interrupt
        self._limiter = trio.CapacityLimiter(1)
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._pending_close: Callable[[], None] | None = None
        self._broken: str | None = None

    @property
    def broken(self) -> str | None:
        """Why the worker refuses calls, or None while it is usable."""
        return self._broken

    def check(self) -> None:
        """Raise StoreStateError if the worker is closed or broken."""
        if self._closed:
            raise StoreStateError(f"{self.name} is closed")
        if self._broken is not None:
            raise StoreStateError(f"{self.name} is unusable: {self._broken}")

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn()` in a worker thread after every earlier call finished."""
        self.check()
        ticket = _Ticket()

        def work() -> T:
            with self._cond:
                if ticket.skip:
                    raise _Skipped  # nobody waits for this result any more
                while self._busy:
                    self._cond.wait()
                if self._closed:
                    raise StoreStateError(f"{self.name} is closed")
                self._busy = True
                ticket.started = True
            try:
                return fn()
            finally:
                with self._cond:
                    self._busy = False
                    closer, self._pending_close = self._pending_close, None
                    self._cond.notify_all()
                if closer is not None:
                    closer()

        try:
            return await trio.to_thread.run_sync(
                work, limiter=self._limiter, abandon_on_cancel=True
            )
        except trio.Cancelled:
            with self._cond:
                started = ticket.started
                ticket.skip = True
            if started:
                self._broken = f"a call was cancelled while running in {self.name}"
                if self._interrupt is not None:
                    try:
                        self._interrupt()
                    except Exception:
                        pass  # best effort: the thread finishes on its own anyway
            raise

    def close(self, closer: Callable[[], None]) -> None:
        """Mark the worker closed and run `closer` once no call is running."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if self._busy:
                self._pending_close = closer
                return
        closer()
