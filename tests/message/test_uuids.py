"""Message UUIDs match Gazette's layout byte for byte, and the clock is monotonic.

The golden values are derived by hand from Gazette's layout (message/uuid.go)
and its TestUUIDBuilding fixture (time.Unix(1567304621, 981273734), two
ticks of one microsecond each, flags 682), not from our encoder:

    timestamp = 1567304621981273734 // 100 + 122192928000000000 + 2 * 10
              = 137865974219812757 = 0x1e9cc5f83fc2f95
    time_low = 0x83fc2f95, time_mid = 0xcc5f, time_hi = 0x1e9 (+ version 1)
    clock    = timestamp << 4 = 2205855587517004112
    bytes 8-9 = 0x8000 (variant) | 0 << 10 (sequence) | 682 = 0x82aa

Upstream's own cases are ported in tests/conformance/test_uuid.py; these
add the byte layout, the batch parser and input checks.
"""

from __future__ import annotations

import uuid as stdlib_uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gazette_trio.message.uuids import (
    ACK_TXN,
    CONTINUE_TXN,
    OUTSIDE_TXN,
    Clock,
    build_uuid,
    clock_from_unix_ns,
    clock_of,
    clock_to_unix_ns,
    fields_of,
    fields_of_string,
    fields_of_strings,
    flags_name,
    flags_of,
    new_producer_id,
    producer_of,
)

PRODUCER = bytes([0x01, 0x02, 0x03, 0x04, 0x05, 0x06])
GOLDEN_CLOCK = 2205855587517004112
GOLDEN_BYTES = bytes.fromhex("83fc2f95cc5f11e982aa010203040506")


def test_upstream_flag_values() -> None:
    """The transaction flags have Gazette's values."""
    assert (OUTSIDE_TXN, CONTINUE_TXN, ACK_TXN) == (0, 1, 2)
    assert flags_name(ACK_TXN) == "ACK_TXN"
    assert flags_name(0x100) == "Flags(100)"


def test_golden_uuid_bytes() -> None:
    """Gazette's TestUUIDBuilding fixture encodes to the hand-derived bytes."""
    clock = Clock.at(1567304621 * 10**9 + 981273734)
    clock.tick()
    clock.tick()
    assert clock.value == GOLDEN_CLOCK
    uuid = build_uuid(PRODUCER, clock.value, 682)
    assert uuid.bytes == GOLDEN_BYTES
    assert str(uuid) == "83fc2f95-cc5f-11e9-82aa-010203040506"


def test_golden_uuid_reads_as_rfc4122_v1() -> None:
    """A standard v1 UUID reader sees our version, variant, node and time."""
    uuid = stdlib_uuid.UUID(bytes=GOLDEN_BYTES)
    assert uuid.version == 1
    assert uuid.variant == stdlib_uuid.RFC_4122
    assert uuid.node == int.from_bytes(PRODUCER, "big")
    assert uuid.time == GOLDEN_CLOCK >> 4
    # Two ticks of one microsecond each.
    assert (uuid.time - 0x01B21DD213814000) * 100 == 1567304621981273700 + 2000


def test_fields_extracted_from_golden_uuid() -> None:
    uuid = stdlib_uuid.UUID(bytes=GOLDEN_BYTES)
    assert producer_of(uuid) == PRODUCER
    assert clock_of(uuid) == GOLDEN_CLOCK
    assert flags_of(uuid) == 682
    assert fields_of(uuid) == (PRODUCER, GOLDEN_CLOCK, 682)
    assert fields_of_string(str(uuid)) == (PRODUCER, GOLDEN_CLOCK, 682)


@given(
    producer=st.binary(min_size=6, max_size=6),
    clock=st.integers(0, 2**64 - 1),
    flags=st.integers(0, 0x3FF),
)
def test_fields_round_trip(producer: bytes, clock: int, flags: int) -> None:
    """Building then extracting returns the producer, clock and flags exactly."""
    uuid = build_uuid(producer, clock, flags)
    assert fields_of(uuid) == (producer, clock, flags)
    assert uuid.version == 1 and uuid.variant == stdlib_uuid.RFC_4122


