"""Barrier futures whose waiting does not depend on memory addresses.

The transaction driver hands a store the transaction's appends as a *set* of
`OpFuture`s (`wait_for`), and stores wait on them in the set's iteration
order, which follows the futures' hashes, that is their addresses. The order
decides when the waiting task wakes, so it changes which tasks share a
scheduler batch, and with it the whole rest of a simulated run: two runs of
one seed in one process would differ.

`Barriers.all_of(futures)` returns one future that resolves once all of
`futures` have (or fails with the error of the failure that sorts first by
text). It waits with one task per future, started together, so their
creation order is consecutive and each does the same thing when its future
resolves: which task stands for which future no longer matters. The stores
then wait on a set of one.

The tasks run in the simulation's own nursery, not the shard's, and
`watch_commit` likewise observes a store commit's future from there, so a
durable commit is reported to the invariants even if its shard is cancelled
the moment it resolves.

This module owns these futures; the invariants decide what a commit means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from ...opfuture import OpFuture
from ...protocol import consumer as pc
from .invariants import State

if TYPE_CHECKING:
    from .app import CheckedStore
    from .world import World


class Barriers:
    """Address-independent barriers; see the module docstring."""

    def __init__(self, world: World, nursery: trio.Nursery) -> None:
        self._world = world
        self._nursery = nursery

    def all_of(self, futures: Sequence[OpFuture[Any]]) -> OpFuture[None]:
        combined: OpFuture[None] = OpFuture()
        if not futures:
            combined.resolve(None)
            return combined
        remaining = [len(futures)]
        errors: list[BaseException] = []

        async def part(future: OpFuture[Any]) -> None:
            try:
                await future.wait()
            except Exception as exc:
                errors.append(exc)
            remaining[0] -= 1
            if remaining[0] == 0:
                if errors:
                    combined.fail(min(errors, key=lambda e: f"{type(e).__name__}: {e}"))
                else:
                    combined.resolve(None)

        for future in futures:
            self._nursery.start_soon(part, future)
        return combined

    def after(self, delay: float) -> OpFuture[None]:
        """A future resolved `delay` seconds from now (a slow commit)."""
        future: OpFuture[None] = OpFuture()

        async def later() -> None:
            await trio.sleep(delay)
            future.resolve(None)

        self._nursery.start_soon(later)
        return future

    def watch_commit(
        self,
        store: CheckedStore,
        checkpoint: pc.Checkpoint,
        snapshot: State,
        future: OpFuture[None],
    ) -> None:
        """Report `future`'s commit to the invariants once it is durable."""
        world = self._world

        async def watch() -> None:
            try:
                await future.wait()
            except Exception:
                world.stats["commits failed"] += 1
                if world.invariants.book(store.shard_id).latest != store.instance:
                    # A deposed instance was stopped: the fence held.
                    world.stats["commits refused to a superseded instance"] += 1
                return
            world.stats["commits durable"] += 1
            world.invariants.committed(store.shard_id, store.instance, checkpoint, snapshot)
            if world.injector.strikes("crash_after_commit"):
                world.crash_member_of(store, "crash_after_commit")

        self._nursery.start_soon(watch)
