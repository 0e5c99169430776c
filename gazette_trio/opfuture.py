"""OpFuture: the result of an asynchronous operation, resolved exactly once.

Gazette's consumer orders a transaction's effects with futures: a store
commit waits on the recovery-log appends and on every journal write the
transaction made; ACK intents are written only after the commit resolves; the
next transaction may not commit before its predecessor's commit resolved.
`OpFuture` is that barrier, in Trio's idiom: `await future` returns the
operation's value or raises its error, any number of times, from any task.

This module owns only the future. Who resolves it (the append service, a
store) and who waits on it (the transaction driver) live elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import trio

T = TypeVar("T")

_PENDING: Any = object()


class OpFuture(Generic[T]):
    """A value or an error, delivered once; awaited by any number of tasks."""

    __slots__ = ("_error", "_event", "_value")

    def __init__(self) -> None:
        self._event: trio.Event | None = None
        self._value: Any = _PENDING
        self._error: BaseException | None = None

    @classmethod
    def resolved(cls, value: T = None) -> OpFuture[T]:  # type: ignore[assignment]
        """A future that is already done with `value`."""
        future: OpFuture[T] = cls()
        future.resolve(value)
        return future

    @classmethod
    def failed(cls, error: BaseException) -> OpFuture[T]:
        """A future that is already done with `error`."""
        future: OpFuture[T] = cls()
        future.fail(error)
        return future

    def done(self) -> bool:
        return self._value is not _PENDING or self._error is not None

    def resolve(self, value: T = None) -> None:  # type: ignore[assignment]
        if self.done():
            raise RuntimeError("OpFuture resolved twice")
        self._value = value
        if self._event is not None:
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if self.done():
            raise RuntimeError("OpFuture resolved twice")
        self._error = error
        if self._event is not None:
            self._event.set()

    def result(self) -> T:
        """The value of a done future (raising its error); RuntimeError if pending."""
        if self._error is not None:
            raise self._error
        if self._value is _PENDING:
            raise RuntimeError("OpFuture is not done")
        return self._value  # type: ignore[no-any-return]

    def error(self) -> BaseException | None:
        """The error of a done future, or None."""
        return self._error

    async def wait(self) -> T:
        """Wait until done; return the value or raise the error."""
        if not self.done():
            if self._event is None:
                self._event = trio.Event()
            await self._event.wait()
        else:
            await trio.lowlevel.checkpoint()
        return self.result()

    def __await__(self) -> Any:
        return self.wait().__await__()

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("failed" if self._error else "resolved")
        return f"<OpFuture {state}>"


OpFutures = set[OpFuture[Any]]
"""A set of futures that must all resolve; see `wait_all`."""


async def wait_all(futures: Iterable[OpFuture[Any]]) -> None:
    """Wait for every future; raise the first error met, in iteration order.

    All futures are awaited even if an early one failed, so that a barrier
    never releases while an operation it guards is still in flight.
    """
    first: BaseException | None = None
    waited = False
    for future in list(futures):
        if future.done():
            # Already resolved: no need to pay a scheduling checkpoint each
            # (a commit barrier may hold thousands of appends).
            error = future.error()
        else:
            waited = True
            try:
                await future.wait()
                error = None
            except trio.Cancelled:
                raise
            except BaseException as exc:
                error = exc
        if error is not None and first is None:
            first = error
    if not waited:
        await trio.lowlevel.checkpoint()
    if first is not None:
        raise first
