"""RecordedOp on the wire: a fast protobuf codec and Gazette's fixed framing.

A recovery log is a journal of RecordedOps, each written as one *fixed
frame*: the magic word `66 33 93 36`, a little-endian uint32 length, then the
protobuf-encoded op (Gazette's `message.EncodeFixedProtoFrame`). A Write op is
followed directly by `write.length` raw bytes of file content, outside the
frame. The FSM's checksum chain covers each frame's protobuf bytes (not the
header, not the payload).

betterproto2 takes tens of microseconds per message, which would dominate
playback and recording, so RecordedOp gets a hand-written codec here. It
encodes fields in field-number order with proto3 zero-omission, exactly as
Gazette's gogo-generated marshaler does, so our frames (and so our checksums)
are byte-identical to Gazette's. Decoding accepts any field order, skips
unknown fields, and merges repeated sub-messages, as protobuf requires. Tests
check both directions byte-for-byte against the generated class and the
official protobuf runtime.

This module owns the bytes of one op and one frame. Splitting a log's byte
stream into frames and payloads is `stream.py`'s job.
"""

from __future__ import annotations

import struct

from ..errors import RecoveryLogError
from ..protocol.recoverylog import (
    Property,
    RecordedOp,
    RecordedOpCreate,
    RecordedOpLink,
    RecordedOpWrite,
)

FRAME_MAGIC = b"\x66\x33\x93\x36"
"""The word that opens every fixed frame (Gazette's `FixedFrameWord`)."""

FRAME_HEADER_LENGTH = 8
"""Magic word plus little-endian uint32 length of the message that follows."""

_U32 = struct.Struct("<I")
_HEADER = struct.Struct("<4sI")
_INT64_WRAP = 1 << 64
_INT64_SIGN = 1 << 63


class RecordedOpDecodeError(RecoveryLogError, ValueError):
    """Bytes that are not a valid RecordedOp encoding."""


# --------------------------------------------------------------------------
# Encoding


def _varint(value: int) -> bytes:
    if value < 0:
        value += _INT64_WRAP  # int64 negatives are ten-byte two's complement.
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string_field(tag: int, value: str) -> bytes:
    raw = value.encode("utf-8")
    return bytes((tag,)) + _varint(len(raw)) + raw


def _link_body(link: RecordedOpLink) -> bytes:
    body = b""
    if link.fnode:
        body += b"\x08" + _varint(link.fnode)
    if link.path:
        body += _string_field(0x12, link.path)
    return body


def _submessage(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(body)) + body


def encode_op(op: RecordedOp) -> bytes:
    """The protobuf bytes of `op`, identical to Gazette's marshaler output."""
    out = b""
    if op.seq_no:
        out += b"\x08" + _varint(op.seq_no)
    if op.checksum:
        out += b"\x15" + _U32.pack(op.checksum)
    if op.author:
        out += b"\x1d" + _U32.pack(op.author)
    if op.create is not None:
        body = _string_field(0x0A, op.create.path) if op.create.path else b""
        out += _submessage(0x22, body)
    if op.link is not None:
        out += _submessage(0x2A, _link_body(op.link))
    if op.unlink is not None:
        out += _submessage(0x32, _link_body(op.unlink))
    if op.write is not None:
        write = op.write
        body = b""
        if write.fnode:
            body += b"\x08" + _varint(write.fnode)
        if write.offset:
            body += b"\x10" + _varint(write.offset)
        if write.length:
            body += b"\x18" + _varint(write.length)
        out += _submessage(0x3A, body)
    if op.property is not None:
        prop = op.property
        body = b""
        if prop.path:
            body += _string_field(0x0A, prop.path)
        if prop.content:
            body += _string_field(0x12, prop.content)
        out += _submessage(0x42, body)
    if op.first_offset:
        out += b"\x48" + _varint(op.first_offset)
    if op.last_offset:
        out += b"\x50" + _varint(op.last_offset)
    if op.log:
        out += _string_field(0x5A, op.log)
    return out


def frame(body: bytes) -> bytes:
    """`body` behind a fixed-frame header."""
    return _HEADER.pack(FRAME_MAGIC, len(body)) + body


def frame_op(op: RecordedOp) -> tuple[bytes, bytes]:
    """`(frame, body)`: the framed op as written to a log, and the protobuf
    bytes the FSM checksums. Meta-fields (offsets, log) must be unset, as
    recorders never write them."""
    body = encode_op(op)
    return frame(body), body


def frame_length(header: bytes | bytearray | memoryview) -> int | None:
    """The message length a fixed-frame header announces, or None if `header`
    does not open with the magic word."""
    magic, length = _HEADER.unpack_from(header)
    return int(length) if magic == FRAME_MAGIC else None


# --------------------------------------------------------------------------
# Decoding


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise RecordedOpDecodeError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise RecordedOpDecodeError("varint longer than ten bytes")


def _int64(value: int) -> int:
    return value - _INT64_WRAP if value >= _INT64_SIGN else value


