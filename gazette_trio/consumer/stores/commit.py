"""How a store's background commit settles its future.

Every store starts its commit in `start_commit`, returns an `OpFuture` at
once, and finishes in a task of the shard's nursery: wait for the
transaction's `wait_for` futures, write, then resolve the future, or fail
it with what went wrong. The waiting and the settling are the same in each
store and are written here once:

- `wait_dependencies` waits for every `wait_for` future, and turns the
  first failure into the store's own error (a `CommitDependencyError`
  naming the shard, as the caller words it); a cancellation passes as is;
- `run_commit` runs the commit's work and settles its future: resolved
  when the work returned, failed with the store's view of an error it
  raised, and failed too, with an error saying so, when the shard was
  cancelled meanwhile (the cancellation then goes on, and nobody awaiting
  the future is left hanging).

What the work is, and what a failure does to the store, are each store's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ...opfuture import OpFuture, OpFutures, wait_all

__all__ = ["run_commit", "wait_dependencies"]


def _same(error: BaseException) -> BaseException:
    return error


async def wait_dependencies(
    wait_for: OpFutures, abandoned: Callable[[BaseException], BaseException]
) -> None:
    """Wait for every future of `wait_for`; when one fails, raise
    `abandoned(its error)`, chained to it."""
    try:
        await wait_all(wait_for)
    except trio.Cancelled:
        raise
    except BaseException as exc:
        raise abandoned(exc) from exc


async def run_commit(
    future: OpFuture[None],
    work: Callable[[], Awaitable[None]],
    *,
    cancelled: Callable[[], BaseException],
    failed: Callable[[BaseException], BaseException] = _same,
) -> bool:
    """Run `work` and settle `future` with its outcome; True if it resolved.

    An error `work` raised fails the future with `failed(error)` (where a
    store records that it is no longer usable); a cancellation fails it
    with `cancelled()` and is re-raised.
    """
    try:
        await work()
    except trio.Cancelled:
        future.fail(cancelled())
        raise
    except BaseException as exc:
        future.fail(failed(exc))
        return False
    future.resolve(None)
    return True
