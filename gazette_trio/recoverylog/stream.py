"""Splitting a recovery log's bytes into operations and write payloads.

`LogDecoder` is sans-IO: feed it the log's bytes as they arrive (any chunk
boundaries) and pull events:

- `OpRead`: one decoded RecordedOp, with the meta-fields only a reader knows
  filled in (`first_offset`, `last_offset` including any write payload,
  `log`), and the protobuf bytes the FSM checksums;
- `Payload`: a slice of the raw bytes following a Write op (a write arrives
  as one or more payload events totalling `write.length`, zero-copy views of
  the fed chunks, so large writes stream straight to disk);
- `Desync`: bytes that are not a frame (Gazette's `ErrDesyncDetected`): the
  decoder skips forward to the next magic word, as Gazette's
  `UnpackFixedFrame` does, and playback goes on.

A frame whose body does not decode is not skippable (its length may be
garbage too): `next_event` raises `LogDecodeError` naming the log and offset.

This module owns the byte-stream grammar. Deciding what an op means is the
FSM's; writing files is the player's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RecoveryLogError
from ..protocol.recoverylog import RecordedOp
from .codec import FRAME_HEADER_LENGTH, FRAME_MAGIC, RecordedOpDecodeError, decode_op

_MAGIC_LENGTH = len(FRAME_MAGIC)


class LogDecodeError(RecoveryLogError, ValueError):
    """Log bytes that frame correctly but are not a RecordedOp."""

    def __init__(self, log: str, offset: int, reason: str) -> None:
        super().__init__(f"recovery log {log} at offset {offset}: {reason}")
        self.log = log
        self.offset = offset


@dataclass(slots=True)
class OpRead:
    """A decoded op; `body` is its protobuf bytes (what the FSM checksums)."""

    op: RecordedOp
    body: bytes


@dataclass(slots=True)
class Payload:
    """Raw write bytes for the preceding Write op."""

    data: memoryview


@dataclass(slots=True)
class Desync:
    """Bytes in `[first_offset, last_offset)` that are not a frame."""

    first_offset: int
    last_offset: int


Event = OpRead | Payload | Desync


class LogDecoder:
    """Incremental decoder of one log from a starting offset."""

    __slots__ = ("_buf", "_log", "_pos", "_remaining", "offset")

    def __init__(self, log: str, offset: int) -> None:
        self._log = log
        self.offset = offset
        """Log offset of the next byte not yet turned into an event."""
        self._buf = b""
        self._pos = 0
        self._remaining = 0  # Payload bytes still owed to the last Write op.

    @property
    def log(self) -> str:
        return self._log

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet consumed by events."""
        return len(self._buf) - self._pos

    @property
    def in_payload(self) -> bool:
        """Whether the decoder is inside a write's payload."""
        return self._remaining != 0

    def reset(self, offset: int) -> None:
        """Start over at `offset`, dropping what is buffered (content was
        skipped: an offset jump)."""
        self.offset = offset
        self._buf, self._pos, self._remaining = b"", 0, 0

    def feed(self, data: bytes) -> None:
        """Append the next bytes of the log."""
        if self._pos == len(self._buf):
            self._buf, self._pos = data, 0
        else:
            # A frame straddles chunks; the carried part is less than a frame.
            self._buf, self._pos = self._buf[self._pos :] + data, 0

    def next_event(self) -> Event | None:
        """The next event, or None until more bytes are fed."""
        buf, pos = self._buf, self._pos
        available = len(buf) - pos

        if self._remaining:
            if not available:
                return None
            n = min(self._remaining, available)
            self._remaining -= n
            self._pos = pos + n
            self.offset += n
            return Payload(memoryview(buf)[pos : pos + n])

        if available < FRAME_HEADER_LENGTH:
            return None
        if buf[pos : pos + _MAGIC_LENGTH] != FRAME_MAGIC:
            return self._desync(buf, pos)

        length = int.from_bytes(buf[pos + _MAGIC_LENGTH : pos + FRAME_HEADER_LENGTH], "little")
        end = pos + FRAME_HEADER_LENGTH + length
        if end > len(buf):
            return None
        body = buf[pos + FRAME_HEADER_LENGTH : end]
        first = self.offset
        try:
            op = decode_op(body)
        except RecordedOpDecodeError as exc:
            raise LogDecodeError(self._log, first, str(exc)) from None

        frame_end = first + FRAME_HEADER_LENGTH + length
        op.first_offset = first
        op.last_offset = frame_end
        op.log = self._log
        if op.write is not None:
            if op.write.length < 0:
                raise LogDecodeError(
                    self._log, first, f"write of fnode {op.write.fnode} has negative length"
                )
            op.last_offset += op.write.length
            self._remaining = op.write.length
        self._pos = end
        self.offset = frame_end
        return OpRead(op, body)

    def _desync(self, buf: bytes, pos: int) -> Desync:
        # Skip to the next magic word within what is buffered; keep a tail
        # that could be the start of one.
        found = buf.find(FRAME_MAGIC, pos + 1)
        stop = found if found != -1 else len(buf) - (_MAGIC_LENGTH - 1)
        first = self.offset
        self._pos = stop
        self.offset += stop - pos
        return Desync(first, self.offset)
