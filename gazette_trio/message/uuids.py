"""Message UUIDs: Gazette's RFC 4122 version 1 layout, and the clock behind it.

Every message Gazette publishes carries a v1 UUID that names its producer,
orders it among that producer's messages and says what it means for a
transaction. The sixteen bytes are laid out as RFC 4122 version 1, with
Gazette's own use of the clock-sequence field:

    bytes 0-3   clock bits 4..35  (the 32 low bits of the 60-bit timestamp)
    bytes 4-5   clock bits 36..51 (timestamp middle)
    bytes 6-7   version 1 in the top nibble, clock bits 52..63 (timestamp high)
    bytes 8-9   variant 0b10, a 4-bit sequence counter (clock bits 0..3),
                then 10 flag bits
    bytes 10-15 the producer id

The *clock* is one 64-bit integer: the 60-bit timestamp (100 ns units since
15 October 1582) shifted left by four, plus the 4-bit counter. `Clock.tick`
steps the timestamp by one microsecond (`TICK` = 10 units of 100 ns,
shifted past the counter: 160), as Gazette's `Clock.Tick` does, so a
producer minting more than one UUID per microsecond runs ahead of wall
time, and an `update` to the wall time catches up without going back. The flags carry transaction semantics:
`OUTSIDE_TXN` (committed on its own), `CONTINUE_TXN` (part of a transaction
that a later ACK commits), `ACK_TXN` (commits the producer's CONTINUE_TXN
messages with smaller clocks; an ACK with a clock no larger than the last
one seen rolls them back).

UUID values are the standard library's `uuid.UUID`. Reading many UUIDs at
once, as the message readers do, goes through `fields_of_strings`, which
parses a whole batch of canonical UUID strings with C-level byte operations.

This module owns the layout, the clock and the batch parser; what a message
is and where its UUID lives belong to `message.message`.
"""

from __future__ import annotations

import binascii
import os
import struct
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from uuid import UUID

from ._accel import speedups

__all__ = [
    "ACK_TXN",
    "CONTINUE_TXN",
    "OUTSIDE_TXN",
    "TICK",
    "UUID",
    "Clock",
    "ProducerID",
    "build_uuid",
    "clock_from_unix_ns",
    "clock_of",
    "clock_to_unix_ns",
    "fields_of",
    "fields_of_string",
    "fields_of_strings",
    "flags_name",
    "flags_of",
    "new_producer_id",
    "producer_id_entropy",
    "producer_of",
]

ProducerID = bytes
"""The six-byte node field of a v1 UUID: which producer minted it."""

OUTSIDE_TXN = 0x0
"""Not part of a transaction: committed as soon as it is read."""
CONTINUE_TXN = 0x1
"""Begins or continues a transaction; committed by a later ACK_TXN."""
ACK_TXN = 0x2
"""Commits the producer's earlier CONTINUE_TXN messages with smaller clocks
(or, with a clock not above the last ACK, rolls them back)."""

FLAGS_MASK = 0x3FF

# 100 ns intervals between the RFC 4122 epoch (15 October 1582) and the Unix epoch.
_G1582_NS100 = 122192928000000000
_U64 = (1 << 64) - 1

TICK = 10 << 4
"""What `Clock.tick` adds: one microsecond of timestamp, counter bits untouched."""

_NAMES = {OUTSIDE_TXN: "OUTSIDE_TXN", CONTINUE_TXN: "CONTINUE_TXN", ACK_TXN: "ACK_TXN"}


def flags_name(flags: int) -> str:
    """`OUTSIDE_TXN`, `CONTINUE_TXN`, `ACK_TXN`, or `Flags(<hex>)`."""
    return _NAMES.get(flags, f"Flags({flags:x})")


producer_id_entropy: ContextVar[Callable[[int], bytes]] = ContextVar(
    "producer_id_entropy", default=os.urandom
)
"""Where `new_producer_id` draws its random bytes (`n -> n bytes`): the
operating system's, unless a deterministic simulation sets its seeded source
in the context its tasks inherit."""


def new_producer_id() -> ProducerID:
    """A random producer id with the multicast bit set (RFC 4122: not a MAC)."""
    raw = bytearray(producer_id_entropy.get()(6))
    raw[0] |= 0x01
    return bytes(raw)


