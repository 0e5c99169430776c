"""Validation of the consumer specs the allocator reads from etcd.

Gazette's members reject a ShardSpec, ConsumerSpec or ReplicaStatus that
does not validate (go.gazette.dev/core/consumer/protocol), so ours do too,
by the same rules: token alphabets and lengths, clean paths, required
durations, sorted unique sources and labels, FAILED exactly when there are
errors. A failure raises `ValidationError` naming the field, e.g.
`Id: not a valid token (bad id!)`.

This module owns those spec rules (the one ShardSpec validator: the Apply
RPC and `consumer.shard_spec` use it too) and the two numbers the allocator
takes from specs: a shard's desired replication and a member's shard limit.
Token, path and label rules are `protocol.validation`'s and `protocol.labels`'s;
a ConsumerSpec's process id and endpoint are `protocol.headers`'s, as
Gazette's `ConsumerSpec.Validate` is its `ProcessSpec.Validate`. It does not
decode etcd keys (see `model`).
"""

from __future__ import annotations

import datetime

from ..protocol import consumer as pc
from ..protocol import labels as lbl
from ..protocol.headers import validate_process_spec
from ..protocol.validation import (
    TOKEN_SYMBOLS,
    ValidationError,
    clean_path,
    validate_journal_name,
    validate_token,
)

MIN_SHARD_ID, MAX_SHARD_ID = 4, 512

__all__ = [
    "ValidationError",
    "desired_replication",
    "item_limit",
    "validate_consumer_spec",
    "validate_replica_status",
    "validate_shard_id",
    "validate_shard_spec",
]


def validate_shard_id(shard_id: str) -> None:
    # Tokens only: Gazette allowed '=' and '%' in shard ids for a while, then
    # reverted that (consumer/protocol ShardID.Validate).
    validate_token(shard_id, TOKEN_SYMBOLS, MIN_SHARD_ID, MAX_SHARD_ID)


def _seconds(d: object) -> float:
    return float(d.total_seconds()) if d is not None else 0.0  # type: ignore[attr-defined]


def validate_shard_spec(spec: pc.ShardSpec) -> None:
    """Raise `ValidationError` naming the first field of `spec` that breaks
    Gazette's rules (`ShardSpec.Validate`)."""
    try:
        validate_shard_id(spec.id)
    except ValidationError as exc:
        raise exc.within("Id") from None
    if spec.recovery_log_prefix:
        try:
            validate_journal_name(f"{spec.recovery_log_prefix}/{spec.id}", allow_meta=False)
        except ValidationError as exc:
            raise exc.within("RecoveryLogPrefix") from None
        hint = spec.hint_prefix
        if not (hint.startswith("/") and clean_path(hint) == hint and hint.rsplit("/", 1)[-1]):
            raise ValidationError(
                f"HintPrefix is not an absolute, clean, non-directory path ({hint})"
            )
    elif spec.hint_prefix:
        raise ValidationError(
            f"invalid non-empty HintPrefix with empty RecoveryLogPrefix ({spec.hint_prefix})"
        )
    if spec.hint_backups < 0:
        raise ValidationError(f"invalid HintBackups ({spec.hint_backups}; expected >= 0)")
    if _seconds(spec.min_txn_duration) < 0:
        raise ValidationError(
            f"invalid MinTxnDuration ({_duration(spec.min_txn_duration)}; expected >= 0)"
        )
    if _seconds(spec.max_txn_duration) <= 0:
        raise ValidationError(
            f"invalid MaxTxnDuration ({_duration(spec.max_txn_duration)}; expected > 0)"
        )
    try:
        lbl.validate_label_set(spec.labels)
        lbl.validate_single_value_labels(spec.labels)
    except ValidationError as exc:
        raise exc.within("LabelSet") from None
    if lbl.values_of(spec.labels, "id"):
        raise ValidationError('Labels cannot include label "id"')
    for i, source in enumerate(spec.sources):
        try:
            validate_journal_name(source.journal)
        except ValidationError as exc:
            raise exc.within(f"Sources[{i}]", "Journal") from None
        if source.min_offset < 0:
            raise ValidationError(f"invalid MinOffset ({source.min_offset}; expected > 0)").within(
                f"Sources[{i}]"
            )
        if i and source.journal <= spec.sources[i - 1].journal:
            raise ValidationError(
                f"Sources.Journal not in unique, sorted order (index {i}; "
                f"{source.journal} <= {spec.sources[i - 1].journal})"
            )


def _duration(value: object) -> str:
    # Gazette prints a time.Duration with %d: whole nanoseconds.
    if value is None:
        return "0"
    assert isinstance(value, datetime.timedelta)
    return str(value // datetime.timedelta(microseconds=1) * 1000)


def validate_consumer_spec(spec: pc.ConsumerSpec) -> None:
    """Raise `ValidationError` if `spec` is not a well-formed ConsumerSpec."""
    process = spec.process_spec
    if process is None or process.id is None:
        raise ValidationError("missing ProcessSpec.Id")
    validate_process_spec(process)


def validate_replica_status(status: pc.ReplicaStatus) -> None:
    """Raise `ValidationError` if `status` is not a well-formed ReplicaStatus."""
    # betterproto2 enums take unknown values (as ~UNKNOWN): check membership.
    if int(status.code) not in {int(c) for c in pc.ReplicaStatusCode}:
        raise ValidationError(f"invalid code ({int(status.code)})").within("Code")
    if not status.errors and status.code == pc.ReplicaStatusCode.FAILED:
        raise ValidationError("expected non-empty Errors with Code FAILED")
    if status.errors and status.code != pc.ReplicaStatusCode.FAILED:
        raise ValidationError("expected Code FAILED with non-empty Errors")


def desired_replication(spec: pc.ShardSpec) -> int:
    """Replicas a shard wants: none when disabled, else 1 + hot standbys."""
    return 0 if spec.disable else 1 + spec.hot_standbys


def item_limit(spec: pc.ConsumerSpec) -> int:
    """Shards a member may hold (0 for a member that is exiting)."""
    return int(spec.shard_limit)
