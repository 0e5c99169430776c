"""A nursery of tasks that serve a block, and end with it.

Many context managers here run a helper task (a pump, a lease timer, a
watch) for as long as their caller's block runs. `background_nursery` is
that shape written once: the block runs inside a nursery; when it ends, by
returning or raising, the nursery is cancelled, so the helpers stop; and an
error the block raised leaves as itself, not wrapped in the nursery's
`ExceptionGroup`, so callers catch what they raised. A helper's own failure
still leaves as the nursery's group, as Trio reports it.

This module owns that shape only; what runs in the nursery is the caller's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio

__all__ = ["background_nursery"]


@contextlib.asynccontextmanager
async def background_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery cancelled when the block ends; see the module docstring."""
    block_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            yield nursery
        except BaseException as exc:
            block_error = exc
        finally:
            nursery.cancel_scope.cancel()
    if block_error is not None:
        raise block_error
