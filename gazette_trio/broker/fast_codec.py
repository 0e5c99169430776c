"""Fast wire codecs for the two messages that carry journal content.

Every byte a journal moves over gRPC travels in a `ReadResponse` (server to
reader) or an `AppendRequest` (appender to server). Almost all of those
messages are *content chunks*: a ReadResponse with only `offset` and
`content`, an AppendRequest with only `content`. betterproto2 spends tens of
microseconds on each; these functions encode and decode exactly those shapes
directly (tag, varint, bytes) and hand any other shape to betterproto2, so
the bytes on the wire are identical either way (tests check this
byte-for-byte against the generated classes and the official runtime).

Importing this module registers the codecs with
`gazette_trio.protocol.codec`; the gRPC client and service import it.
"""

from __future__ import annotations

from ..protocol import codec
from ..protocol import protocol as pb

_MASK64 = (1 << 64) - 1
_SIGN64 = 1 << 63

# Tags: (field number << 3) | wire type.
_RR_OFFSET = 0x18  # ReadResponse.offset, field 3, varint
_RR_CONTENT = 0x3A  # ReadResponse.content, field 7, length-delimited
_AR_CONTENT = 0x22  # AppendRequest.content, field 4, length-delimited


def _varint(value: int) -> bytes:
    value &= _MASK64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or oversized varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def encode_read_response(message: pb.ReadResponse) -> bytes:
    if (
        message.header is None
        and message.fragment is None
        and message.write_head == 0
        and not message.fragment_url
        and message.status == pb.Status.OK
        and not message._unknown_fields
    ):
        parts = []
        if message.offset:
            parts.append(bytes((_RR_OFFSET,)) + _varint(message.offset))
        content = message.content
        if content:
            parts.append(bytes((_RR_CONTENT,)) + _varint(len(content)))
            parts.append(content)
        return b"".join(parts)
    return bytes(message)


def decode_read_response(data: bytes) -> pb.ReadResponse:
    offset = 0
    content = b""
    pos = 0
    end = len(data)
    try:
        while pos < end:
            tag = data[pos]
            if tag == _RR_OFFSET:
                offset, pos = _read_varint(data, pos + 1)
                if offset & _SIGN64:
                    offset -= 1 << 64
            elif tag == _RR_CONTENT:
                length, pos = _read_varint(data, pos + 1)
                if pos + length > end:
                    break
                content = data[pos : pos + length]
                pos += length
            else:
                break
        else:
            return pb.ReadResponse(offset=offset, content=bytes(content))
    except ValueError:
        pass
    # Any other shape (metadata, statuses, malformed input) is betterproto2's.
    return codec.parse_checked(pb.ReadResponse, data)


def encode_append_request(message: pb.AppendRequest) -> bytes:
    if (
        not message.journal
        and message.header is None
        and not message.do_not_proxy
        and message.offset == 0
        and message.check_registers is None
        and message.union_registers is None
        and message.subtract_registers is None
        and message.suspend == pb.AppendRequestSuspend.RESUME
        and message.min_etcd_revision == 0
        and not message._unknown_fields
    ):
        content = message.content
        if not content:
            return b""
        return b"".join((bytes((_AR_CONTENT,)), _varint(len(content)), content))
    return bytes(message)


def decode_append_request(data: bytes) -> pb.AppendRequest:
    content = b""
    pos = 0
    end = len(data)
    try:
        while pos < end:
            if data[pos] != _AR_CONTENT:
                break
            length, pos = _read_varint(data, pos + 1)
            if pos + length > end:
                break
            content = data[pos : pos + length]
            pos += length
        else:
            return pb.AppendRequest(content=bytes(content))
    except ValueError:
        pass
    return codec.parse_checked(pb.AppendRequest, data)


codec.register_fast(pb.ReadResponse, encode_read_response, decode_read_response)
codec.register_fast(pb.AppendRequest, encode_append_request, decode_append_request)
