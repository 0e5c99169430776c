"""Gazette's fixed protobuf framing (`application/x-protobuf-fixed`).

Each frame is an 8-byte header, the magic word `66 33 93 36` and the payload
length as a little-endian uint32, followed by the payload: one marshalled
protobuf message. The magic word lets a reader detect that it is not at a
frame boundary. Gazette's reader then scans forward to the next occurrence
of the word, reports the skipped bytes as a de-synchronization, and goes on
from there; so does this one (`DesyncError`, then decoding continues). If no
magic word is found in what is buffered, all but the last three bytes (which
may begin the word) are skipped.

A message type for this framing provides `__bytes__()` (its protobuf
encoding) and a classmethod `parse(data)`, as betterproto2 messages do.
"""

from __future__ import annotations

import struct
from typing import Any

from ..protocol import protocol as pb
from .frames import Frames
from .framing import PROTO_FIXED, DesyncError, FrameDecoder, FramingError, register_framing
from .message import Envelope
from .uuids import fields_of

__all__ = [
    "FIXED_FRAME_WORD",
    "HEADER_LENGTH",
    "FixedDecoder",
    "FixedFraming",
    "encode_fixed_frame",
]

FIXED_FRAME_WORD = b"\x66\x33\x93\x36"
HEADER_LENGTH = 8
_LENGTH = struct.Struct("<I")


def encode_fixed_frame(payload: bytes) -> bytes:
    """A fixed frame around `payload`."""
    if len(payload) > 0xFFFFFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a fixed frame")
    return FIXED_FRAME_WORD + _LENGTH.pack(len(payload)) + payload


class FixedFraming:
    content_type = PROTO_FIXED

    def marshal(self, message: Any) -> bytes:
        return encode_fixed_frame(bytes(message))

    def decoder(self, spec: pb.JournalSpec, message_type: Any, offset: int) -> FixedDecoder:
        return FixedDecoder(spec, message_type, offset)


class FixedDecoder(FrameDecoder):
    def _decode(
        self, data: bytes, base: int
    ) -> tuple[Frames | list[Envelope], int, FramingError | None]:
        envelopes: list[Envelope] = []
        spec = self.spec
        parse = self.message_type.parse
        pos = 0
        size = len(data)
        while size - pos >= HEADER_LENGTH:
            if data[pos : pos + 4] != FIXED_FRAME_WORD:
                found = data.find(FIXED_FRAME_WORD, pos + 1)
                skip_to = found if found >= 0 else max(pos + 1, size - 3)
                return envelopes, skip_to, DesyncError(self.journal, base + pos, skip_to - pos)
            end = pos + HEADER_LENGTH + _LENGTH.unpack_from(data, pos + 4)[0]
            if end > size:
                break  # An incomplete frame: wait for more content.
            try:
                message = parse(data[pos + HEADER_LENGTH : end])
                producer, clock, flags = fields_of(message.get_uuid())
            except Exception as exc:  # A parser may raise anything on bad bytes.
                return (
                    envelopes,
                    end,
                    FramingError(self.journal, base + pos, f"cannot decode message: {exc!r}"),
                )
            envelopes.append(
                Envelope(spec, base + pos, base + end, message, producer, clock, flags)
            )
            pos = end
        return envelopes, pos, None

    def finish(self) -> FramingError | None:
        # Gazette tolerates a lone trailing newline after the last frame.
        if self._buffer == b"\n":
            self._buffer = b""
            self._offset += 1
            return None
        return super().finish()


register_framing(FixedFraming())
