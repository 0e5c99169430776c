"""The values that cross the Etcd seam: key/values, events, requests, results, errors.

These are plain Python dataclasses so that code using the seam (the KeySpace,
the allocator, the consumer runtime) never touches etcd's protobuf classes.
Both implementations, `MemoryEtcd` and `GrpcEtcd`, speak only these types at
their public methods. This module owns the data and the error classes; it
does not own any behaviour beyond small conveniences (key encoding, prefix
ends, comparisons of one key/value).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from ..errors import GazetteTrioError

Key: TypeAlias = bytes | str
"""Keys and values may be given as `str` (encoded as UTF-8) or `bytes`."""

CompareOp: TypeAlias = Literal["=", "!=", "<", ">"]


def to_bytes(value: Key) -> bytes:
    """Encode a key or value given as text."""
    return value.encode() if isinstance(value, str) else bytes(value)


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key beginning with `prefix`.

    As in etcd: the last byte below 0xff is incremented and what follows it is
    dropped; a prefix of only 0xff bytes (or an empty one) has no end, which
    etcd spells `b"\\0"` ("every key from here on").
    """
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def in_range(key: bytes, start: bytes, end: bytes | None) -> bool:
    """Whether `key` falls in etcd's range `[start, end)`.

    `end` None means the single key `start`; `b"\\0"` means every key from
    `start` on.
    """
    if end is None:
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


# --------------------------------------------------------------------------
# Stored data


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as etcd stores it, at one revision.

    `create_revision` is the revision that created the key (since its last
    deletion), `mod_revision` the one that last changed it, `version` the
    number of changes since creation (1 at creation), `lease` the lease the
    key is attached to (0 for none).
    """

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


class EventType(enum.Enum):
    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class Event:
    """A change to one key. For a DELETE, `kv` carries the key and the
    deleting revision as `mod_revision`; its other fields are zero."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Events a watch delivered together, in revision order.

    Every change to the watched range through `revision` has been delivered
    once this batch is received. A batch without events is a progress
    notification: nothing changed in the range through `revision`.
    `header` is the response header of the message that carried it, when
    the implementation has one.
    """

    revision: int
    events: tuple[Event, ...]
    header: ResponseHeader | None = None


# --------------------------------------------------------------------------
# Requests (the operations of a transaction)


def _check_key(key: bytes) -> bytes:
    if not key:
        raise InvalidRequest("key is not provided")
    return key


@dataclass(frozen=True, slots=True, init=False)
class Get:
    """Read the key `key`, or the range `[key, range_end)`.

    `prefix=True` reads every key beginning with `key`. `revision` 0 reads the
    newest revision; `limit` 0 reads every key in the range.
    """

    key: bytes
    range_end: bytes | None
    revision: int
    limit: int
    keys_only: bool

    def __init__(
        self,
        key: Key,
        *,
        range_end: Key | None = None,
        prefix: bool = False,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
    ) -> None:
        k = _check_key(to_bytes(key))
        object.__setattr__(self, "key", k)
        end = prefix_end(k) if prefix else (None if range_end is None else to_bytes(range_end))
        object.__setattr__(self, "range_end", end)
        object.__setattr__(self, "revision", revision)
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "keys_only", keys_only)


@dataclass(frozen=True, slots=True, init=False)
class Put:
    """Write `value` at `key`, attached to `lease` (0: none).

    `ignore_lease=True` keeps whatever lease the existing key has (the key must
    exist, and `lease` must be 0), as etcd's `ignore_lease`.
    """

    key: bytes
    value: bytes
    lease: int
    ignore_lease: bool
    prev_kv: bool

    def __init__(
        self,
        key: Key,
        value: Key,
        *,
        lease: int = 0,
        ignore_lease: bool = False,
        prev_kv: bool = False,
    ) -> None:
        object.__setattr__(self, "key", _check_key(to_bytes(key)))
        object.__setattr__(self, "value", to_bytes(value))
        object.__setattr__(self, "lease", lease)
        object.__setattr__(self, "ignore_lease", ignore_lease)
        object.__setattr__(self, "prev_kv", prev_kv)


@dataclass(frozen=True, slots=True, init=False)
class Delete:
    """Delete the key `key`, the range `[key, range_end)`, or (`prefix=True`)
    every key beginning with `key`."""

    key: bytes
    range_end: bytes | None
    prev_kv: bool

    def __init__(
        self,
        key: Key,
        *,
        range_end: Key | None = None,
        prefix: bool = False,
        prev_kv: bool = False,
    ) -> None:
        k = _check_key(to_bytes(key))
        object.__setattr__(self, "key", k)
        end = prefix_end(k) if prefix else (None if range_end is None else to_bytes(range_end))
        object.__setattr__(self, "range_end", end)
        object.__setattr__(self, "prev_kv", prev_kv)


Op: TypeAlias = Get | Put | Delete


class CompareTarget(enum.Enum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


@dataclass(frozen=True, slots=True)
class Compare:
    """A condition of a transaction on one key.

    Build them with the class methods, e.g. `Compare.mod_revision(key, "=", 7)`
    or `Compare.version(key, "=", 0)` ("the key does not exist"). As in etcd, a
    missing key compares as version, revisions and lease 0, and every VALUE
    comparison on a missing key fails.
    """

    key: bytes
    target: CompareTarget
    op: CompareOp
    operand: int | bytes

    @classmethod
    def version(cls, key: Key, op: CompareOp, version: int) -> Compare:
        return cls(_check_key(to_bytes(key)), CompareTarget.VERSION, op, version)

    @classmethod
    def create_revision(cls, key: Key, op: CompareOp, revision: int) -> Compare:
        return cls(_check_key(to_bytes(key)), CompareTarget.CREATE, op, revision)

    @classmethod
    def mod_revision(cls, key: Key, op: CompareOp, revision: int) -> Compare:
        return cls(_check_key(to_bytes(key)), CompareTarget.MOD, op, revision)

    @classmethod
    def value(cls, key: Key, op: CompareOp, value: Key) -> Compare:
        return cls(_check_key(to_bytes(key)), CompareTarget.VALUE, op, to_bytes(value))

    @classmethod
    def lease(cls, key: Key, op: CompareOp, lease: int) -> Compare:
        return cls(_check_key(to_bytes(key)), CompareTarget.LEASE, op, lease)

    def holds_for(self, kv: KeyValue | None) -> bool:
        """Evaluate the comparison against the key's current value."""
        if kv is None:
            if self.target is CompareTarget.VALUE:
                return False
            kv = KeyValue(self.key, b"", 0, 0, 0, 0)
        actual: int | bytes
        if self.target is CompareTarget.VERSION:
            actual = kv.version
        elif self.target is CompareTarget.CREATE:
            actual = kv.create_revision
        elif self.target is CompareTarget.MOD:
            actual = kv.mod_revision
        elif self.target is CompareTarget.VALUE:
            actual = kv.value
        else:
            actual = kv.lease
        operand = self.operand
        if type(actual) is not type(operand):
            raise InvalidRequest(f"compare of {self.target.name} on {self.key!r} with {operand!r}")
        if self.op == "=":
            return actual == operand
        if self.op == "!=":
            return actual != operand
        if self.op == "<":
            return actual < operand  # type: ignore[operator]
        return actual > operand  # type: ignore[operator]


