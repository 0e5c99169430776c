"""Upstream: broker/protocol/header_extensions_test.go (go.gazette.dev/core v0.103.0).

Header and Header.Etcd validation, against `gazette_trio.protocol.headers`.
Every case applies.
"""

from __future__ import annotations

import re

import pytest

from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.headers import validate_etcd, validate_header
from gazette_trio.protocol.validation import ValidationError

UPSTREAM = "broker/protocol/header_extensions_test.go"
NOT_APPLICABLE: dict[str, str] = {}


def check(expect: str | None, fn: object, *args: object) -> None:
    assert callable(fn)
    if expect is None:
        fn(*args)
        return
    with pytest.raises(ValidationError) as raised:
        fn(*args)
    assert re.fullmatch(expect, str(raised.value)), f"{raised.value!s} !~ {expect}"


def test_etcd_validation_cases() -> None:
    model = pb.HeaderEtcd(cluster_id=0, member_id=0, revision=-42, raft_term=0)
    check(r"invalid ClusterId \(expected != 0\)", validate_etcd, model)
    model.cluster_id = 12
    check(r"invalid MemberId \(expected != 0\)", validate_etcd, model)
    model.member_id = 34
    check(r"invalid Revision \(-42; expected 0 < revision\)", validate_etcd, model)
    model.revision = 56
    check(r"invalid RaftTerm \(expected != 0\)", validate_etcd, model)
    model.raft_term = 78
    check(None, validate_etcd, model)


def test_header_validation_cases() -> None:
    model = pb.Header(
        process_id=pb.ProcessSpecId(zone="no-suffix", suffix=""),
        route=pb.Route(primary=2, members=[pb.ProcessSpecId(zone="zone", suffix="name")]),
        etcd=pb.HeaderEtcd(cluster_id=0, member_id=34, revision=56, raft_term=78),
    )
    check(r"ProcessId.Suffix: invalid length .*", validate_header, model)
    model.process_id = pb.ProcessSpecId(zone="zone", suffix="name")
    check(r"Route: invalid Primary .*", validate_header, model)
    assert model.route is not None and model.etcd is not None
    model.route.primary = 0
    check(r"Etcd: invalid ClusterId .*", validate_header, model)
    model.etcd.cluster_id = 12
    check(None, validate_header, model)

    # An empty ProcessId is allowed: clients send one.
    model.process_id = pb.ProcessSpecId()
    check(None, validate_header, model)
    model.process_id = None
    check(None, validate_header, model)
