"""Upstream: consumer/protocol/shard_spec_extensions_test.go (go.gazette.dev/core v0.103.0).

Shard ids, ShardSpec, ConsumerSpec and ReplicaStatus validation, desired
replication, meta-labels, hint keys, the spec algebra and status
reduction, against `gazette_trio.consumer.shard_spec` and
`gazette_trio.allocator.specs`.

TestT is not a case: it is gocheck's entry point, running the package's suites.

Cases that apply in part:
- TestShardSpecValidationCases, `MinTxnDuration = -1`: Gazette's durations
  are nanoseconds; ours are `datetime.timedelta`s (microseconds, as
  betterproto2 decodes `google.protobuf.Duration`). The case uses -1µs,
  which Gazette prints as -1000.
- TestShardSpecRoutines, `MaxHotStandbys`: Gazette's global bound is a
  package variable the test overrides; ours is the `max_hot_standbys`
  argument of `desired_replication`.

Besides the upstream cases, `test_a_failed_status_error_is_cut_at_2048_characters`
holds our FAILED status to consumer/shard.go's `MAX_ETCD_ERR_LEN` rule, which
upstream tests in shard_test.go (not ported: it drives a whole shard).
"""

from __future__ import annotations

import datetime
import re

import pytest

from gazette_trio.allocator.specs import (
    item_limit,
    validate_consumer_spec,
    validate_replica_status,
)
from gazette_trio.consumer import shard_spec
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import labels as L
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.validation import ValidationError

UPSTREAM = "consumer/protocol/shard_spec_extensions_test.go"
NOT_APPLICABLE = {"TestT": "gocheck's entry point that runs the package's suites, not a case"}

Code = pc.ReplicaStatusCode


def check(expect: str | None, fn: object, *args: object) -> None:
    assert callable(fn)
    if expect is None:
        fn(*args)
        return
    with pytest.raises(ValidationError) as raised:
        fn(*args)
    assert re.fullmatch(expect, str(raised.value)), f"{raised.value!s} !~ {expect}"


@pytest.mark.parametrize(
    ("shard_id", "expect"),
    [
        ("a-valid-shard", None),
        ("not-$%|-a-token", r"not a valid token \(.*\)"),
        ("", r"invalid length \(0; expected 4 <= .*"),
        ("zz", r"invalid length \(2; expected 4 <= .*"),
    ],
)
def test_shard_validation_cases(shard_id: str, expect: str | None) -> None:
    check(expect, shard_spec.validate_shard_id, shard_id)


@pytest.mark.parametrize("shard_id", ["with=equals", "with%25percent"])
def test_shard_validation_cases_refuse_path_only_runes(shard_id: str) -> None:
    # Upstream's ShardID.Validate takes tokens, not paths: '=' and '%' are refused.
    check(r"not a valid token \(.*\)", shard_spec.validate_shard_id, shard_id)