def clock_from_unix_ns(unix_ns: int) -> int:
    """The clock of a wall time, with a zero sequence counter (100 ns precision)."""
    return ((unix_ns // 100 + _G1582_NS100) << 4) & _U64


def clock_to_unix_ns(clock: int) -> int:
    """The wall time of a clock, in Unix nanoseconds (the counter is dropped)."""
    return ((clock >> 4) - _G1582_NS100) * 100


class Clock:
    """A producer's monotonic clock: wall time plus a tick counter.

    `update` moves it forward to a wall time (never backward); `tick` steps
    it by one microsecond and returns the new value, the clock of the next
    UUID.
    """

    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value

    @classmethod
    def at(cls, unix_ns: int) -> Clock:
        return cls(clock_from_unix_ns(unix_ns))

    @classmethod
    def now(cls) -> Clock:
        return cls.at(time.time_ns())

    def update(self, unix_ns: int) -> None:
        """Advance to `unix_ns` if that is later; a later clock is kept, sequence bits included."""
        proposed = clock_from_unix_ns(unix_ns)
        if proposed > self.value:
            self.value = proposed

    def tick(self) -> int:
        self.value = (self.value + TICK) & _U64
        return self.value

    def unix_ns(self) -> int:
        return clock_to_unix_ns(self.value)

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"Clock({self.value})"


def build_uuid(producer: ProducerID, clock: int, flags: int) -> UUID:
    """The v1 UUID of `producer` at `clock` with `flags`, laid out as Gazette does."""
    if len(producer) != 6:
        raise ValueError(f"producer id must be 6 bytes, not {len(producer)}")
    if not 0 <= flags <= FLAGS_MASK:
        raise ValueError(f"only 10 low bits may be used for flags (got {flags:#x})")
    if not 0 <= clock <= _U64:
        raise ValueError(f"clock must fit 64 bits (got {clock})")
    value = (
        ((clock >> 4) & 0xFFFFFFFF) << 96
        | ((clock >> 36) & 0xFFFF) << 80
        | (((clock >> 52) & 0x0FFF) | 0x1000) << 64
        | (((clock << 10) & 0x3C00) | flags | 0x8000) << 48
        | int.from_bytes(producer, "big")
    )
    return UUID(int=value)


def producer_of(uuid: UUID) -> ProducerID:
    return uuid.bytes[10:]


def clock_of(uuid: UUID) -> int:
    value = uuid.int
    return (
        ((value >> 96) & 0xFFFFFFFF) << 4
        | ((value >> 80) & 0xFFFF) << 36
        | ((value >> 64) & 0x0FFF) << 52
        | ((value >> 58) & 0xF)
    )


def flags_of(uuid: UUID) -> int:
    return (uuid.int >> 48) & FLAGS_MASK


def fields_of(uuid: UUID | None) -> tuple[ProducerID, int, int]:
    """(producer, clock, flags) of a UUID; a missing UUID is the zero UUID."""
    if uuid is None:
        return _ZERO_PRODUCER, 0, 0
    return producer_of(uuid), clock_of(uuid), flags_of(uuid)


_ZERO_PRODUCER = bytes(6)


def fields_of_string(text: str) -> tuple[ProducerID, int, int]:
    """(producer, clock, flags) of a UUID in its string form; ValueError if not one."""
    return fields_of(UUID(text))


# Batch parsing. Canonical UUID strings are 36 characters:
#   llllllll-mmmm-vhhh-SSss-nnnnnnnnnnnn
# The clock's 16 hex digits are hhh + mmmm + llllllll + one digit for the
# sequence counter, which sits in bits 2..5 of byte 8 (SS). The batch parser
# permutes character columns with extended-slice assignment (a C loop per
# column), derives the counter digit with bytes.translate, and converts all
# clocks with one unhexlify and one struct.unpack. The strings are joined
# with a "|" after each but the last: a string of the wrong length shifts
# every separator after it, so with the separator and dash columns checked
# and no "-" or "|" anywhere else (what unhexlify's length shows), each
# string is one canonical UUID; a 35- and a 37-character string cannot pass
# as two.
_HEX = b"0123456789abcdef"
_SEQ_DIGIT = bytes(_HEX[(b >> 2) & 0xF] for b in range(256))
_LOW_TWO_BITS = bytes(b & 0x3 for b in range(256))
_CLOCK_COLUMNS = (15, 16, 17, 9, 10, 11, 12, 0, 1, 2, 3, 4, 5, 6, 7)
_DASHES = (8, 13, 18, 23)
_STRIDE = 37  # 36 characters and a separator.


def fields_of_strings(
    texts: Sequence[str],
) -> tuple[Sequence[ProducerID], Sequence[int], Sequence[int]] | None:
    """Producers, clocks and flags of many canonical UUID strings at once.

    Returns None if any string is not a canonical 36-character UUID (the
    caller then parses one by one, which names the bad one).
    """
    if _c_fields_of_strings is not None:
        return _c_fields_of_strings(texts)
    return _fields_of_strings(texts)


def _fields_of_strings(
    texts: Sequence[str],
) -> tuple[Sequence[ProducerID], Sequence[int], Sequence[int]] | None:
    # The reference for `_speedups.fields_of_strings`, and what runs without it.
    n = len(texts)
    if n == 0:
        return (), (), ()
    try:
        src = "|".join(texts).encode("ascii")
    except (TypeError, UnicodeEncodeError):
        return None
    if len(src) != _STRIDE * n - 1 or src[36::_STRIDE].count(124) != n - 1:  # 124: "|"
        return None
    for column in _DASHES:
        if src[column::_STRIDE].count(45) != n:  # 45: "-"
            return None
    try:
        raw = binascii.unhexlify(src.translate(None, b"-|"))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16 * n:
        return None
    digits = bytearray(16 * n)
    for index, column in enumerate(_CLOCK_COLUMNS):
        digits[index::16] = src[column::_STRIDE]
    digits[15::16] = raw[8::16].translate(_SEQ_DIGIT)
    clocks = struct.unpack(f">{n}Q", binascii.unhexlify(digits))
    # Flags are the 10 low bits of bytes 8-9. Gazette's three flags live in
    # byte 9, and then the column is that byte of each UUID, as `bytes`.
    high_flags = raw[8::16].translate(_LOW_TWO_BITS)
    flags: Sequence[int]
    if high_flags.count(0) == n:
        flags = raw[9::16]
    else:
        flag_bytes = bytearray(2 * n)
        flag_bytes[0::2] = high_flags
        flag_bytes[1::2] = raw[9::16]
        flags = struct.unpack(f">{n}H", flag_bytes)
    producers = struct.unpack("10x6s" * n, raw)
    return producers, clocks, flags


_c_fields_of_strings: (
    Callable[[Sequence[str]], tuple[Sequence[ProducerID], Sequence[int], Sequence[int]] | None]
    | None
) = speedups.fields_of_strings if speedups is not None else None
