"""Validation of the consumer specs the allocator reads from etcd.

Gazette's members reject a ShardSpec, ConsumerSpec or ReplicaStatus that
does not validate (go.gazette.dev/core/consumer/protocol), so ours do too,
by the same rules: token alphabets and lengths, clean paths, required
durations, sorted unique sources and labels, FAILED exactly when there are
errors. A failure raises `ValidationError` naming the field, e.g.
`Id: not a valid token (bad id!)`.

This module owns those rules and the two numbers the allocator takes from
specs: a shard's desired replication and a member's shard limit. It does not
decode etcd keys (see `model`).
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlsplit

from ..protocol import consumer as pc
from ..protocol import protocol as pb

TOKEN_SYMBOLS = "-_+/."
PATH_SYMBOLS = TOKEN_SYMBOLS + "=%"

MIN_SHARD_ID, MAX_SHARD_ID = 4, 512
MIN_JOURNAL, MAX_JOURNAL = 4, 512
MIN_ZONE, MAX_ZONE = 1, 32
MIN_SUFFIX, MAX_SUFFIX = 4, 128
MIN_LABEL, MAX_LABEL, MAX_LABEL_VALUE = 2, 64, 1024
# Labels Gazette allows at most one value of (labels.SingleValueLabels).
SINGLE_VALUE_LABELS = frozenset(
    {
        "app.gazette.dev/managed-by",
        "content-type",
        "message-type",
        "message-sub-type",
        "region",
        "tag",
        "instance",
    }
)


class ValidationError(ValueError):
    """A spec is not well-formed. `context` names the field path."""

    def __init__(self, message: str, context: tuple[str, ...] = ()) -> None:
        self.context = context
        self.detail = message
        super().__init__(f"{'.'.join(context)}: {message}" if context else message)

    def within(self, *outer: str) -> ValidationError:
        return ValidationError(self.detail, (*outer, *self.context))


def validate_token(value: str, symbols: str, min_len: int, max_len: int) -> None:
    n = len(value.encode())
    if n < min_len or n > max_len:
        raise ValidationError(f"invalid length ({n}; expected {min_len} <= length <= {max_len})")
    for ch in value:
        if not (ch.isalpha() or ch.isnumeric()) and ch not in symbols:
            raise ValidationError(f"not a valid token ({value})")


def validate_path_component(value: str, min_len: int, max_len: int) -> None:
    validate_token(value, PATH_SYMBOLS, min_len, max_len)
    if value and posixpath.normpath(value) != value:
        raise ValidationError(f"must be a clean path ({value})")
    if value.startswith("/"):
        raise ValidationError(f"cannot begin with '/' ({value})")


def validate_shard_id(shard_id: str) -> None:
    validate_token(shard_id, PATH_SYMBOLS, MIN_SHARD_ID, MAX_SHARD_ID)


def validate_journal(name: str) -> None:
    validate_path_component(name, MIN_JOURNAL, MAX_JOURNAL)


def validate_label_set(labels: pb.LabelSet | None) -> None:
    items = labels.labels if labels is not None else []
    for i, label in enumerate(items):
        try:
            validate_token(label.name, TOKEN_SYMBOLS, MIN_LABEL, MAX_LABEL)
        except ValidationError as exc:
            raise exc.within(f"Labels[{i}]", "Name") from None
        try:
            validate_token(label.value, TOKEN_SYMBOLS, 0, MAX_LABEL_VALUE)
        except ValidationError as exc:
            raise exc.within(f"Labels[{i}]", "Value") from None
        if i == 0:
            continue
        prev = items[i - 1]
        if prev.name > label.name or (prev.name == label.name and prev.value >= label.value):
            raise ValidationError(
                f"Labels not in unique, sorted order (index {i}; {label.name}={label.value})"
            )
        if prev.name == label.name and prev.value == "":
            raise ValidationError(
                f"Label has empty & non-empty values (index {i}; label {label.name})"
            )
        if prev.name == label.name and label.name in SINGLE_VALUE_LABELS:
            raise ValidationError(
                f"expected single-value Label has multiple values (index {i}; label {label.name})"
            )


def _seconds(d: object) -> float:
    return float(d.total_seconds()) if d is not None else 0.0  # type: ignore[attr-defined]


def validate_shard_spec(spec: pc.ShardSpec) -> None:
    """Raise `ValidationError` if `spec` is not a well-formed ShardSpec."""
    try:
        validate_shard_id(spec.id)
    except ValidationError as exc:
        raise exc.within("Id") from None
    if spec.recovery_log_prefix:
        try:
            validate_journal(spec.recovery_log_prefix + "/" + spec.id)
        except ValidationError as exc:
            raise exc.within("RecoveryLogPrefix") from None
        hint = spec.hint_prefix
        if not (
            hint.startswith("/") and posixpath.normpath(hint) == hint and posixpath.basename(hint)
        ):
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
        raise ValidationError("invalid MinTxnDuration (expected >= 0)")
    if _seconds(spec.max_txn_duration) <= 0:
        raise ValidationError("invalid MaxTxnDuration (expected > 0)")
    try:
        validate_label_set(spec.labels)
    except ValidationError as exc:
        raise exc.within("LabelSet") from None
    if spec.labels is not None and any(label.name == "id" for label in spec.labels.labels):
        raise ValidationError('Labels cannot include label "id"')
    for i, source in enumerate(spec.sources):
        try:
            validate_journal(source.journal)
        except ValidationError as exc:
            raise exc.within(f"Sources[{i}]", "Journal") from None
        if source.min_offset < 0:
            raise ValidationError(
                f"invalid MinOffset ({source.min_offset}; expected > 0)", (f"Sources[{i}]",)
            )
        if i and source.journal <= spec.sources[i - 1].journal:
            raise ValidationError(
                f"Sources.Journal not in unique, sorted order (index {i}; {source.journal})"
            )


def validate_process_id(zone: str, suffix: str) -> None:
    try:
        validate_token(zone, TOKEN_SYMBOLS, MIN_ZONE, MAX_ZONE)
    except ValidationError as exc:
        raise exc.within("Zone") from None
    try:
        validate_token(suffix, TOKEN_SYMBOLS, MIN_SUFFIX, MAX_SUFFIX)
    except ValidationError as exc:
        raise exc.within("Suffix") from None


def validate_endpoint(endpoint: str) -> None:
    url = urlsplit(endpoint)
    if not url.scheme:
        raise ValidationError(f"not absolute: {endpoint}")
    if not url.netloc:
        raise ValidationError(f"missing host: {endpoint}")


def validate_consumer_spec(spec: pc.ConsumerSpec) -> None:
    """Raise `ValidationError` if `spec` is not a well-formed ConsumerSpec."""
    process = spec.process_spec
    if process is None or process.id is None:
        raise ValidationError("missing ProcessSpec.Id")
    try:
        validate_process_id(process.id.zone, process.id.suffix)
    except ValidationError as exc:
        raise exc.within("Id") from None
    try:
        validate_endpoint(process.endpoint)
    except ValidationError as exc:
        raise exc.within("Endpoint") from None


def validate_replica_status(status: pc.ReplicaStatus) -> None:
    """Raise `ValidationError` if `status` is not a well-formed ReplicaStatus."""
    try:
        pc.ReplicaStatusCode(int(status.code))
    except ValueError:
        raise ValidationError(f"invalid code ({int(status.code)})", ("Code",)) from None
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