def test_shard_spec_validation_cases() -> None:
    spec = pc.ShardSpec(
        id="bad id",
        sources=[
            pc.ShardSpecSource(journal="journal 2"),
            pc.ShardSpecSource(journal="journal/1", min_offset=-1),
        ],
        recovery_log_prefix="bad prefix",
        hint_prefix="not empty",
        hint_backups=-1,
        max_txn_duration=datetime.timedelta(0),
        min_txn_duration=datetime.timedelta(microseconds=-1),
        labels=pb.LabelSet(labels=[pb.Label(name="bad label", value="value")]),
    )
    v = shard_spec.validate

    check(r"Id: not a valid token \(bad id\)", v, spec)
    spec.id = "a-shard-id"
    check(r"RecoveryLogPrefix: not a valid token \(bad prefix/a-shard-id\)", v, spec)
    spec.recovery_log_prefix = ""
    check(r"invalid non-empty HintPrefix with empty RecoveryLogPrefix \(not empty\)", v, spec)
    spec.hint_prefix, spec.recovery_log_prefix = "", "recovery/logs"
    check(r"HintPrefix is not an absolute, clean, non-directory path \(\)", v, spec)
    spec.hint_prefix = "relative/path"
    check(r"HintPrefix is not an absolute, clean, non-directory path \(relative/path\)", v, spec)
    spec.hint_prefix = "/rooted/dir/"
    check(r"HintPrefix is not an absolute, clean, non-directory path \(/rooted/dir/\)", v, spec)
    spec.hint_prefix = "/rooted//path"  # not clean
    check(r"HintPrefix is not an absolute, clean, non-directory path \(/rooted//path\)", v, spec)
    spec.hint_prefix = "/rooted/path"
    check(r"invalid HintBackups \(-1; expected >= 0\)", v, spec)
    spec.hint_backups = 2
    check(r"invalid MinTxnDuration \(-1000; expected >= 0\)", v, spec)
    spec.min_txn_duration = datetime.timedelta(0)
    check(r"invalid MaxTxnDuration \(0; expected > 0\)", v, spec)
    spec.max_txn_duration = datetime.timedelta(microseconds=1)
    check(r"LabelSet.Labels\[0\].Name: not a valid token \(bad label\)", v, spec)
    spec.labels = L.label_set([(L.INSTANCE, "a"), (L.INSTANCE, "b")])
    check(
        r"LabelSet: expected single-value Label has multiple values \(index 1; label app.gazette.dev/instance value b\)",
        v,
        spec,
    )
    spec.labels = L.label_set({"id": "an-id"})
    check(r'Labels cannot include label "id"', v, spec)
    spec.labels = L.label_set({"id": ""})  # refused even when empty
    check(r'Labels cannot include label "id"', v, spec)
    spec.labels = L.label_set({L.INSTANCE: "an-instance", L.MANAGED_BY: "a-tool"})

    check(r"Sources\[0\].Journal: not a valid token \(journal 2\)", v, spec)
    spec.sources[0].journal = "journal/2"
    check(r"Sources\[1\]: invalid MinOffset \(-1; expected > 0\)", v, spec)
    spec.sources[1].min_offset = 1024
    check(
        r"Sources.Journal not in unique, sorted order \(index 1; journal/1 <= journal/2\)", v, spec
    )
    spec.sources[0], spec.sources[1] = spec.sources[1], spec.sources[0]
    check(None, v, spec)


def test_shard_spec_routines() -> None:
    spec = pc.ShardSpec(
        id="shard-id",
        hot_standbys=4,
        labels=L.label_set({"hello": "world"}),
        disable=False,
        hint_prefix="/a/path",
        hint_backups=2,
    )
    assert shard_spec.desired_replication(spec) == 5
    # The global bound on hot standbys caps it.
    assert shard_spec.desired_replication(spec, max_hot_standbys=2) == 3
    spec.disable = True
    assert shard_spec.desired_replication(spec, max_hot_standbys=2) == 0
    spec.disable, spec.hot_standbys = False, 0
    assert shard_spec.desired_replication(spec, max_hot_standbys=2) == 1

    assert L.union(shard_spec.meta_labels(spec), spec.labels) == L.label_set(
        {"id": "shard-id", "hello": "world"}
    )
    assert shard_spec.hint_primary_key(spec) == "/a/path/shard-id.primary"
    assert shard_spec.hint_backup_keys(spec) == [
        "/a/path/shard-id.backup.0",
        "/a/path/shard-id.backup.1",
    ]


def set_model() -> pc.ShardSpec:
    return pc.ShardSpec(
        sources=[pc.ShardSpecSource(journal="a/source", min_offset=1234)],
        recovery_log_prefix="log/prefix",
        hint_prefix="/hints/prefix",
        hint_backups=3,
        max_txn_duration=datetime.timedelta(seconds=5),
        min_txn_duration=datetime.timedelta(seconds=1),
        disable=True,
        hot_standbys=2,
        labels=L.label_set({"aaa": "val", "bbb": "val", "ccc": "val"}),
        disable_wait_for_ack=True,
        ring_buffer_size=123,
        read_channel_size=456,
    )


def set_other() -> pc.ShardSpec:
    return pc.ShardSpec(
        sources=[pc.ShardSpecSource(journal="other/source", min_offset=5678)],
        recovery_log_prefix="other/log/prefix",
        hint_prefix="/hints/other/prefix",
        hint_backups=2,
        max_txn_duration=datetime.timedelta(hours=1),
        min_txn_duration=datetime.timedelta(minutes=1),
        disable=False,
        hot_standbys=1,
        labels=L.label_set({"aaa": "other", "bbb": "other", "ccc": "other"}),
        disable_wait_for_ack=False,
        ring_buffer_size=456,
        read_channel_size=789,
    )


