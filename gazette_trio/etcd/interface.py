"""The Etcd seam: the one async interface to etcd that the rest of the code uses.

`Etcd` is a `Protocol` met by `MemoryEtcd` (an in-process MVCC store, pure
Trio) and `GrpcEtcd` (a real etcd over gRPC). The same contract test suite
runs against both. This module owns the contract and its documentation; the
data it speaks is in `types`, the behaviour in the two implementations.

The contract, as etcd defines it:

- Every write (a put, a delete that deleted something, a transaction that
  did either) creates one new store revision; the keys it changed get it as
  their `mod_revision`. Reads never create revisions.
- `range` reads one key, a range, or a prefix, at the newest or at a past
  revision (past revisions older than the last compaction raise
  `Compacted`).
- `txn` evaluates its comparisons and runs its success or failure branch
  atomically; a branch may hold at most 128 operations (etcd's default), and
  no two writes to the same key.
- `watch` delivers every change to a range from a start revision on, in
  revision order, as `WatchBatch`es. Transport failures are retried inside
  the watch (resuming after the last delivered revision), so a caller sees
  either batches or `Compacted` (its start revision, or its resume revision,
  was compacted away): then it reloads and watches again.
- Leases: keys put with a lease are deleted when the lease expires or is
  revoked. `keep_alive` runs in the caller's nursery and raises `LeaseLost`
  when the lease is gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import trio

from .types import (
    Compare,
    DeleteResult,
    Key,
    KeyValue,
    Lease,
    LeaseInfo,
    Op,
    PutResult,
    RangeResult,
    TxnResult,
    WatchBatch,
)


class WatchStream(Protocol):
    """The batches of one watch. Iterate it, or `receive()` one batch;
    `receive_nowait()` returns a batch already delivered or raises
    `trio.WouldBlock`. Both raise `Compacted` when the watch cannot go on."""

    def __aiter__(self) -> AsyncIterator[WatchBatch]: ...

    async def receive(self) -> WatchBatch: ...

    def receive_nowait(self) -> WatchBatch: ...


class Etcd(Protocol):
    """etcd's KV, Watch and Lease services, as Trio code sees them."""

    async def range(
        self,
        key: Key,
        *,
        range_end: Key | None = None,
        prefix: bool = False,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
    ) -> RangeResult:
        """Read one key, `[key, range_end)`, or every key under the prefix `key`."""
        ...

    async def get(self, key: Key, *, revision: int = 0) -> KeyValue | None:
        """Read one key; None if it does not exist."""
        ...

    async def put(
        self,
        key: Key,
        value: Key,
        *,
        lease: int = 0,
        ignore_lease: bool = False,
        prev_kv: bool = False,
    ) -> PutResult:
        """Write one key; the result carries the new revision."""
        ...

    async def delete(
        self,
        key: Key,
        *,
        range_end: Key | None = None,
        prefix: bool = False,
        prev_kv: bool = False,
    ) -> DeleteResult:
        """Delete one key, a range, or a prefix."""
        ...

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """Run `success` if every comparison holds, else `failure`, atomically."""
        ...

    def watch(
        self,
        key: Key,
        *,
        range_end: Key | None = None,
        prefix: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
    ) -> AbstractAsyncContextManager[WatchStream]:
        """Watch changes to a key, range or prefix from `start_revision`
        (inclusive; 0 means changes after the current revision). The watch
        lives as long as the `async with` block."""
        ...

    async def grant(self, ttl: int, *, lease_id: int = 0) -> Lease:
        """Grant a lease of `ttl` seconds (etcd may round it up)."""
        ...

    async def revoke(self, lease_id: int) -> None:
        """Revoke a lease, deleting its keys. Raises `LeaseNotFound`."""
        ...

    async def keep_alive_once(self, lease_id: int) -> int:
        """Renew a lease once; returns its TTL. Raises `LeaseNotFound`."""
        ...

    async def keep_alive(
        self,
        lease_id: int,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep a lease alive until cancelled (start it in a nursery).

        Raises `LeaseLost` when the lease expires or is revoked, which cancels
        the nursery it runs in: what depends on the lease stops with it.
        """
        ...

    async def time_to_live(self, lease_id: int, *, keys: bool = False) -> LeaseInfo:
        """The lease's remaining TTL (-1 once expired) and, if asked, its keys."""
        ...

    async def compact(self, revision: int) -> None:
        """Discard history before `revision`."""
        ...

    async def aclose(self) -> None:
        """Release what the client holds (connections, tasks)."""
        ...
