"""The commit log of a spool: one record per acknowledged append, and its checks.

Every spool `<begin>.spool` has a commit log `<begin>.commits`. Its first
record opens the spool (`begin == end`, carrying the registers the spool
starts with); each later record vouches for one append: the offsets it
covers, the CRC-32 of its bytes, and the registers if the append changed
them. A record is written (and synced) only after the bytes it covers are
synced, and the append is acknowledged only after the record is synced.

Record format 2 (written now), little-endian:

    "GTc2" | begin u64 | end u64 | content crc32 u32 | registers length i32
           | crc32 of the 28 bytes before it
    registers (a serialized LabelSet; absent if the length is -1)
    crc32 of the whole record before it

The header has its own checksum so that its length field can be trusted
before the rest of the record is read: a record that is checksummed-whole but
cut short by the end of the file is a *torn tail* (a crash while it was being
written, so never acknowledged), while a record whose bytes are all there but
do not check out is *damage* to something that may have been acknowledged.

Record format 1 (written by earlier versions, still read):

    "GTc1" | end u64 | content crc32 u32 | registers length i32 | registers
           | crc32 of the record before it

It has no header checksum, so a format-1 record cut short is only taken for a
torn tail if no valid record can be found after it.

This module owns the record format and the scan of a log, in bounded memory
(a sliding window over the file, never the whole file). It neither opens
spools nor decides what to do about damage: `file_storage.py` does.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from ...protocol import protocol as pb

MAGIC_V1 = b"GTc1"
MAGIC_V2 = b"GTc2"
_MAGIC_PREFIX = b"GTc"
_HEAD_V1 = struct.Struct("<4sQIi")  # magic, end, content crc, registers length
_HEAD_V2 = struct.Struct("<4sQQIiI")  # magic, begin, end, content crc, registers length, head crc
_HEAD_V2_FIELDS = struct.Struct("<4sQQIi")  # what the head crc covers
_CRC = struct.Struct("<I")
MAX_REGISTERS = 1 << 24
"""Registers longer than this are taken as a damaged length field, not read."""

_WINDOW = 1 << 20


def encode_record(begin: int, end: int, crc: int, registers: pb.LabelSet | None) -> bytes:
    """A format-2 record for the append [begin, end) whose bytes have CRC-32 `crc`."""
    regs = b"" if registers is None else bytes(registers)
    head = _HEAD_V2_FIELDS.pack(MAGIC_V2, begin, end, crc, -1 if registers is None else len(regs))
    body = head + _CRC.pack(zlib.crc32(head)) + regs
    return body + _CRC.pack(zlib.crc32(body))


@dataclass(slots=True)
class Record:
    """One decoded record; `begin` is None for format 1 (it is the previous end)."""

    position: int
    """Where it starts in the log."""
    stop: int
    """Where it ends in the log (the next record's position)."""
    begin: int | None
    end: int
    crc: int
    registers: pb.LabelSet | None


@dataclass(slots=True)
class Torn:
    """The log ends inside a record that was never completely written."""

    position: int


@dataclass(slots=True)
class Bad:
    """Bytes at `position` are there but are not a valid record."""

    position: int
    reason: str


class _Window:
    """Reads of a file at increasing positions through one bounded buffer."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self._base = 0
        self._buf = b""

    def get(self, position: int, n: int) -> bytes:
        """Up to `n` bytes at `position` (fewer only at the end of the file)."""
        start = position - self._base
        end_of_buf = self._base + len(self._buf)
        if start < 0 or (start + n > len(self._buf) and end_of_buf < self.size):
            self._base = position
            self._buf = os.pread(self.fd, max(n, _WINDOW), position)
            start = 0
        return self._buf[start : start + n]

    def find(self, needle: bytes, position: int) -> int:
        """The first position >= `position` where `needle` starts, or -1."""
        while position < self.size:
            chunk = self.get(position, _WINDOW + len(needle))
            i = chunk.find(needle)
            if i >= 0:
                return position + i
            if len(chunk) < len(needle):
                return -1
            position += len(chunk) - len(needle) + 1
        return -1


def _decode(window: _Window, position: int) -> Record | Torn | Bad:
    remaining = window.size - position
    magic = window.get(position, 4)
    if magic == MAGIC_V2 or (remaining < 4 and MAGIC_V2.startswith(magic)):
        return _decode_v2(window, position, remaining)
    if magic == MAGIC_V1:
        return _decode_v1(window, position, remaining)
    if remaining < 4 and MAGIC_V1.startswith(magic):
        return Torn(position)
    return Bad(position, f"no record starts here (found {bytes(magic)!r})")


def _registers(data: bytes, position: int) -> pb.LabelSet | Bad:
    try:
        return pb.LabelSet.parse(data)
    except Exception:
        return Bad(position, "its registers do not parse")


def _decode_v2(window: _Window, position: int, remaining: int) -> Record | Torn | Bad:
    if remaining < _HEAD_V2.size:
        return Torn(position)
    head = window.get(position, _HEAD_V2.size)
    _, begin, end, crc, reg_len, head_crc = _HEAD_V2.unpack(head)
    if head_crc != zlib.crc32(head[: -_CRC.size]):
        return Bad(position, "its header does not match its checksum")
    if reg_len < -1 or reg_len > MAX_REGISTERS or end < begin:
        return Bad(position, f"its header is inconsistent (begin {begin}, end {end})")
    size = _HEAD_V2.size + max(reg_len, 0) + _CRC.size
    if size > remaining:
        return Torn(position)
    data = window.get(position, size)
    if _CRC.unpack_from(data, size - _CRC.size)[0] != zlib.crc32(data[: -_CRC.size]):
        return Bad(position, "it does not match its checksum")
    registers = None
    if reg_len >= 0:
        parsed = _registers(data[_HEAD_V2.size : size - _CRC.size], position)
        if isinstance(parsed, Bad):
            return parsed
        registers = parsed
    return Record(position, position + size, begin, end, crc, registers)


def _decode_v1(window: _Window, position: int, remaining: int) -> Record | Torn | Bad:
    if remaining < _HEAD_V1.size:
        return Torn(position)
    _, end, crc, reg_len = _HEAD_V1.unpack(window.get(position, _HEAD_V1.size))
    if reg_len < -1 or reg_len > MAX_REGISTERS:
        return Bad(position, f"its registers length ({reg_len}) is impossible")
    size = _HEAD_V1.size + max(reg_len, 0) + _CRC.size
    if size > remaining:
        return Torn(position)
    data = window.get(position, size)
    if _CRC.unpack_from(data, size - _CRC.size)[0] != zlib.crc32(data[: -_CRC.size]):
        return Bad(position, "it does not match its checksum")
    registers = None
    if reg_len >= 0:
        parsed = _registers(data[_HEAD_V1.size : size - _CRC.size], position)
        if isinstance(parsed, Bad):
            return parsed
        registers = parsed
    return Record(position, position + size, None, end, crc, registers)


def _all_zero(window: _Window, position: int) -> bool:
    while position < window.size:
        chunk = window.get(position, _WINDOW)
        if chunk.count(0) != len(chunk):
            return False
        position += len(chunk)
    return True


def _resync(window: _Window, position: int) -> Record | None:
    """The first valid record starting after `position`, if any."""
    at = position + 1
    while True:
        at = window.find(_MAGIC_PREFIX, at)
        if at < 0:
            return None
        found = _decode(window, at)
        if isinstance(found, Record):
            return found
        at += 1


def scan(fd: int) -> Iterator[Record | Torn | Bad]:
    """The records of the log open at `fd`, in order, ending with a `Torn`
    or `Bad` if the log does not end cleanly after its last record.

    A `Bad` is reported only when the bytes can not be an unfinished write:
    a record that is all there but fails its checks, a format-1 record cut
    short with valid records after it, or garbage that is not all zeros (a
    crash can leave a grown file's new block unwritten, which reads as
    zeros). After a `Bad`, the records found beyond it follow, each decoded
    afresh from the next valid one (the caller learns how far the log went).
    """
    window = _Window(fd, os.fstat(fd).st_size)
    position = 0
    while position < window.size:
        found = _decode(window, position)
        if isinstance(found, Record):
            yield found
            position = found.stop
            continue
        if isinstance(found, Torn) or _all_zero(window, position):
            later = _resync(window, position)
            if later is None:
                yield Torn(position)
                return
            found = Bad(position, "a record cut short, with valid records after it")
        yield found
        # Damage: report what lies beyond, so no acknowledged offset is reused.
        while True:
            later = _resync(window, position)
            if later is None:
                return
            yield later
            position = later.stop
            nxt = _decode(window, position) if position < window.size else None
            while isinstance(nxt, Record):
                yield nxt
                position = nxt.stop
                nxt = _decode(window, position) if position < window.size else None
            if nxt is None:
                return
