"""ShardSpec rules: validation, derived names, and spec algebra.

A ShardSpec names the journals a shard reads, its recovery log and hints,
and its transaction timing. This module gathers for the consumer the rules
Gazette applies to one (`validate`, the allocator's validator, with errors
naming the field as Gazette does, e.g. `Sources[1].Journal: not a valid
token (...)`), the names derived from it
(the recovery-log journal and the hint keys in etcd), its selector
meta-labels, and union/intersect/subtract of two specs, which shardspace
files use to factor out common defaults.

Label and token rules themselves live in `gazette_trio.protocol.validation`
and `gazette_trio.protocol.labels`.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from ..allocator.specs import validate_shard_spec
from ..protocol import consumer as pc
from ..protocol import labels as lbl
from ..protocol import protocol as pb

CONTENT_TYPE_RECOVERY_LOG = "application/x-gazette-recoverylog"


def validate(spec: pc.ShardSpec) -> None:
    """Raise `ValidationError` naming the first field that breaks Gazette's
    rules. One validator serves the allocator, the Apply RPC and configs."""
    validate_shard_spec(spec)


def recovery_log(spec: pc.ShardSpec) -> str:
    """The journal the shard's store records into, or "" if it has none."""
    return f"{spec.recovery_log_prefix}/{spec.id}" if spec.recovery_log_prefix else ""


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
