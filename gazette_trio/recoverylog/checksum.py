"""CRC-32C, the checksum that chains recorded operations together.

Every RecordedOp carries the FSM checksum it expects to be applied to; after
applying it the FSM folds the op's encoded bytes into the running checksum.
Gazette computes this with Go's `crc32.Update(crc, crc32.MakeTable(
crc32.Castagnoli), frame)`: CRC-32 with the Castagnoli polynomial (reflected
0x82F63B78), pre- and post-inverted, continued from the previous value.
`crc32c_update` is exactly that, so checksums written by Gazette's recorders
and ours agree bit for bit.

The standard library has only the IEEE polynomial (`zlib.crc32`), so this is
table-driven Python. Ops are a few dozen bytes and write payloads are never
checksummed, so the cost is a few microseconds per op.

This module owns only the checksum; the FSM decides what is checksummed.
"""

from __future__ import annotations

_POLY = 0x82F63B78


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32c_update(crc: int, data: bytes | bytearray | memoryview) -> int:
    """Continue CRC-32C `crc` over `data` (Go's `crc32.Update` with Castagnoli)."""
    table = _TABLE
    crc ^= 0xFFFFFFFF
    for byte in bytes(data) if isinstance(data, memoryview) else data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