# --------------------------------------------------------------------------
# Results


MEMORY_CLUSTER_ID = 0x6761_7A65_7474_6521
"""The cluster id the in-process store reports ("gazette!" in ASCII): the
embedded journal server reports the same, so one process is one cluster."""


@dataclass(frozen=True, slots=True)
class ResponseHeader:
    """Who answered and at which revision: etcd's `ResponseHeader`.

    A real etcd names its cluster, the member that served the request and
    that member's raft term; Gazette puts these in every API header and its
    clients refuse zeros. The in-process store answers as a one-member
    cluster (`MEMORY_CLUSTER_ID`, member 1, term 1).
    """

    cluster_id: int
    member_id: int
    revision: int
    raft_term: int

    def at(self, revision: int) -> ResponseHeader:
        """The same server, at another revision."""
        return ResponseHeader(self.cluster_id, self.member_id, revision, self.raft_term)


NO_HEADER = ResponseHeader(0, 0, 0, 0)
"""What is known before any response arrived."""


@dataclass(frozen=True, slots=True)
class RangeResult:
    """Keys read by a `Get`. `revision` is the store's revision when the read
    was served; `count` the number of keys in the range (beyond `limit`);
    `more` whether keys were left out by `limit`."""

    revision: int
    kvs: list[KeyValue]
    more: bool = False
    count: int = 0
    header: ResponseHeader | None = None


@dataclass(frozen=True, slots=True)
class PutResult:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    revision: int
    deleted: int
    prev_kvs: list[KeyValue] = field(default_factory=list)


OpResult: TypeAlias = RangeResult | PutResult | DeleteResult


@dataclass(frozen=True, slots=True)
class TxnResult:
    """Outcome of a transaction: whether its comparisons held, the store's
    revision after it, and one result per operation of the branch taken."""

    succeeded: bool
    revision: int
    results: list[OpResult]
    header: ResponseHeader | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """`ttl` is the remaining time to live in seconds, -1 once the lease has
    expired (or never existed); `keys` the keys attached, when asked for."""

    id: int
    ttl: int
    granted_ttl: int
    keys: Sequence[bytes] = ()


# --------------------------------------------------------------------------
# Errors


class EtcdError(GazetteTrioError):
    """An etcd request failed."""


class EtcdUnavailable(EtcdError):
    """etcd could not be reached (or the in-process store refused service);
    the request may or may not have taken effect."""


Unavailable = EtcdUnavailable
"""The former name, kept importable (`aio.Unavailable` is the gRPC one)."""


class InvalidRequest(EtcdError):
    """etcd rejected the request as malformed: an empty key, duplicate keys or
    too many operations in one transaction, `ignore_lease` on a missing key."""


class Compacted(EtcdError):
    """The requested revision was compacted away.

    `compact_revision` is the store's compaction revision when known (0 when
    the server did not say, as etcd does not for a range read). A watcher
    reloads its state at a current revision and watches on from there.
    """

    def __init__(self, compact_revision: int, message: str = "") -> None:
        super().__init__(
            message or f"required revision has been compacted (compacted at {compact_revision})"
        )
        self.compact_revision = compact_revision


class FutureRevision(EtcdError):
    """The requested revision is newer than the store's."""


class LeaseNotFound(EtcdError):
    """The lease does not exist (it expired, was revoked, or never was)."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"requested lease not found ({lease_id:#x})")
        self.lease_id = lease_id


class LeaseExists(EtcdError):
    """A lease with the requested id already exists."""


class LeaseLost(EtcdError):
    """A kept-alive lease expired or was revoked; keys attached are gone."""

    def __init__(self, lease_id: int, reason: str = "") -> None:
        super().__init__(f"lease {lease_id:#x} lost" + (f": {reason}" if reason else ""))
        self.lease_id = lease_id
