"""An MVCC key/value store with etcd's semantics, as data and pure methods.

`MVCCStore` is what `MemoryEtcd` keeps in memory: the live keys, each key's
history back to the last compaction, the events of every retained revision,
and the lease table (which keys each lease holds). Its methods are
synchronous and do no I/O and read no clock: a write returns the events it
produced and the caller (the Trio driver in `memory.py`) persists them,
notifies watchers and runs lease timers. Iteration is always in key or
revision order, so a run is deterministic.

It does not own time (lease deadlines), watchers, or persistence.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .types import (
    Compacted,
    Compare,
    Delete,
    DeleteResult,
    Event,
    EventType,
    FutureRevision,
    Get,
    InvalidRequest,
    KeyValue,
    LeaseExists,
    LeaseNotFound,
    Op,
    OpResult,
    Put,
    PutResult,
    RangeResult,
    TxnResult,
    in_range,
)

# A key's history: (revision, value at that revision or None if deleted there).
_Version = tuple[int, KeyValue | None]


@dataclass
class LeaseRecord:
    id: int
    ttl: int
    keys: set[bytes] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Commit:
    """What one write did: the revision it created (None if it changed
    nothing) and its events, for the driver to persist and broadcast."""

    revision: int | None
    events: tuple[Event, ...]


class MVCCStore:
    """Keys, their history, revisions and leases, with etcd's rules."""

    def __init__(self, *, max_txn_ops: int = 128) -> None:
        self.max_txn_ops = max_txn_ops
        # etcd's store starts at revision 1; the first write creates revision 2.
        self.revision = 1
        self.compact_revision = 0
        self.live: dict[bytes, KeyValue] = {}
        self._live_keys: list[bytes] = []
        self._history: dict[bytes, list[_Version]] = {}
        self._history_keys: list[bytes] = []
        self._event_revisions: list[int] = []
        self._events: list[tuple[Event, ...]] = []
        self.leases: dict[int, LeaseRecord] = {}
        self.next_lease_id = 0x694D_0000_0001

    # ------------------------------------------------------------------
    # Reads

    def _live_range(self, start: bytes, end: bytes | None) -> Iterable[KeyValue]:
        if end is None:
            kv = self.live.get(start)
            return [kv] if kv is not None else []
        lo = bisect.bisect_left(self._live_keys, start)
        hi = len(self._live_keys) if end == b"\0" else bisect.bisect_left(self._live_keys, end)
        return [self.live[k] for k in self._live_keys[lo:hi]]

    def _past_range(self, start: bytes, end: bytes | None, revision: int) -> Iterable[KeyValue]:
        if end is None:
            keys = [start] if start in self._history else []
        else:
            lo = bisect.bisect_left(self._history_keys, start)
            hi = (
                len(self._history_keys)
                if end == b"\0"
                else bisect.bisect_left(self._history_keys, end)
            )
            keys = self._history_keys[lo:hi]
        out = []
        for key in keys:
            versions = self._history[key]
            i = bisect.bisect_right(versions, revision, key=lambda v: v[0])
            if i and versions[i - 1][1] is not None:
                out.append(versions[i - 1][1])
        return out  # type: ignore[return-value]

    def range(self, get: Get) -> RangeResult:
        revision = get.revision
        if revision > self.revision:
            raise FutureRevision("required revision is a future revision")
        if 0 < revision < self.compact_revision:
            raise Compacted(self.compact_revision)
        if revision <= 0 or revision == self.revision:
            kvs = list(self._live_range(get.key, get.range_end))
        else:
            kvs = list(self._past_range(get.key, get.range_end, revision))
        count = len(kvs)
        more = False
        if get.limit > 0 and count > get.limit:
            kvs, more = kvs[: get.limit], True
        if get.keys_only:
            kvs = [
                KeyValue(kv.key, b"", kv.create_revision, kv.mod_revision, kv.version, kv.lease)
                for kv in kvs
            ]
        return RangeResult(self.revision, kvs, more, count)

    def events_since(self, revision: int) -> list[Event]:
        """Every retained event at `revision` or later, in order."""
        if revision < self.compact_revision:
            raise Compacted(self.compact_revision)
        i = bisect.bisect_left(self._event_revisions, revision)
        return [e for batch in self._events[i:] for e in batch]

    # ------------------------------------------------------------------
    # Writes

    def validate_ops(self, ops: Sequence[Op]) -> None:
        if len(ops) > self.max_txn_ops:
            raise InvalidRequest("too many operations in txn request")
        writes: list[tuple[bytes, bytes | None]] = []
        for op in ops:
            if isinstance(op, Put):
                writes.append((op.key, None))
                if op.ignore_lease and op.lease:
                    raise InvalidRequest("lease is provided")
            elif isinstance(op, Delete):
                writes.append((op.key, op.range_end))
        # etcd refuses two writes to one key (a put inside a deleted range too).
        for i, (k1, e1) in enumerate(writes):
            for k2, e2 in writes[i + 1 :]:
                if e1 is None and e2 is None:
                    clash = k1 == k2
                elif e1 is None:
                    clash = in_range(k1, k2, e2)
                elif e2 is None:
                    clash = in_range(k2, k1, e1)
                else:
                    clash = False  # etcd allows overlapping delete ranges
                if clash:
                    raise InvalidRequest("duplicate key given in txn request")

    def _check_puts(self, ops: Sequence[Op]) -> None:
        for op in ops:
            if isinstance(op, Put):
                if op.ignore_lease:
                    if op.key not in self.live:
                        raise InvalidRequest("key not found")
                elif op.lease and op.lease not in self.leases:
                    raise LeaseNotFound(op.lease)

    def validate_txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> None:
        """Raise `InvalidRequest` for a transaction etcd would refuse."""
        if len(compare) > self.max_txn_ops:
            raise InvalidRequest("too many operations in txn request")
        self.validate_ops(success)
        self.validate_ops(failure)

    def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> tuple[TxnResult, Commit]:
        self.validate_txn(compare, success, failure)
        succeeded = all(c.holds_for(self.live.get(c.key)) for c in compare)
        return self.apply(success if succeeded else failure, succeeded)

    def apply(self, ops: Sequence[Op], succeeded: bool = True) -> tuple[TxnResult, Commit]:
        """Apply operations as one revision (ops already validated)."""
        self._check_puts(ops)
        rev = self.revision + 1
        events: list[Event] = []
        results: list[OpResult] = []
        for op in ops:
            if isinstance(op, Get):
                # Reads inside a transaction see its earlier writes.
                results.append(self._read_in_txn(op, rev if events else self.revision))
            elif isinstance(op, Put):
                prev = self.live.get(op.key)
                lease = prev.lease if (op.ignore_lease and prev is not None) else op.lease
                if prev is None:
                    kv = KeyValue(op.key, op.value, rev, rev, 1, lease)
                else:
                    kv = KeyValue(
                        op.key, op.value, prev.create_revision, rev, prev.version + 1, lease
                    )
                self._set(kv, prev)
                events.append(Event(EventType.PUT, kv, prev))
                results.append(PutResult(rev, prev if op.prev_kv else None))
            else:
                deleted = list(self._live_range(op.key, op.range_end))
                for prev in deleted:
                    self._remove(prev, rev)
                    events.append(
                        Event(EventType.DELETE, KeyValue(prev.key, b"", 0, rev, 0, 0), prev)
                    )
                results.append(DeleteResult(rev, len(deleted), deleted if op.prev_kv else []))
        if events:
            self.revision = rev
            self._event_revisions.append(rev)
            self._events.append(tuple(events))
            # Results carry the header revision: the store's after the write.
            results = [_with_revision(r, rev) for r in results]
            return TxnResult(succeeded, rev, results), Commit(rev, tuple(events))
        results = [_with_revision(r, self.revision) for r in results]
        return TxnResult(succeeded, self.revision, results), Commit(None, ())

    def _read_in_txn(self, get: Get, revision: int) -> RangeResult:
        if get.revision and get.revision != revision:
            return self.range(get)
        kvs = list(self._live_range(get.key, get.range_end))
        count = len(kvs)
        more = bool(get.limit and count > get.limit)
        if more:
            kvs = kvs[: get.limit]
        return RangeResult(revision, kvs, more, count)

    def _set(self, kv: KeyValue, prev: KeyValue | None) -> None:
        if prev is None:
            bisect.insort(self._live_keys, kv.key)
        elif prev.lease and prev.lease != kv.lease and prev.lease in self.leases:
            self.leases[prev.lease].keys.discard(kv.key)
        if kv.lease:
            self.leases[kv.lease].keys.add(kv.key)
        self.live[kv.key] = kv
        self._record(kv.key, kv.mod_revision, kv)

    def _remove(self, prev: KeyValue, rev: int) -> None:
        del self.live[prev.key]
        i = bisect.bisect_left(self._live_keys, prev.key)
        del self._live_keys[i]
        if prev.lease and prev.lease in self.leases:
            self.leases[prev.lease].keys.discard(prev.key)
        self._record(prev.key, rev, None)

    def _record(self, key: bytes, rev: int, kv: KeyValue | None) -> None:
        versions = self._history.get(key)
        if versions is None:
            self._history[key] = [(rev, kv)]
            bisect.insort(self._history_keys, key)
        else:
            versions.append((rev, kv))

    def compact(self, revision: int) -> None:
        """Forget history before `revision` (its state at `revision` stays)."""
        if revision > self.revision:
            raise FutureRevision("required revision is a future revision")
        if revision <= self.compact_revision:
            raise Compacted(self.compact_revision)
        self.compact_revision = revision
        gone = []
        for key in self._history_keys:
            versions = self._history[key]
            i = bisect.bisect_right(versions, revision, key=lambda v: v[0])
            if i:
                keep = versions[i - 1 :] if versions[i - 1][1] is not None else versions[i:]
                if keep:
                    self._history[key] = keep
                else:
                    del self._history[key]
                    gone.append(key)
        if gone:
            gone_set = set(gone)
            self._history_keys = [k for k in self._history_keys if k not in gone_set]
        i = bisect.bisect_left(self._event_revisions, revision)
        del self._event_revisions[:i]
        del self._events[:i]

    # ------------------------------------------------------------------
    # Leases

    def grant(self, ttl: int, lease_id: int = 0) -> LeaseRecord:
        if lease_id == 0:
            while self.next_lease_id in self.leases:
                self.next_lease_id += 1
            lease_id = self.next_lease_id
            self.next_lease_id += 1
        elif lease_id in self.leases:
            raise LeaseExists(f"lease already exists ({lease_id:#x})")
        record = LeaseRecord(lease_id, ttl)
        self.leases[lease_id] = record
        return record

    def revoke(self, lease_id: int) -> Commit:
        """Delete the lease and every key attached to it, as one revision."""
        record = self.leases.get(lease_id)
        if record is None:
            raise LeaseNotFound(lease_id)
        ops = [Delete(k) for k in sorted(record.keys)]
        _, commit = self.apply(ops)
        del self.leases[lease_id]
        return commit

    # ------------------------------------------------------------------
    # Restoring from a snapshot

    def restore(
        self, revision: int, kvs: Iterable[KeyValue], leases: Iterable[tuple[int, int]]
    ) -> None:
        """Reset to a snapshot: the keys live at `revision`, no older history."""
        self.__init__(max_txn_ops=self.max_txn_ops)  # type: ignore[misc]
        for lease_id, ttl in leases:
            self.leases[lease_id] = LeaseRecord(lease_id, ttl)
            self.next_lease_id = max(self.next_lease_id, lease_id + 1)
        for kv in kvs:
            if kv.lease and kv.lease not in self.leases:
                continue  # its lease ended before the snapshot was written
            self._set(kv, None)
        self.revision = revision
        self.compact_revision = revision


def _with_revision(result: OpResult, revision: int) -> OpResult:
    if isinstance(result, RangeResult):
        return RangeResult(revision, result.kvs, result.more, result.count)
    if isinstance(result, PutResult):
        return PutResult(revision, result.prev_kv)
    return DeleteResult(revision, result.deleted, result.prev_kvs)
