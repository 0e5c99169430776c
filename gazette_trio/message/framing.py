"""Framings: how messages are laid out in a journal's bytes.

A journal names its framing with its `content-type` label, as in Gazette:

- `application/x-ndjson`: one JSON document per line (`json_framing`);
- `application/x-protobuf-fixed`: Gazette's fixed frames, an 8-byte header
  (the word 66 33 93 36, then the little-endian uint32 payload length)
  before each protobuf message (`fixed_framing`);
- `text/csv`: one RFC 4180 record per message (`csv_framing`).

A `Framing` marshals one message into one frame, and makes a `FrameDecoder`
for reading a journal. The decoder is a pure, incremental parser: it is fed
chunks of journal content at their offsets and hands back `Frames` (the
messages, the exact [begin, end) offsets of each frame and their UUID
fields, as columns; envelopes on request). It keeps a trailing partial frame
for the next chunk, and notices offset jumps. Bad input is never skipped in
silence: decoding stops at it and returns a `FramingError` naming the journal
and offset beside the envelopes decoded before it; decoding again continues
after the bad region (that is how fixed framing resynchronizes after garbage,
as Gazette's does).

This module owns the registry, the decoder base and the errors; each framing
module registers itself here on import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple, Protocol

from ..errors import MessageError
from ..protocol import protocol as pb
from .frames import Frames
from .message import Envelope

__all__ = [
    "CONTENT_TYPE",
    "CSV",
    "JSON_LINES",
    "PROTO_FIXED",
    "Decoded",
    "DesyncError",
    "FrameDecoder",
    "Framing",
    "FramingError",
    "content_type_of",
    "framing_by_content_type",
    "framing_for",
    "register_framing",
]

CONTENT_TYPE = "content-type"
"""The journal label naming the framing of its messages."""
JSON_LINES = "application/x-ndjson"
PROTO_FIXED = "application/x-protobuf-fixed"
CSV = "text/csv"


class FramingError(MessageError, ValueError):
    """Journal content that cannot be decoded, at a journal offset."""

    def __init__(self, journal: str, offset: int, reason: str) -> None:
        super().__init__(f"journal {journal!r} at offset {offset}: {reason}")
        self.journal = journal
        self.offset = offset
        self.reason = reason


class DesyncError(FramingError):
    """Bytes that are not a frame (fixed framing lost its alignment); the
    decoder skipped `length` bytes to the next frame header."""

    def __init__(self, journal: str, offset: int, length: int) -> None:
        super().__init__(
            journal,
            offset,
            f"detected de-synchronization: skipped {length} bytes that are not a fixed frame",
        )
        self.length = length


class Decoded(NamedTuple):
    """What one `FrameDecoder.decode` call produced: frames in journal
    order, then possibly the error that stopped it."""

    frames: Frames
    error: FramingError | None

    @property
    def envelopes(self) -> list[Envelope]:
        """The frames as envelopes."""
        return self.frames.envelopes()


class FrameDecoder(ABC):
    """Incremental decoding of one journal's frames.

    `feed` adds content read at an offset; `decode` returns (as `Frames`)
    every complete frame buffered, stopping early at bad input (call it again
    to continue past it); `finish` reports a partial frame left at the end of
    a bounded read.
    """

    def __init__(self, spec: pb.JournalSpec, message_type: Any, offset: int) -> None:
        self.spec = spec
        self.journal = spec.name
        self.message_type = message_type
        self._buffer = b""
        self._offset = offset  # Journal offset of _buffer[0].
        self._pending: FramingError | None = None

    @property
    def offset(self) -> int:
        """Journal offset of the next byte to decode (the start of any buffered partial frame)."""
        return self._offset

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete frame."""
        return len(self._buffer)

    def feed(self, offset: int, content: bytes) -> None:
        """Add `content`, which the journal holds at `offset`."""
        expect = self._offset + len(self._buffer)
        if offset != expect:
            if offset < expect:
                raise ValueError(
                    f"journal {self.journal!r}: content at offset {offset} overlaps "
                    f"content already fed (through {expect})"
                )
            if self._buffer:
                # Content was removed from the journal under a partial frame.
                self._pending = FramingError(
                    self.journal,
                    self._offset,
                    f"{len(self._buffer)} bytes of a partial frame were cut off by an "
                    f"offset jump to {offset}",
                )
            self._buffer = b""
            self._offset = offset
        self._buffer = self._buffer + content if self._buffer else bytes(content)

    def decode(self) -> Decoded:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return Decoded(Frames.empty(self.spec), pending)
        if not self._buffer:
            return Decoded(Frames.empty(self.spec), None)
        decoded, consumed, error = self._decode(self._buffer, self._offset)
        if consumed:
            self._buffer = self._buffer[consumed:]
            self._offset += consumed
        frames = decoded if isinstance(decoded, Frames) else Frames.of_envelopes(self.spec, decoded)
        return Decoded(frames, error)

    def finish(self) -> FramingError | None:
        """At the end of a read: an error if a partial frame remains."""
        if self._buffer:
            return self._truncated()
        return None

    def _truncated(self) -> FramingError:
        return FramingError(
            self.journal,
            self._offset,
            f"unexpected end of content: {len(self._buffer)} bytes of an incomplete frame",
        )

    @abstractmethod
    def _decode(
        self, data: bytes, base: int
    ) -> tuple[Frames | list[Envelope], int, FramingError | None]:
        """Decode complete frames of `data` (at journal offset `base`): the
        frames (as `Frames`, or as envelopes), how many bytes were consumed
        (frames, and any bad region skipped), and the error that stopped
        decoding, if any."""


class Framing(Protocol):
    """Marshals messages to frames and makes decoders, for one content type."""

    content_type: str

    def marshal(self, message: Any) -> bytes:
        """One complete frame holding `message`."""
        ...

    def decoder(self, spec: pb.JournalSpec, message_type: Any, offset: int) -> FrameDecoder:
        """A decoder of `spec`'s content from `offset`, building `message_type` messages."""
        ...


_REGISTRY: dict[str, Framing] = {}


def register_framing(framing: Framing) -> None:
    _REGISTRY[framing.content_type] = framing


def framing_by_content_type(content_type: str) -> Framing:
    _ensure_registered()
    try:
        return _REGISTRY[content_type]
    except KeyError:
        raise ValueError(
            f"unrecognized content-type {content_type!r} (known: {sorted(_REGISTRY)})"
        ) from None


def content_type_of(spec: pb.JournalSpec) -> str:
    """The single `content-type` label value of a journal spec."""
    labels = spec.labels.labels if spec.labels is not None else []
    values = [label.value for label in labels if label.name == CONTENT_TYPE]
    if len(values) != 1:
        raise ValueError(
            f"journal {spec.name!r} must have exactly one {CONTENT_TYPE!r} label (has {values})"
        )
    return values[0]


def framing_for(spec: pb.JournalSpec) -> Framing:
    """The framing a journal's `content-type` label names."""
    try:
        return framing_by_content_type(content_type_of(spec))
    except ValueError as exc:
        raise ValueError(f"journal {spec.name!r}: {exc}") from None


def _ensure_registered() -> None:
    # The framing modules register themselves on import; importing them here
    # (lazily, to avoid an import cycle) makes the registry complete.
    from . import csv_framing, fixed_framing, json_framing  # noqa: F401
