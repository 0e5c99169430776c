"""Upstream: broker/protocol/route_extensions_test.go (go.gazette.dev/core v0.103.0).

Route validation and equivalence, against `gazette_trio.protocol.headers`.
Every case applies (Go's `Route.Copy` is a copy of the message).
"""

from __future__ import annotations

import re

import pytest

from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.headers import routes_equivalent, validate_route
from gazette_trio.protocol.validation import ValidationError

UPSTREAM = "broker/protocol/route_extensions_test.go"
NOT_APPLICABLE: dict[str, str] = {}


def check(expect: str | None, route: pb.Route) -> None:
    if expect is None:
        validate_route(route)
        return
    with pytest.raises(ValidationError) as raised:
        validate_route(route)
    assert re.fullmatch(expect, str(raised.value)), f"{raised.value!s} !~ {expect}"


def model() -> pb.Route:
    return pb.Route(
        primary=-1,
        members=[
            pb.ProcessSpecId(zone="zone-a", suffix="member-1"),
            pb.ProcessSpecId(zone="zone-a", suffix="member-3"),
            pb.ProcessSpecId(zone="zone-b", suffix="member-2"),
        ],
        endpoints=["http://foo", "http://bar", "http://baz"],
    )


def test_validation_cases() -> None:
    rt = model()
    check(None, rt)

    rt.members[0].zone = "invalid zone"
    check(r"Members\[0\].Zone: not a valid token \(invalid zone\)", rt)
    rt.members[0].zone = "zone-a"

    rt.members[1], rt.members[2] = rt.members[2], rt.members[1]
    check(r"Members not in unique, sorted order \(index 2; {Zone.*?} <= {Zone.*?}\)", rt)
    rt.members[1], rt.members[2] = rt.members[2], rt.members[1]

    rt.primary = -2
    check(r"invalid Primary \(-2; expected -1 <= Primary < 3\)", rt)
    rt.primary = 3
    check(r"invalid Primary \(3; expected -1 <= Primary < 3\)", rt)
    rt.primary = 2

    rt.endpoints.append("http://bing")
    check(r"len\(Endpoints\) != 0, and != len\(Members\) \(4 vs 3\)", rt)

    rt.endpoints = rt.endpoints[:3]
    rt.endpoints[2] = "invalid"
    check(r"Endpoints\[2\]: not absolute: invalid", rt)
    rt.endpoints[2] = "http://baz"
    check(None, rt)


def test_equivalency_cases() -> None:
    rt = model()
    other = pb.Route.parse(bytes(rt))
    other.endpoints = []  # endpoints do not count

    assert routes_equivalent(rt, other) and routes_equivalent(other, rt)

    rt.primary = 1
    assert not routes_equivalent(rt, other) and not routes_equivalent(other, rt)

    other.primary = 1
    other.members[1].zone = "zone-aa"
    assert not routes_equivalent(rt, other) and not routes_equivalent(other, rt)

    rt.members[1].zone = "zone-aa"
    assert routes_equivalent(rt, other) and routes_equivalent(other, rt)
    assert not routes_equivalent(rt, None)
