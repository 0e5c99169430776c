"""Upstream: broker/protocol/broker_spec_extensions_test.go (go.gazette.dev/core v0.103.0).

Process ids and BrokerSpec validation, against `gazette_trio.protocol.headers`
(the ids and specs that routes and headers name). Every case applies;
Go's `ItemLimit` is the spec's `journal_limit`.
"""

from __future__ import annotations

import re

import pytest

from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.headers import (
    MAX_BROKER_JOURNAL_LIMIT,
    validate_broker_spec,
    validate_process_id,
)
from gazette_trio.protocol.validation import ValidationError

UPSTREAM = "broker/protocol/broker_spec_extensions_test.go"
NOT_APPLICABLE: dict[str, str] = {}


def check(expect: str | None, fn: object, *args: object) -> None:
    assert callable(fn)
    if expect is None:
        fn(*args)
        return
    with pytest.raises(ValidationError) as raised:
        fn(*args)
    assert re.fullmatch(expect, str(raised.value)), f"{raised.value!s} !~ {expect}"


@pytest.mark.parametrize(
    ("zone", "suffix", "expect"),
    [
        ("a-zone", "a-name", None),
        ("", "a-name", r"Zone: invalid length .*"),
        ("&*", "a-name", r"Zone: not a valid token .*"),
        ("a-very-very-very-very-looong-zone", "a-name", r"Zone: invalid length .*"),
        ("a-zone", "ae", r"Suffix: invalid length .*"),
        ("a-zone", "&*($", r"Suffix: not a valid token .*"),
    ],
)
def test_id_validation_cases(zone: str, suffix: str, expect: str | None) -> None:
    check(expect, validate_process_id, pb.ProcessSpecId(zone=zone, suffix=suffix))


def test_spec_validation_cases() -> None:
    model = pb.BrokerSpec(
        process_spec=pb.ProcessSpec(
            id=pb.ProcessSpecId(zone="a-zone", suffix="a-name"), endpoint="http://foo"
        ),
        journal_limit=5,
    )
    check(None, validate_broker_spec, model)
    assert model.journal_limit == 5

    assert model.process_spec is not None and model.process_spec.id is not None
    model.process_spec.id.zone = ""
    check(r"Id.Zone: invalid length .*", validate_broker_spec, model)

    model.process_spec.id.zone = "a-zone"
    model.process_spec.endpoint = "invalid"
    check(r"Endpoint: not absolute: .*", validate_broker_spec, model)

    model.process_spec.endpoint = "http://foo"
    model.journal_limit = MAX_BROKER_JOURNAL_LIMIT + 1
    check(
        r"invalid JournalLimit \(\d+; expected 0 <= JournalLimit <= \d+\)",
        validate_broker_spec,
        model,
    )
