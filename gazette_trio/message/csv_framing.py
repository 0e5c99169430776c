"""CSV framing (`text/csv`): one RFC 4180 record per message.

Records are written as Go's encoding/csv writes them (comma-separated, `\\n`
line ends, a field quoted only if it holds a comma, a quote, a CR or LF, or
begins with white space, or is exactly `\\.`), so frames match Gazette's
byte for byte. A record ends at a newline outside quotes; quoted fields may
span lines. As in Go, blank lines are skipped, and every record must have as
many fields as the first one the decoder read.

A message type for this framing provides `to_csv_row()` (a sequence of
strings) and a classmethod `from_csv_row(row)`; `CSVRecord` does.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any

from ..protocol import protocol as pb
from .frames import Frames
from .framing import CSV, FrameDecoder, FramingError, register_framing
from .message import Envelope
from .uuids import fields_of

__all__ = ["CSVDecoder", "CSVFraming", "format_csv_row"]


def _needs_quotes(field: str) -> bool:
    if field == "":
        return False
    if field == "\\." or any(c in field for c in ',"\r\n'):
        return True
    return field[0].isspace()


def format_csv_row(fields: Sequence[str]) -> bytes:
    """One CSV record, newline-terminated, quoted as Go's csv.Writer quotes."""
    out = []
    for field in fields:
        if not isinstance(field, str):
            raise TypeError(f"CSV fields must be strings, got {type(field).__name__}")
        if _needs_quotes(field):
            out.append('"' + field.replace('"', '""') + '"')
        else:
            out.append(field)
    return (",".join(out) + "\n").encode("utf-8")


class CSVFraming:
    content_type = CSV

    def marshal(self, message: Any) -> bytes:
        return format_csv_row(message.to_csv_row())

    def decoder(self, spec: pb.JournalSpec, message_type: Any, offset: int) -> CSVDecoder:
        return CSVDecoder(spec, message_type, offset)


class CSVDecoder(FrameDecoder):
    def __init__(self, spec: pb.JournalSpec, message_type: Any, offset: int) -> None:
        super().__init__(spec, message_type, offset)
        self._width: int | None = None

    def _decode(
        self, data: bytes, base: int
    ) -> tuple[Frames | list[Envelope], int, FramingError | None]:
        envelopes: list[Envelope] = []
        spec = self.spec
        start = 0
        search = 0
        while True:
            newline = data.find(b"\n", search)
            if newline < 0:
                break
            if data.count(b'"', start, newline) % 2:
                search = newline + 1  # The newline is inside a quoted field.
                continue
            end = newline + 1
            record = data[start:newline]
            if record.endswith(b"\r"):
                record = record[:-1]
            if record:
                try:
                    row = self._parse(record)
                    message = self.message_type.from_csv_row(row)
                    producer, clock, flags = fields_of(message.get_uuid())
                except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as exc:
                    return (
                        envelopes,
                        end,
                        FramingError(
                            self.journal, base + start, f"cannot decode CSV record: {exc}"
                        ),
                    )
                envelopes.append(
                    Envelope(spec, base + start, base + end, message, producer, clock, flags)
                )
            start = search = end
        return envelopes, start, None

    def _parse(self, record: bytes) -> list[str]:
        rows = list(csv.reader([record.decode("utf-8")], strict=True))
        if len(rows) != 1:
            raise ValueError(f"expected one record, found {len(rows)}")
        row = rows[0]
        if self._width is None:
            self._width = len(row)
        elif len(row) != self._width:
            raise ValueError(f"wrong number of fields ({len(row)}; expected {self._width})")
        return row


register_framing(CSVFraming())
