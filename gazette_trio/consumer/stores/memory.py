"""MemoryStore: shard state in this process's memory, fenced like a database.

A `MemoryDatabase` plays the part of an external transactional database that
outlives any one store instance: it keeps, per shard FQN, the committed state,
checkpoint and a fence. `MemoryStore` is a shard's view of it, with Gazette's
external-store semantics (see `store_sql.go`): `restore_checkpoint` bumps the
fence, and a commit from an instance whose fence is stale fails. State is a
dict the application mutates; a commit snapshots it, so the next transaction
may keep mutating while the commit waits on its barrier.

It is what the runtime's own tests run on, and a reasonable store for an
application whose state may be rebuilt from its journals after a restart of
the whole process (the database dies with the process). It is not durable.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any, Generic, cast

import trio
from typing_extensions import TypeVar

from ...opfuture import OpFuture, OpFutures, wait_all
from ...protocol import consumer as pc
from ..contracts import Shard
from .commit import run_commit
from .errors import StoreError


class FenceError(StoreError):
    """A commit from a store instance that another instance has fenced off."""


@dataclass
class _Row:
    fence: int = 0
    checkpoint: bytes = b""
    state: dict[str, Any] = field(default_factory=dict)


class MemoryDatabase:
    """Committed shard states of one process, keyed by shard FQN.

    `commit_delay` and `fail_commits` let tests make commits slow or failing.
    """

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self.commit_delay = 0.0
        self.fail_commits: BaseException | None = None
        self.commits = 0

    def committed_state(self, fqn: str) -> dict[str, Any]:
        """A copy of the last committed state of shard `fqn`."""
        return copy.deepcopy(self._rows[fqn].state) if fqn in self._rows else {}

    def committed_checkpoint(self, fqn: str) -> pc.Checkpoint:
        row = self._rows.get(fqn)
        return pc.Checkpoint.parse(row.checkpoint) if row else pc.Checkpoint()


StateT = TypeVar("StateT", bound=dict[str, Any], default=dict[str, Any])


class MemoryStore(Generic[StateT]):
    """A shard's store in a `MemoryDatabase`. `state` is the working copy:
    a dict, typed by the store's parameter (`MemoryStore[dict[str, int]]`)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db
        self.state: StateT = cast(StateT, {})
        self._fence: int | None = None

    async def restore_checkpoint(self, shard: Shard) -> pc.Checkpoint:
        row = self.db._rows.setdefault(shard.fqn, _Row())
        row.fence += 1
        self._fence = row.fence
        self.state = cast(StateT, copy.deepcopy(row.state))
        await trio.lowlevel.checkpoint()
        return pc.Checkpoint.parse(row.checkpoint) if row.checkpoint else pc.Checkpoint()

    def start_commit(
        self, shard: Shard, checkpoint: pc.Checkpoint, wait_for: OpFutures
    ) -> OpFuture[None]:
        future: OpFuture[None] = OpFuture()
        # Snapshot now: the next transaction mutates `state` while we wait.
        snapshot = copy.deepcopy(self.state)
        encoded = bytes(checkpoint)
        fence = self._fence

        async def write() -> None:
            await wait_all(wait_for)
            if self.db.commit_delay:
                await trio.sleep(self.db.commit_delay)
            if self.db.fail_commits is not None:
                raise self.db.fail_commits
            row = self.db._rows[shard.fqn]
            if row.fence != fence:
                raise FenceError(
                    f"shard {shard.fqn}: store fence {fence} is stale (current {row.fence}); "
                    "another instance restored this shard"
                )
            row.state = snapshot
            row.checkpoint = encoded
            self.db.commits += 1

        shard.nursery.start_soon(
            functools.partial(
                run_commit,
                future,
                write,
                cancelled=lambda: RuntimeError(
                    f"shard {shard.fqn}: commit cancelled, the shard stopped"
                ),
            )
        )
        return future

    def destroy(self) -> None:
        self.state = cast(StateT, {})
