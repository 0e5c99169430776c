"""What the status page shows, and the protocol through which the runtime provides it.

The member's `/status` page and `/status.json` show the consumer group as
this member sees it: the members, every shard with its replicas and their
statuses, the read lag of each source journal, and recent transaction and
message rates. The runtime provides that view by implementing
`StatusSource`: `await source.snapshot()` returns a `StatusSnapshot`, an
immutable tree of plain dataclasses. `snapshot_to_json` turns it into the
JSON the page polls.

This module owns the shape of the view and its JSON. It does not compute
it: the runtime (which knows the keyspace, the assignments and each shard's
`ShardMetrics`) does, and `http` serves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..protocol import consumer as pc

__all__ = [
    "MemberStatus",
    "ReplicaStatus",
    "ShardStatus",
    "SourceStatus",
    "StatusSnapshot",
    "StatusSource",
    "snapshot_to_json",
]


@dataclass(frozen=True)
class MemberStatus:
    """A member of the consumer group."""

    zone: str
    suffix: str
    endpoint: str
    shard_limit: int
    """Most shards the member takes (its ConsumerSpec.shard_limit)."""
    assigned: int = 0
    """Replicas (primary or standby) assigned to it."""
    exiting: bool = False
    """It announced it is shutting down (shard_limit dropped to zero)."""

    @property
    def id(self) -> str:
        return f"{self.zone}/{self.suffix}"


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica of a shard: where it runs and how it is doing."""

    zone: str
    suffix: str
    code: pc.ReplicaStatusCode
    primary: bool = False
    errors: Sequence[str] = ()

    @property
    def member(self) -> str:
        return f"{self.zone}/{self.suffix}"


@dataclass(frozen=True)
class SourceStatus:
    """A source journal of a shard and how far behind its writes the shard reads."""

    journal: str
    read_through: int | None = None
    """Offset the shard has read through, if it is running on a member that knows."""
    write_head: int | None = None
    """The journal's write head, if known."""

    @property
    def lag(self) -> int | None:
        if self.read_through is None or self.write_head is None:
            return None
        return max(0, self.write_head - self.read_through)


@dataclass(frozen=True)
class ShardStatus:
    """A shard: its replicas in route order (primary first) and its progress."""

    id: str
    replicas: Sequence[ReplicaStatus] = ()
    sources: Sequence[SourceStatus] = ()
    txn_rate: float | None = None
    """Transactions committed per second, recently (known on the primary's member)."""
    message_rate: float | None = None
    """Messages consumed per second, recently."""
    disabled: bool = False
    labels: Sequence[tuple[str, str]] = ()

    @property
    def status(self) -> pc.ReplicaStatusCode:
        """Gazette's reduction: the most advanced status among the replicas."""
        codes = [r.code for r in self.replicas]
        return max(codes, default=pc.ReplicaStatusCode.IDLE)

    @property
    def errors(self) -> list[str]:
        return [e for r in self.replicas for e in r.errors]

    @property
    def lag(self) -> int | None:
        """Total lag over sources whose lag is known (None if none is)."""
        lags = [s.lag for s in self.sources if s.lag is not None]
        return sum(lags) if lags else None


@dataclass(frozen=True)
class StatusSnapshot:
    """The consumer group as one member sees it, at one moment."""

    group: str
    """The group's name (or etcd prefix)."""
    member: MemberStatus
    """The member serving this page."""
    members: Sequence[MemberStatus] = ()
    shards: Sequence[ShardStatus] = ()
    taken_at: float = 0.0
    """Unix time of the snapshot."""
    etcd_revision: int = 0
    notes: Sequence[str] = field(default_factory=tuple)
    """Anything the operator should see at the top of the page (e.g. "exiting")."""


class StatusSource(Protocol):
    """Implemented by the runtime: the current view for /status and /status.json."""

    async def snapshot(self) -> StatusSnapshot:
        """The view as of now. Called per request; keep it cheap (no remote calls)."""
        ...


def _member_json(m: MemberStatus) -> dict[str, Any]:
    return {
        "id": m.id,
        "zone": m.zone,
        "suffix": m.suffix,
        "endpoint": m.endpoint,
        "shard_limit": m.shard_limit,
        "assigned": m.assigned,
        "exiting": m.exiting,
    }


def _shard_json(s: ShardStatus) -> dict[str, Any]:
    return {
        "id": s.id,
        "status": s.status.name,
        "disabled": s.disabled,
        "replicas": [
            {
                "member": r.member,
                "zone": r.zone,
                "suffix": r.suffix,
                "status": r.code.name,
                "primary": r.primary,
                "errors": list(r.errors),
            }
            for r in s.replicas
        ],
        "sources": [
            {
                "journal": src.journal,
                "read_through": src.read_through,
                "write_head": src.write_head,
                "lag": src.lag,
            }
            for src in s.sources
        ],
        "lag": s.lag,
        "txn_rate": s.txn_rate,
        "message_rate": s.message_rate,
        "errors": s.errors,
        "labels": [{"name": n, "value": v} for n, v in s.labels],
    }


def snapshot_to_json(snapshot: StatusSnapshot) -> dict[str, Any]:
    """The JSON document of `/status.json` (and of the page's first render)."""
    shards = [_shard_json(s) for s in snapshot.shards]
    counts: dict[str, int] = {}
    for shard in shards:
        counts[shard["status"]] = counts.get(shard["status"], 0) + 1
    return {
        "group": snapshot.group,
        "member": _member_json(snapshot.member),
        "members": [_member_json(m) for m in snapshot.members],
        "shards": shards,
        "summary": {"shards": len(shards), "members": len(snapshot.members), "by_status": counts},
        "taken_at": snapshot.taken_at,
        "etcd_revision": snapshot.etcd_revision,
        "notes": list(snapshot.notes),
    }