def _skip(buf: bytes, pos: int, end: int, wire_type: int) -> int:
    if wire_type == 0:
        return _read_varint(buf, pos, end)[1]
    if wire_type == 1:
        pos += 8
    elif wire_type == 2:
        length, pos = _read_varint(buf, pos, end)
        pos += length
    elif wire_type == 5:
        pos += 4
    else:
        raise RecordedOpDecodeError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise RecordedOpDecodeError("truncated field")
    return pos


def _read_bytes(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start, stop) of a length-delimited field's content."""
    length, pos = _read_varint(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise RecordedOpDecodeError("truncated length-delimited field")
    return pos, stop


def _read_string(buf: bytes, pos: int, end: int, name: str) -> tuple[str, int]:
    start, stop = _read_bytes(buf, pos, end)
    try:
        return buf[start:stop].decode("utf-8"), stop
    except UnicodeDecodeError as exc:
        raise RecordedOpDecodeError(f"field {name} is not valid UTF-8: {exc}") from None


def _decode_link(buf: bytes, pos: int, end: int, link: RecordedOpLink, name: str) -> None:
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        if key == 0x08:
            value, pos = _read_varint(buf, pos, end)
            link.fnode = _int64(value)
        elif key == 0x12:
            link.path, pos = _read_string(buf, pos, end, f"{name}.path")
        else:
            pos = _skip(buf, pos, end, key & 7)


def _decode_write(buf: bytes, pos: int, end: int, write: RecordedOpWrite) -> None:
    # The hottest path of playback: single-byte keys and varints are read
    # inline, longer ones by `_read_varint`.
    while pos < end:
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _read_varint(buf, pos, end)
        name = _WRITE_FIELDS.get(key)
        if name is None:
            pos = _skip(buf, pos, end, key & 7)
            continue
        value = buf[pos] if pos < end else 0x80
        if value < 0x80:
            pos += 1
        else:
            value, pos = _read_varint(buf, pos, end)
            value = _int64(value)
        setattr(write, name, value)


_WRITE_FIELDS = {0x08: "fnode", 0x10: "offset", 0x18: "length"}


def _decode_strings(buf: bytes, pos: int, end: int, target: object, names: tuple[str, ...]) -> None:
    # Messages made only of string fields 1..n (Create, Property).
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        number = key >> 3
        if key & 7 == 2 and 1 <= number <= len(names):
            value, pos = _read_string(buf, pos, end, names[number - 1])
            setattr(target, names[number - 1], value)
        else:
            pos = _skip(buf, pos, end, key & 7)


def decode_op(data: bytes | bytearray | memoryview) -> RecordedOp:
    """Parse protobuf bytes into a RecordedOp; RecordedOpDecodeError if malformed."""
    buf = bytes(data)
    end = len(buf)
    pos = 0
    op = RecordedOp()
    try:
        while pos < end:
            key = buf[pos]
            if key < 0x80:
                pos += 1
            else:
                key, pos = _read_varint(buf, pos, end)
            if key == 0x08:
                value = buf[pos] if pos < end else 0x80
                if value < 0x80:
                    pos += 1
                else:
                    value, pos = _read_varint(buf, pos, end)
                op.seq_no = _int64(value)
            elif key == 0x15 or key == 0x1D:
                if pos + 4 > end:
                    raise RecordedOpDecodeError("truncated fixed32")
                value = _U32.unpack_from(buf, pos)[0]
                pos += 4
                if key == 0x15:
                    op.checksum = value
                else:
                    op.author = value
            elif key == 0x3A:
                length = buf[pos] if pos < end else 0x80
                if length < 0x80:
                    start = pos + 1
                    pos = start + length
                    if pos > end:
                        raise RecordedOpDecodeError("truncated length-delimited field")
                else:
                    start, pos = _read_bytes(buf, pos, end)
                if op.write is None:
                    op.write = RecordedOpWrite()
                _decode_write(buf, start, pos, op.write)
            elif key == 0x22:
                start, pos = _read_bytes(buf, pos, end)
                if op.create is None:
                    op.create = RecordedOpCreate()
                _decode_strings(buf, start, pos, op.create, ("path",))
            elif key == 0x2A or key == 0x32:
                start, pos = _read_bytes(buf, pos, end)
                if key == 0x2A:
                    if op.link is None:
                        op.link = RecordedOpLink()
                    _decode_link(buf, start, pos, op.link, "link")
                else:
                    if op.unlink is None:
                        op.unlink = RecordedOpLink()
                    _decode_link(buf, start, pos, op.unlink, "unlink")
            elif key == 0x42:
                start, pos = _read_bytes(buf, pos, end)
                if op.property is None:
                    op.property = Property()
                _decode_strings(buf, start, pos, op.property, ("path", "content"))
            elif key == 0x48 or key == 0x50:
                value, pos = _read_varint(buf, pos, end)
                if key == 0x48:
                    op.first_offset = _int64(value)
                else:
                    op.last_offset = _int64(value)
            elif key == 0x5A:
                op.log, pos = _read_string(buf, pos, end, "log")
            elif key >> 3 == 0:
                raise RecordedOpDecodeError("field number zero")
            else:
                pos = _skip(buf, pos, end, key & 7)
    except RecordedOpDecodeError as exc:
        raise RecordedOpDecodeError(f"RecordedOp: {exc} (at byte {pos} of {end})") from None
    return op
