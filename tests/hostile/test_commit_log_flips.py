"""Every single-byte change in a commit log is damage, never a torn tail.

Exhaustive over every byte of a log of acknowledged records (format 2, as
written now): inverting any one byte must make the scan report `Bad` (so the
journal is refused and nothing is cut), and the records after the damaged
one must still be found (so the write head does not move back). Only bytes
missing from the end, as a crash mid-write leaves them, are a `Torn` tail.
Format-1 logs (earlier versions) are held to the same rule wherever their
layout allows; the cases it does not are listed.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from gazette_trio.broker.server import commit_log
from gazette_trio.broker.server.commit_log import Bad, Record, Torn, encode_record
from gazette_trio.protocol import labels as L

REGISTERS = L.label_set({"author": "0x5eed"})


def v2_log() -> tuple[bytes, list[int]]:
    """Records of a spool at 100: the opening record, then appends, one of
    them changing registers. Returns the log and each record's end offset."""
    records = [encode_record(100, 100, 0, REGISTERS)]
    ends = [100]
    for i, size in enumerate([10, 2000, 7, 300]):
        begin = ends[-1]
        records.append(
            encode_record(
                begin, begin + size, zlib.crc32(b"x" * size), REGISTERS if i == 2 else None
            )
        )
        ends.append(begin + size)
    return b"".join(records), ends


def v1_record(end: int, crc: int, registers: bytes | None) -> bytes:
    regs = registers or b""
    body = struct.pack("<4sQIi", b"GTc1", end, crc, -1 if registers is None else len(regs)) + regs
    return body + struct.pack("<I", zlib.crc32(body))


def scan_bytes(tmp_path: Path, data: bytes) -> list[Record | Torn | Bad]:
    path = tmp_path / "log"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return list(commit_log.scan(fd))
    finally:
        os.close(fd)


def test_a_clean_log_scans_to_its_records(tmp_path: Path) -> None:
    data, ends = v2_log()
    found = scan_bytes(tmp_path, data)
    assert [r.end for r in found if isinstance(r, Record)] == ends
    assert all(isinstance(r, Record) for r in found)


def test_every_byte_flip_in_a_format_2_log_is_damage_and_later_records_are_found(
    tmp_path: Path,
) -> None:
    data, ends = v2_log()
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        found = scan_bytes(tmp_path, bytes(damaged))
        kinds = [type(r) for r in found]
        assert Torn not in kinds, position
        assert kinds.count(Bad) == 1, position
        highest = max(r.end for r in found if isinstance(r, Record))
        # Only a flip in the last record can hide the last end (the spool's
        # size still bounds it, see file_storage).
        last_record_at = len(data) - len(encode_record(ends[-2], ends[-1], 0, None))
        if position < last_record_at:
            assert highest == ends[-1], position


def test_a_log_cut_short_anywhere_in_its_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    data, ends = v2_log()
    last = len(encode_record(ends[-2], ends[-1], 0, None))
    for cut in range(len(data) - last + 1, len(data)):
        found = scan_bytes(tmp_path, data[:cut])
        assert isinstance(found[-1], Torn), cut
        assert [r.end for r in found if isinstance(r, Record)] == ends[:-1]


def test_zeros_where_a_crash_left_an_unwritten_block_are_a_torn_tail(tmp_path: Path) -> None:
    data, ends = v2_log()
    found = scan_bytes(tmp_path, data + bytes(4096))
    assert isinstance(found[-1], Torn)
    assert [r.end for r in found if isinstance(r, Record)] == ends


def test_format_1_logs_still_scan_and_byte_flips_in_complete_records_are_damage(
    tmp_path: Path,
) -> None:
    registers = bytes(REGISTERS)
    records = [v1_record(0, 0, registers), v1_record(10, 1, None), v1_record(30, 2, registers)]
    records.append(v1_record(45, 3, None))
    data = b"".join(records)
    assert [r.end for r in scan_bytes(tmp_path, data) if isinstance(r, Record)] == [0, 10, 30, 45]
    last_at = len(data) - len(records[-1])
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        kinds = [type(r) for r in scan_bytes(tmp_path, bytes(damaged))]
        if position - last_at == 19:
            # Format 1 has no header checksum: inverting the top byte of the
            # last record's registers length (-1) makes it reach past the end
            # of the file, which reads as a record cut short: a torn tail.
            # Format 2's header checksum closes this gap.
            assert kinds[-1] is Torn
        else:
            assert Torn not in kinds and kinds.count(Bad) == 1, position
