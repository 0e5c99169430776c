"""The allocator's entities and where they live in etcd, exactly as Gazette.

Under a consumer root (a clean path such as `/gazette/consumers/app`):

- `{root}/items/{shard id}`: an item, value a `ShardSpec`;
- `{root}/members/{zone}#{suffix}`: a member, value a `ConsumerSpec`,
  written under the member's lease;
- `{root}/assign/{item}#{zone}#{suffix}#{slot}`: an assignment of an item to
  a member, value a `ReplicaStatus` (empty at first), under the member's
  lease. Slot 0 is the primary.

`#` is the separator because it sorts below every character tokens allow,
so key order is (item, zone, suffix, slot) order. The decoder checks what
Gazette's does (a ShardSpec's id matches its key, a ConsumerSpec's zone and
suffix match theirs, every value validates) and raises otherwise, naming the
problem; the KeySpace then skips the key with a logged error.

This module owns the key layout, the entity records and their decoding. It
does not own allocation (see `solver`, `converge`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import AllocatorError
from ..etcd import KeyValue
from ..keyspace import Decoder, KeySpace
from ..protocol import consumer as pc
from .specs import (
    ValidationError,
    desired_replication,
    item_limit,
    validate_consumer_spec,
    validate_replica_status,
    validate_shard_spec,
)

ITEMS = "/items/"
MEMBERS = "/members/"
ASSIGN = "/assign/"
SEP = "#"


class MalformedKey(AllocatorError, ValueError):
    """A key under the consumer root does not have the expected shape."""


def check_root(root: str) -> None:
    if posixpath.normpath(root) != root or root == "/":
        raise ValueError(f"consumer root must be a clean path without a trailing slash ({root!r})")


def _above_sep(value: str, what: str) -> str:
    for ch in value:
        if ch <= SEP:
            raise ValueError(
                f"{what} {value!r} contains {ch!r}: characters up to '#' are not allowed"
            )
    return value


def item_key(root: str, item_id: str) -> str:
    return root + ITEMS + _above_sep(item_id, "item id")


def member_key(root: str, zone: str, suffix: str) -> str:
    return root + MEMBERS + _above_sep(zone, "zone") + SEP + _above_sep(suffix, "suffix")


def item_assignments_prefix(root: str, item_id: str) -> str:
    return root + ASSIGN + _above_sep(item_id, "item id") + SEP


def assignment_key(root: str, item_id: str, zone: str, suffix: str, slot: int) -> str:
    return (
        item_assignments_prefix(root, item_id)
        + _above_sep(zone, "zone")
        + SEP
        + _above_sep(suffix, "suffix")
        + SEP
        + str(slot)
    )


@dataclass(frozen=True, slots=True)
class Item:
    """A shard to allocate: its id, spec, and etcd record."""

    id: str
    spec: pc.ShardSpec
    kv: KeyValue

    @property
    def replication(self) -> int:
        return desired_replication(self.spec)


@dataclass(frozen=True, slots=True)
class Member:
    """A consumer process of the group: zone, suffix, spec, and etcd record."""

    zone: str
    suffix: str
    spec: pc.ConsumerSpec
    kv: KeyValue

    @property
    def limit(self) -> int:
        return item_limit(self.spec)

    @property
    def exiting(self) -> bool:
        """The member signalled that it is leaving (`ConsumerSpec.exiting`)."""
        return bool(self.spec.exiting)

    @property
    def key(self) -> str:
        return self.kv.key.decode()


@dataclass(frozen=True, slots=True)
class Assignment:
    """An item assigned to a member in a slot (0: primary), with the status
    the member last reported for it."""

    item_id: str
    zone: str
    suffix: str
    slot: int
    status: pc.ReplicaStatus
    kv: KeyValue

    @property
    def key(self) -> str:
        return self.kv.key.decode()

    @property
    def member(self) -> tuple[str, str]:
        return (self.zone, self.suffix)


# Decoded ReplicaStatus values are shared: few distinct encodings exist and
# decoding each of tens of thousands of assignments would dominate a load.
_STATUS_CACHE: dict[bytes, pc.ReplicaStatus] = {}


def decode_status(raw: bytes) -> pc.ReplicaStatus:
    status = _STATUS_CACHE.get(raw)
    if status is None:
        status = pc.ReplicaStatus.parse(raw)
        validate_replica_status(status)
        if len(_STATUS_CACHE) < 4096:
            _STATUS_CACHE[raw] = status
    return status


def decoder(
    root: str, *, validate_item: Callable[[pc.ShardSpec], None] = validate_shard_spec
) -> Decoder:
    """The KeySpace decoder of a consumer root. `validate_item` checks each
    ShardSpec (raising to reject it); the consumer runtime may pass its own
    rules so that the allocator and Apply agree exactly."""
    check_root(root)
    items, members, assign = root + ITEMS, root + MEMBERS, root + ASSIGN

    def decode(key: str, kv: KeyValue) -> Item | Member | Assignment:
        if key.startswith(items):
            parts = key[len(items) :].split(SEP)
            if len(parts) != 1:
                raise MalformedKey("expected (id) in item key")
            spec = pc.ShardSpec.parse(kv.value)
            validate_item(spec)
            if spec.id != parts[0]:
                raise ValidationError(
                    f"ShardSpec Id doesn't match Item ID ({spec.id!r} vs {parts[0]!r})"
                )
            return Item(parts[0], spec, kv)
        if key.startswith(members):
            parts = key[len(members) :].split(SEP)
            if len(parts) != 2:
                raise MalformedKey("expected (zone, suffix) in member key")
            cspec = pc.ConsumerSpec.parse(kv.value)
            validate_consumer_spec(cspec)
            pid = cspec.process_spec.id  # type: ignore[union-attr]
            assert pid is not None
            if pid.zone != parts[0]:
                raise ValidationError(
                    f"ConsumerSpec Zone doesn't match Member Zone ({pid.zone!r} vs {parts[0]!r})"
                )
            if pid.suffix != parts[1]:
                raise ValidationError(
                    f"ConsumerSpec Suffix doesn't match Member Suffix ({pid.suffix!r} vs {parts[1]!r})"
                )
            return Member(parts[0], parts[1], cspec, kv)
        if key.startswith(assign):
            parts = key[len(assign) :].split(SEP)
            if len(parts) != 4:
                raise MalformedKey(
                    "expected (item-id, member-zone, member-suffix, slot) in assignment key"
                )
            try:
                slot = int(parts[3])
            except ValueError:
                raise MalformedKey(f"assignment slot {parts[3]!r} is not a number") from None
            if slot < 0 or str(slot) != parts[3]:
                raise MalformedKey(f"assignment slot {parts[3]!r} is not a canonical slot number")
            return Assignment(parts[0], parts[1], parts[2], slot, decode_status(kv.value), kv)
        raise MalformedKey("unexpected key prefix (not items/, members/ or assign/)")

    return decode


def keyspace(
    root: str,
    *,
    apply_delay: float = 0.0,
    validate_item: Callable[[pc.ShardSpec], None] = validate_shard_spec,
) -> KeySpace:
    """The KeySpace of a consumer group: every key under `{root}/`.

    (Gazette watches `root` itself as a prefix, which also takes in sibling
    roots such as `{root}2/...`; the trailing slash keeps groups apart.)
    """
    return KeySpace(root + "/", decoder(root, validate_item=validate_item), apply_delay=apply_delay)


def is_consistent(assignment: Assignment, all_assignments: Sequence[Assignment]) -> bool:
    """Whether a replica is ready to take over (Gazette's ShardIsConsistent).

    STANDBY and PRIMARY are; IDLE and BACKFILL are not; a FAILED replica is
    consistent only if the primary failed too (swapping one failed replica
    for another does no harm, and frees the primary to move).
    """
    code = assignment.status.code
    if code in (pc.ReplicaStatusCode.STANDBY, pc.ReplicaStatusCode.PRIMARY):
        return True
    if code == pc.ReplicaStatusCode.FAILED:
        return any(
            a.slot == 0 and a.status.code == pc.ReplicaStatusCode.FAILED for a in all_assignments
        )
    return False
