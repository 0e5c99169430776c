"""ShardSpec rules: validation, derived names, spec algebra, and replica status.

A ShardSpec names the journals a shard reads, its recovery log and hints,
and its transaction timing. This module gathers for the consumer the rules
Gazette applies to one (`validate`, the allocator's validator, with errors
naming the field as Gazette does, e.g. `Sources[1].Journal: not a valid
token (...)`), the names derived from it
(the recovery-log journal and the hint keys in etcd, and the specs of the
recovery logs a set of shards needs), its selector
meta-labels, its desired replication, and union/intersect/subtract of two
specs, which shardspace files use to factor out common defaults.

It also owns the ReplicaStatus a replica advertises in etcd: folding the
statuses of a shard's replicas into one (`reduce_status`), and the FAILED
status of a failed primary, whose error is cut to `MAX_ETCD_ERR_LEN`
characters as Gazette cuts it (`failed_status`).

Label and token rules themselves live in `gazette_trio.protocol.validation`
and `gazette_trio.protocol.labels`.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

from ..allocator.specs import desired_replication as _desired_replication
from ..allocator.specs import validate_shard_id, validate_shard_spec
from ..broker.journal_spec import new_journal_spec
from ..protocol import consumer as pc
from ..protocol import labels as lbl
from ..protocol import protocol as pb

CONTENT_TYPE_RECOVERY_LOG = "application/x-gazette-recoverylog"

MAX_ETCD_ERR_LEN = 2048
"""Characters of a failure's error a ReplicaStatus keeps: etcd values stay small."""

TRUNCATED = " ...[truncated]"

__all__ = [
    "MAX_ETCD_ERR_LEN",
    "desired_replication",
    "failed_status",
    "hint_backup_keys",
    "hint_primary_key",
    "intersect",
    "meta_labels",
    "recovery_log",
    "reduce_status",
    "subtract",
    "truncate_error",
    "union",
    "validate",
    "validate_shard_id",
]


def validate(spec: pc.ShardSpec) -> None:
    """Raise `ValidationError` naming the first field that breaks Gazette's
    rules. One validator serves the allocator, the Apply RPC and configs."""
    validate_shard_spec(spec)


def desired_replication(spec: pc.ShardSpec, max_hot_standbys: int | None = None) -> int:
    """Replicas the shard wants: none when disabled, else a primary and its
    hot standbys, at most `max_hot_standbys` of them if given (Gazette's
    `MaxHotStandbys` bound)."""
    if spec.disable or max_hot_standbys is None:
        return _desired_replication(spec)
    return 1 + min(spec.hot_standbys, max_hot_standbys)


def reduce_status(into: pc.ReplicaStatus, other: pc.ReplicaStatus) -> pc.ReplicaStatus:
    """Fold `other` into `into` (in place, returned): the larger code wins
    and errors accumulate, as Gazette's `ReplicaStatus.Reduce`."""
    if int(other.code) > int(into.code):
        into.code = other.code
    into.errors = [*into.errors, *other.errors]
    return into


def truncate_error(message: str) -> str:
    """`message` cut to `MAX_ETCD_ERR_LEN` characters, marked as cut."""
    if len(message) > MAX_ETCD_ERR_LEN:
        return message[:MAX_ETCD_ERR_LEN] + TRUNCATED
    return message


def failed_status(message: str) -> pc.ReplicaStatus:
    """The FAILED status a primary advertises when it fails with `message`."""
    return pc.ReplicaStatus(code=pc.ReplicaStatusCode.FAILED, errors=[truncate_error(message)])


def recovery_log(spec: pc.ShardSpec) -> str:
    """The journal the shard's store records into, or "" if it has none."""
    return f"{spec.recovery_log_prefix}/{spec.id}" if spec.recovery_log_prefix else ""


def recovery_log_specs(
    journals: Iterable[pb.JournalSpec], shards: Iterable[pc.ShardSpec]
) -> list[pb.JournalSpec]:
    """Specs of the shards' recovery logs that `journals` does not declare."""
    names = {j.name for j in journals}
    out = []
    for spec in shards:
        log_name = recovery_log(spec)
        if log_name and log_name not in names:
            out.append(new_journal_spec(log_name, content_type=CONTENT_TYPE_RECOVERY_LOG))
            names.add(log_name)
    return out


def hint_primary_key(spec: pc.ShardSpec) -> str:
    """The etcd key the primary writes its recorded FSMHints to."""
    return f"{spec.hint_prefix}/{spec.id}.primary"


def hint_backup_keys(spec: pc.ShardSpec) -> list[str]:
    """Etcd keys of verified backup hints, newest first."""
    return [f"{spec.hint_prefix}/{spec.id}.backup.{i}" for i in range(spec.hint_backups)]


def meta_labels(spec: pc.ShardSpec) -> pb.LabelSet:
    """Labels a selector may match besides the spec's own: `id`."""
    return lbl.label_set({"id": spec.id})


# Spec algebra, field by field, as Gazette's Union/Intersect/SubtractShardSpecs.

_SCALARS = [
    "recovery_log_prefix",
    "hint_prefix",
    "hint_backups",
    "max_txn_duration",
    "min_txn_duration",
    "disable",
    "hot_standbys",
    "disable_wait_for_ack",
    "ring_buffer_size",
    "read_channel_size",
]


def _zero(value: Any) -> bool:
    return (
        value is None
        or value == 0
        or value == ""
        or value is False
        or value == datetime.timedelta(0)
    )


def _sources_eq(a: pc.ShardSpec, b: pc.ShardSpec) -> bool:
    return [(s.journal, s.min_offset) for s in a.sources] == [
        (s.journal, s.min_offset) for s in b.sources
    ]


def _copy(spec: pc.ShardSpec) -> pc.ShardSpec:
    return pc.ShardSpec.parse(bytes(spec))


def union(a: pc.ShardSpec, b: pc.ShardSpec) -> pc.ShardSpec:
    """Every non-zero field of `a`, and `b`'s where `a`'s is zero."""
    out = _copy(a)
    if not out.sources:
        out.sources = list(_copy(b).sources)
    for name in _SCALARS:
        if _zero(getattr(out, name)):
            setattr(out, name, getattr(b, name))
    out.labels = lbl.union(a.labels, b.labels)
    return out


def intersect(a: pc.ShardSpec, b: pc.ShardSpec) -> pc.ShardSpec:
    """Fields whose values `a` and `b` share; zero elsewhere."""
    out = _copy(a)
    out.id = a.id
    if not _sources_eq(a, b):
        out.sources = []
    for name in _SCALARS:
        if getattr(a, name) != getattr(b, name):
            setattr(out, name, _zero_of(name))
    out.labels = lbl.intersect(a.labels, b.labels)
    return out


def subtract(a: pc.ShardSpec, b: pc.ShardSpec) -> pc.ShardSpec:
    """`a` with every field that `b` matches zeroed."""
    out = _copy(a)
    if _sources_eq(a, b):
        out.sources = []
    for name in _SCALARS:
        if getattr(a, name) == getattr(b, name):
            setattr(out, name, _zero_of(name))
    out.labels = lbl.subtract(a.labels, b.labels)
    return out


def _zero_of(name: str) -> Any:
    default = {f.name: f for f in dataclasses.fields(pc.ShardSpec)}[name]
    return (
        default.default_factory()
        if default.default_factory is not dataclasses.MISSING
        else default.default
    )
