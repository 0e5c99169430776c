"""`MemoryEtcd`: the Etcd seam served by an in-process MVCC store, in pure Trio.

It is the single-process default (optionally persisted to a file so that a
restarted process finds its keys again) and the etcd of the deterministic
simulation. The store's semantics live in `mvcc.MVCCStore`; this module is
its Trio driver: it serializes writes, makes them durable (when persisted)
before acknowledging them, hands events to watchers, and expires leases on
the Trio clock (`trio.current_time()`, so a `MockClock` drives it).

Nothing here reads the wall clock or iterates in an unspecified order, so a
run under a seeded scheduler is reproducible. A simulator steers it through
`EtcdHooks` (delay or fail any request, force a transaction's comparisons to
fail) and `expire_lease` (lose a lease now).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import trio

from .._scope import background_nursery
from . import persist
from .mvcc import Commit, MVCCStore
from .types import (
    MEMORY_CLUSTER_ID,
    Compacted,
    Compare,
    Delete,
    DeleteResult,
    Event,
    Get,
    Key,
    KeyValue,
    Lease,
    LeaseInfo,
    LeaseLost,
    LeaseNotFound,
    Op,
    Put,
    PutResult,
    RangeResult,
    ResponseHeader,
    TxnResult,
    Unavailable,
    WatchBatch,
    in_range,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MEMORY_HEADER = ResponseHeader(MEMORY_CLUSTER_ID, member_id=1, revision=0, raft_term=1)
"""How the in-process store answers: a one-member cluster that never
changes leader, so Gazette's header checks (non-zero ids and term) pass."""


class EtcdHooks:
    """Points where a simulator steers a `MemoryEtcd`. The defaults do nothing.

    - `before(request)` is awaited at the start of every request, named
      "range", "put", "delete", "txn", "grant", "revoke", "keep_alive",
      "time_to_live", "compact", "watch", and before each delivery of a watch
      batch ("watch.deliver"). It may sleep (a delay) or raise `Unavailable`
      (a failed request; a watch retries it, as a real client would).
    - `fail_txn(compare, success)` returning True makes a transaction's
      comparisons fail, as if another writer had raced it.
    """

    async def before(self, request: str) -> None:
        return None

    def fail_txn(self, compare: Sequence[Compare], success: Sequence[Op]) -> bool:
        return False


class _MemoryWatch:
    """The stream of one watch: batches queued as revisions commit."""

    def __init__(self, etcd: MemoryEtcd, start: bytes, end: bytes | None, prev_kv: bool) -> None:
        self._etcd = etcd
        self._start = start
        self._end = end
        self._prev_kv = prev_kv
        self._queue: deque[WatchBatch] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self.error: Exception | None = None

    def deliver(self, revision: int, events: Sequence[Event]) -> None:
        mine = tuple(
            e if self._prev_kv or e.prev_kv is None else Event(e.type, e.kv)
            for e in events
            if in_range(e.kv.key, self._start, self._end)
        )
        if mine:
            self._queue.append(WatchBatch(revision, mine, MEMORY_HEADER.at(revision)))
            self._lot.unpark_all()

    def fail(self, error: Exception) -> None:
        self.error = error
        self._lot.unpark_all()

    async def receive(self) -> WatchBatch:
        while True:
            if self._queue:
                await self._deliver_hook()
                if self._queue:
                    return self._queue.popleft()
            elif self.error is not None:
                raise self.error
            else:
                await self._lot.park()

    async def _deliver_hook(self) -> None:
        while True:
            try:
                await self._etcd.hooks.before("watch.deliver")
                return
            except Unavailable:
                # A real client would reconnect and resume: the batch is not lost.
                await trio.sleep(0.1)

    def receive_nowait(self) -> WatchBatch:
        if self._queue:
            return self._queue.popleft()
        if self.error is not None:
            raise self.error
        raise trio.WouldBlock

    def __aiter__(self) -> AsyncIterator[WatchBatch]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WatchBatch]:
        while True:
            yield await self.receive()