def normalized(spec: pc.ShardSpec) -> pc.ShardSpec:
    """Gazette's LabelSet is never nil, ours may be unset: an empty one and
    an unset one are the same spec."""
    out = pc.ShardSpec.parse(bytes(spec))
    if out.labels is not None and not out.labels.labels:
        out.labels = None
    return out


def test_set_operations() -> None:
    model, other, zero = set_model(), set_other(), pc.ShardSpec()

    def eq(a: pc.ShardSpec, b: pc.ShardSpec) -> bool:
        return normalized(a) == normalized(b)

    assert eq(shard_spec.union(zero, model), model)
    assert eq(shard_spec.union(model, zero), model)

    other.disable = True  # Disable == true dominates a union
    other.disable_wait_for_ack = True
    assert eq(shard_spec.union(other, model), other)
    other.disable = False
    other.disable_wait_for_ack = False
    assert eq(shard_spec.union(model, other), model)

    assert eq(shard_spec.intersect(model, model), model)
    assert eq(shard_spec.intersect(model, zero), zero)
    assert eq(shard_spec.intersect(zero, model), zero)
    assert eq(shard_spec.intersect(other, model), zero)
    assert eq(shard_spec.intersect(model, other), zero)

    assert eq(shard_spec.subtract(model, model), zero)
    assert eq(shard_spec.subtract(model, zero), model)
    assert eq(shard_spec.subtract(zero, model), zero)
    assert eq(shard_spec.subtract(other, model), other)
    assert eq(shard_spec.subtract(model, other), model)


def test_consumer_spec_validation_cases() -> None:
    spec = pc.ConsumerSpec(
        process_spec=pb.ProcessSpec(
            id=pb.ProcessSpecId(zone="not valid", suffix="name"), endpoint="http://foo"
        ),
        shard_limit=5,
    )
    check(r"Id.Zone: not a valid token \(not valid\)", validate_consumer_spec, spec)
    assert spec.process_spec is not None and spec.process_spec.id is not None
    spec.process_spec.id.zone = "zone"
    check(None, validate_consumer_spec, spec)
    assert item_limit(spec) == 5


def test_replica_status_validation_cases() -> None:
    status = pc.ReplicaStatus(code=-1)
    check(r"Code: invalid code \(-1\)", validate_replica_status, status)
    status.code = Code.STANDBY
    check(None, validate_replica_status, status)

    status.errors = ["error!"]
    check(r"expected Code FAILED with non-empty Errors", validate_replica_status, status)
    status.errors, status.code = [], Code.FAILED
    check(r"expected non-empty Errors with Code FAILED", validate_replica_status, status)
    status.errors = ["error!"]
    check(None, validate_replica_status, status)


def test_replica_status_reduction() -> None:
    status = pc.ReplicaStatus(code=Code.IDLE)

    # The code only grows, by reducing with a larger one.
    shard_spec.reduce_status(status, pc.ReplicaStatus(code=Code.STANDBY))
    assert status == pc.ReplicaStatus(code=Code.STANDBY)
    shard_spec.reduce_status(status, pc.ReplicaStatus(code=Code.BACKFILL))
    assert status == pc.ReplicaStatus(code=Code.STANDBY)

    # Errors accumulate.
    shard_spec.reduce_status(status, pc.ReplicaStatus(code=Code.FAILED, errors=["err-1"]))
    shard_spec.reduce_status(status, pc.ReplicaStatus(code=Code.FAILED, errors=["err-2"]))
    assert status == pc.ReplicaStatus(code=Code.FAILED, errors=["err-1", "err-2"])


def test_a_failed_status_error_is_cut_at_2048_characters() -> None:
    # consumer/shard_test.go: an error of MAX_ETCD_ERR_LEN+1 runes is cut
    # to MAX_ETCD_ERR_LEN and marked.
    long = "completeRecovery: app.NewStore: " + "e" * (shard_spec.MAX_ETCD_ERR_LEN + 1)
    status = shard_spec.failed_status(long)
    assert status.code == Code.FAILED
    assert status.errors == [long[: shard_spec.MAX_ETCD_ERR_LEN] + " ...[truncated]"]
    validate_replica_status(status)
    # Characters, not bytes; and a short error is left alone.
    wide = "é" * shard_spec.MAX_ETCD_ERR_LEN
    assert shard_spec.failed_status(wide).errors == [wide]
    assert shard_spec.failed_status("boom").errors == ["boom"]