@given(
    st.lists(
        st.tuples(
            st.binary(min_size=6, max_size=6), st.integers(0, 2**64 - 1), st.integers(0, 0x3FF)
        ),
        max_size=50,
    ),
    st.booleans(),
)
def test_batch_parse_matches_one_by_one(items: list[tuple[bytes, int, int]], upper: bool) -> None:
    """The bulk string parser agrees with parsing each UUID alone, in either case."""
    texts = [str(build_uuid(*item)) for item in items]
    if upper:
        texts = [text.upper() for text in texts]
    parsed = fields_of_strings(texts)
    assert parsed is not None
    producers, clocks, flags = parsed
    assert list(zip(producers, clocks, flags, strict=True)) == items


@pytest.mark.parametrize(
    "bad",
    [
        "not-a-uuid",
        "83fc2f81cc5f11e98aaa010203040506xxxx",  # 36 characters, no dashes
        "83fc2f81-cc5f-11e9-8aaa-01020304050g",  # not hex
        "83fc2f8-1cc5f-11e9-8aaa-010203040506",  # a dash out of place
    ],
)
def test_batch_parse_declines_non_canonical_strings(bad: str) -> None:
    """The bulk parser returns None so that the caller can name the bad UUID."""
    good = str(build_uuid(PRODUCER, GOLDEN_CLOCK, 0))
    assert fields_of_strings([good, bad]) is None


def test_batch_parse_declines_strings_that_only_add_up_to_canonical_ones() -> None:
    """A 35- and a 37-character string whose concatenation is two canonical
    UUIDs are two bad UUIDs, not two good ones; nor is one string holding
    two UUIDs and a separator."""
    first = str(build_uuid(PRODUCER, GOLDEN_CLOCK, 0))
    second = str(build_uuid(PRODUCER, GOLDEN_CLOCK + 1, 1))
    assert fields_of_strings([first[:-1], first[-1] + second]) is None
    assert fields_of_strings([first + "|" + second]) is None
    assert fields_of_strings([first + "|", second[:-1]]) is None


def test_clock_counter_bits_are_kept_by_ticks_and_equal_updates() -> None:
    """Ticks step the timestamp and leave the 4 counter bits alone; an
    update to the same timestamp keeps them, a later one resets them."""
    clock = Clock(Clock.at(12 * 10**9 + 300).value | 0x5)
    clock.tick()
    assert clock.value & 0xF == 0x5
    assert clock.unix_ns() == 12 * 10**9 + 1300
    clock.update(12 * 10**9 + 1300)
    assert clock.value & 0xF == 0x5
    clock.update(12 * 10**9 + 1400)
    assert clock.value == Clock.at(12 * 10**9 + 1400).value


def test_clock_wraps_at_64_bits() -> None:
    clock = Clock(2**64 - 1)
    assert clock.tick() == 159


def test_clock_converts_to_and_from_unix_time() -> None:
    assert (
        clock_to_unix_ns(clock_from_unix_ns(1_700_000_000_123_456_700)) == 1_700_000_000_123_456_700
    )
    assert Clock.at(1_000).unix_ns() == 1_000


def test_producer_ids_are_random_and_marked_multicast() -> None:
    ids = {new_producer_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 6 and i[0] & 0x01 for i in ids)


def test_build_rejects_out_of_range_inputs() -> None:
    with pytest.raises(ValueError, match="10 low bits"):
        build_uuid(PRODUCER, 1, 0x400)
    with pytest.raises(ValueError, match="6 bytes"):
        build_uuid(b"\x01", 1, 0)
    with pytest.raises(ValueError, match="64 bits"):
        build_uuid(PRODUCER, 2**64, 0)