class MemoryEtcd:
    """An in-process etcd. Open it with `async with MemoryEtcd.open(...)`."""

    def __init__(
        self,
        *,
        hooks: EtcdHooks | None = None,
        max_txn_ops: int = 128,
        retain_revisions: int | None = None,
    ) -> None:
        self.store = MVCCStore(max_txn_ops=max_txn_ops)
        self.hooks = hooks or EtcdHooks()
        self.retain_revisions = retain_revisions
        self._write_lock = trio.Lock()
        self._watchers: list[_MemoryWatch] = []
        self._deadlines: dict[int, float] = {}
        self._lease_ended: dict[int, trio.Event] = {}
        self._rearm = trio.Event()
        self._file: persist.StoreFile | None = None
        self._closed = False

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        hooks: EtcdHooks | None = None,
        max_txn_ops: int = 128,
        retain_revisions: int | None = None,
    ) -> AsyncIterator[MemoryEtcd]:
        """Run a store for the life of the block.

        With `path`, the store is read from (and kept durable in) that file;
        see `persist` for the format and what survives a restart.
        """
        etcd = cls(hooks=hooks, max_txn_ops=max_txn_ops, retain_revisions=retain_revisions)
        if path is not None:
            file, snap = await trio.to_thread.run_sync(persist.StoreFile.open, path)
            etcd._file = file
            etcd.store.restore(snap.revision, snap.kvs.values(), sorted(snap.leases.items()))
            now = trio.current_time()
            for lease_id, record in etcd.store.leases.items():
                etcd._deadlines[lease_id] = now + record.ttl
                etcd._lease_ended[lease_id] = trio.Event()
        try:
            async with background_nursery() as nursery:
                nursery.start_soon(etcd._expire_leases)
                yield etcd
        finally:
            etcd._closed = True
            for w in etcd._watchers:
                w.fail(Unavailable("etcd store closed"))
            if etcd._file is not None:
                etcd._file.close()

    # ------------------------------------------------------------------
    # The write path

    async def _write(self, mutate: Callable[[], tuple[T, Commit, list[dict[str, Any]]]]) -> T:
        """Apply a mutation under the write lock, persist it, broadcast it."""
        if self._closed:
            raise Unavailable("etcd store closed")
        async with self._write_lock:
            result, commit, records = mutate()
            if commit.revision is not None:
                records = [persist.revision_record(commit.revision, commit.events), *records]
            if self._file is not None and records:
                await trio.to_thread.run_sync(self._file.append, records)
            if commit.revision is not None:
                for w in list(self._watchers):
                    w.deliver(commit.revision, commit.events)
                self._auto_compact()
        return result

    def _auto_compact(self) -> None:
        keep = self.retain_revisions
        store = self.store
        if keep is not None and store.revision - max(store.compact_revision, 1) > 2 * keep:
            store.compact(store.revision - keep)

    # ------------------------------------------------------------------
    # KV

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
        await self.hooks.before("range")
        self._check_open()
        get = Get(
            key,
            range_end=range_end,
            prefix=prefix,
            revision=revision,
            limit=limit,
            keys_only=keys_only,
        )
        result = self.store.range(get)
        return dataclasses.replace(result, header=MEMORY_HEADER.at(self.store.revision))

    async def get(self, key: Key, *, revision: int = 0) -> KeyValue | None:
        result = await self.range(key, revision=revision)
        return result.kvs[0] if result.kvs else None

    async def put(
        self,
        key: Key,
        value: Key,
        *,
        lease: int = 0,
        ignore_lease: bool = False,
        prev_kv: bool = False,
    ) -> PutResult:
        await self.hooks.before("put")
        op = Put(key, value, lease=lease, ignore_lease=ignore_lease, prev_kv=prev_kv)

        def mutate() -> tuple[PutResult, Commit, list[dict[str, Any]]]:
            self.store.validate_ops([op])
            txn, commit = self.store.apply([op])
            return txn.results[0], commit, []  # type: ignore[return-value]

        return await self._write(mutate)

    async def delete(
        self,
        key: Key,
        *,
        range_end: Key | None = None,
        prefix: bool = False,
        prev_kv: bool = False,
    ) -> DeleteResult:
        await self.hooks.before("delete")
        op = Delete(key, range_end=range_end, prefix=prefix, prev_kv=prev_kv)

        def mutate() -> tuple[DeleteResult, Commit, list[dict[str, Any]]]:
            txn, commit = self.store.apply([op])
            return txn.results[0], commit, []  # type: ignore[return-value]

        return await self._write(mutate)

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        await self.hooks.before("txn")
        forced = self.hooks.fail_txn(compare, success)

        def mutate() -> tuple[TxnResult, Commit, list[dict[str, Any]]]:
            if forced:
                self.store.validate_txn(compare, success, failure)
                txn, commit = self.store.apply(failure, succeeded=False)
                return txn, commit, []
            txn, commit = self.store.txn(compare, success, failure)
            return txn, commit, []

        result = await self._write(mutate)
        return dataclasses.replace(result, header=MEMORY_HEADER.at(result.revision))

    async def compact(self, revision: int) -> None:
        await self.hooks.before("compact")
        self._check_open()
        self.store.compact(revision)

    # ------------------------------------------------------------------
    # Watch

    @contextlib.asynccontextmanager
    async def watch(
        self,
        key: Key,
        *,
        range_end: Key | None = None,
        prefix: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
    ) -> AsyncIterator[_MemoryWatch]:
        while True:
            try:
                await self.hooks.before("watch")
                break
            except Unavailable:
                await trio.sleep(0.1)
        self._check_open()
        get = Get(key, range_end=range_end, prefix=prefix)
        watch = _MemoryWatch(self, get.key, get.range_end, prev_kv)
        if 0 < start_revision <= self.store.revision:
            try:
                past = self.store.events_since(start_revision)
            except Compacted as exc:
                watch.fail(exc)
            else:
                _deliver_by_revision(watch, past)
        self._watchers.append(watch)
        try:
            yield watch
        finally:
            self._watchers.remove(watch)

    # ------------------------------------------------------------------
    # Leases

    async def grant(self, ttl: int, *, lease_id: int = 0) -> Lease:
        await self.hooks.before("grant")

        def mutate() -> tuple[Lease, Commit, list[dict[str, Any]]]:
            record = self.store.grant(ttl, lease_id)
            self._deadlines[record.id] = trio.current_time() + ttl
            self._lease_ended[record.id] = trio.Event()
            self._rearm.set()
            return Lease(record.id, ttl), Commit(None, ()), [persist.grant_record(record.id, ttl)]

        return await self._write(mutate)

    async def revoke(self, lease_id: int) -> None:
        await self.hooks.before("revoke")
        await self._end_lease(lease_id)

    async def expire_lease(self, lease_id: int) -> None:
        """End a lease now, as if it had expired (a simulator's lease loss)."""
        await self._end_lease(lease_id)

    async def _end_lease(self, lease_id: int) -> None:
        def mutate() -> tuple[None, Commit, list[dict[str, Any]]]:
            commit = self.store.revoke(lease_id)
            self._deadlines.pop(lease_id, None)
            ended = self._lease_ended.pop(lease_id, None)
            if ended is not None:
                ended.set()
            return None, commit, [persist.end_lease_record(lease_id)]

        await self._write(mutate)

    async def keep_alive_once(self, lease_id: int) -> int:
        await self.hooks.before("keep_alive")
        self._check_open()
        record = self.store.leases.get(lease_id)
        if record is None:
            raise LeaseNotFound(lease_id)
        self._deadlines[lease_id] = trio.current_time() + record.ttl
        return record.ttl

    async def keep_alive(
        self,
        lease_id: int,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            ttl = await self.keep_alive_once(lease_id)
        except LeaseNotFound:
            raise LeaseLost(lease_id, "not found") from None
        ended = self._lease_ended[lease_id]
        task_status.started()
        while True:
            with trio.move_on_after(max(ttl / 3, 0.05)):
                await ended.wait()
            if ended.is_set():
                raise LeaseLost(lease_id, "expired or revoked")
            try:
                ttl = await self.keep_alive_once(lease_id)
            except LeaseNotFound:
                raise LeaseLost(lease_id, "expired or revoked") from None
            except Unavailable:
                continue  # the store's timer decides whether the lease outlives this

    async def time_to_live(self, lease_id: int, *, keys: bool = False) -> LeaseInfo:
        await self.hooks.before("time_to_live")
        self._check_open()
        record = self.store.leases.get(lease_id)
        if record is None:
            return LeaseInfo(lease_id, -1, 0, ())
        remaining = int(max(0.0, self._deadlines[lease_id] - trio.current_time()))
        return LeaseInfo(
            lease_id, remaining, record.ttl, tuple(sorted(record.keys)) if keys else ()
        )

    async def _expire_leases(self) -> None:
        while True:
            now = trio.current_time()
            for lease_id in sorted(i for i, d in self._deadlines.items() if d <= now):
                try:
                    await self._end_lease(lease_id)
                except LeaseNotFound:
                    pass
            self._rearm = trio.Event()
            next_deadline = min(self._deadlines.values(), default=math.inf)
            with trio.move_on_at(next_deadline):
                await self._rearm.wait()

    # ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("etcd store closed")

    async def aclose(self) -> None:
        return None


def _deliver_by_revision(watch: _MemoryWatch, events: Sequence[Event]) -> None:
    batch: list[Event] = []
    for event in events:
        if batch and batch[-1].kv.mod_revision != event.kv.mod_revision:
            watch.deliver(batch[-1].kv.mod_revision, batch)
            batch = []
        batch.append(event)
    if batch:
        watch.deliver(batch[-1].kv.mod_revision, batch)


__all__ = ["EtcdHooks", "MemoryEtcd"]
