"""Upstream: message/uuid_test.go (go.gazette.dev/core v0.103.0).

Producer ids, the clock and UUID building, against
`gazette_trio.message.uuids`. Go's `time.Unix(s, ns)` is `s * 10**9 + ns`
Unix nanoseconds here; `Clock.AsTime` is `Clock.unix_ns`.

Cases that apply in part:
- TestUUIDBuilding's check against github.com/google/uuid (version, variant,
  node id, time) is made with Python's `uuid` module, the same RFC 4122
  reading.
"""

from __future__ import annotations

import uuid as stdlib_uuid

from gazette_trio.message.uuids import (
    Clock,
    build_uuid,
    clock_of,
    flags_of,
    new_producer_id,
    producer_of,
)

UPSTREAM = "message/uuid_test.go"
NOT_APPLICABLE: dict[str, str] = {}

# 100 ns intervals from 15 October 1582 to the Unix epoch (RFC 4122).
G1582_NS100 = 122192928000000000


def unix(seconds: int, nanos: int) -> int:
    return seconds * 10**9 + nanos


def test_uuid_producer_uniqueness() -> None:
    ids = {new_producer_id() for _ in range(1000)}
    assert len(ids) == 1000


def test_uuid_clock() -> None:
    clock = Clock()

    # Each tick is a new value, one microsecond (160 units) later.
    assert clock.tick() == 160
    assert clock.tick() == 320

    clock.update(unix(12, 300))

    # Precise to 100 ns.
    assert clock.value == Clock.at(unix(12, 399)).value
    assert clock.unix_ns() == unix(12, 300)
    assert clock.value < Clock.at(unix(12, 400)).value
    assert clock.value > Clock.at(unix(12, 299)).value

    # After a tick, one microsecond later.
    assert clock.value == Clock.at(unix(12, 300)).value
    clock.tick()
    assert clock.unix_ns() == unix(12, 1300)
    assert clock.value > Clock.at(unix(12, 1299)).value
    assert clock.value < Clock.at(unix(12, 1400)).value

    # An update never moves the clock back.
    clock.update(unix(11, 100))
    assert clock.unix_ns() == unix(12, 1300)

    # A later update resets the sequence bits.
    clock.update(unix(12, 5000))
    assert clock.value == Clock.at(unix(12, 5000)).value
    assert clock.unix_ns() == unix(12, 5000)


def test_uuid_building() -> None:
    producer = new_producer_id()

    # A clock using the full bit range, after two ticks.
    expect_secs, expect_nanos = 1567304621, 981273734
    clock = Clock()
    clock.update(unix(expect_secs, expect_nanos))
    clock.tick()
    clock.tick()
    expect_flags = 682  # 0b1010101010

    uuid = build_uuid(producer, clock.value, expect_flags)
    assert clock_of(uuid) == clock.value
    assert producer_of(uuid) == producer
    assert flags_of(uuid) == expect_flags

    # An RFC 4122 reader agrees.
    parsed = stdlib_uuid.UUID(bytes=uuid.bytes)
    assert parsed.version == 1
    assert parsed.variant == stdlib_uuid.RFC_4122
    assert parsed.node.to_bytes(6, "big") == producer
    assert parsed.time == clock.value >> 4

    # Its time: the nanoseconds rounded to 100 ns, plus two microseconds.
    ns100 = parsed.time - G1582_NS100
    assert ns100 // 10**7 == expect_secs
    assert (ns100 % 10**7) * 100 == 981275700
