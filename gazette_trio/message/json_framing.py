"""Newline-delimited JSON framing (`application/x-ndjson`).

Each message is one JSON document on one line, ended by a newline, as
Gazette's JSON framing writes them. Messages are written with orjson
(compact, like Go's encoder; orjson does not escape `<`, `>` and `&` as Go
does, which any JSON reader accepts) and read with msgspec, whose decoder
builds small documents about 30 ns faster than orjson's. Both are strict
RFC 8259 parsers; one difference shows in what is read: an integer beyond
64 bits is an exact `int` from msgspec (orjson would give a float).

A message type for this framing provides `to_json()` (a value orjson can
serialize) and a classmethod `from_json(doc)`. Plain `dict`s are messages
too, with their UUID at `_meta.uuid`: decoding them costs the least.
`dict` and `JSONMessage` subclasses take a faster path: a whole chunk's
lines are decoded, wrapped and their UUID strings parsed in bulk
(`uuids.fields_of_strings`) into `Frames` columns, with per-frame work done
in C wherever Python lets it, and no envelope built; if any frame of the chunk is bad, the chunk is decoded again frame
by frame to name it (the tests hold the two paths to the same output).

Bad input is a `FramingError` at the offset of the offending line: a line
that is not JSON, a document the message type rejects, or a UUID that does
not parse. The line is consumed, so decoding again continues with the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import msgspec
import orjson

from ..protocol import protocol as pb
from ._accel import speedups
from .frames import Frames
from .framing import JSON_LINES, FrameDecoder, FramingError, register_framing
from .message import JSON_UUID_PATH, Envelope, JSONMessage
from .uuids import fields_of, fields_of_string, fields_of_strings

_Fields = tuple[Sequence[bytes], Sequence[int], Sequence[int]]

__all__ = ["JSONDecoder", "JSONFraming"]

_loads = msgspec.json.Decoder().decode
_plus_one = (1).__add__
_DecodeError = msgspec.DecodeError


class JSONFraming:
    content_type = JSON_LINES

    def marshal(self, message: Any) -> bytes:
        doc = message.to_json() if hasattr(message, "to_json") else message
        return orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE)

    def decoder(self, spec: pb.JournalSpec, message_type: Any, offset: int) -> JSONDecoder:
        return JSONDecoder(spec, message_type, offset)


class JSONDecoder(FrameDecoder):
    def __init__(self, spec: pb.JournalSpec, message_type: Any, offset: int) -> None:
        super().__init__(spec, message_type, offset)
        # Plain dicts are messages as decoded. The bulk path builds other
        # messages as `message_type(doc)`, which is what JSONMessage.from_json
        # does; a subclass that overrides from_json is called frame by frame.
        self._raw = message_type is dict
        self._bulk = self._raw or (
            isinstance(message_type, type)
            and issubclass(message_type, JSONMessage)
            and message_type.from_json.__func__ is JSONMessage.from_json.__func__  # type: ignore[attr-defined]
        )
        path: tuple[str, ...] = ()
        if self._raw:
            path = JSON_UUID_PATH
        elif isinstance(message_type, type) and issubclass(message_type, JSONMessage):
            path = message_type.uuid_path
        self._path = path

    def _decode(
        self, data: bytes, base: int
    ) -> tuple[Frames | list[Envelope], int, FramingError | None]:
        consumed = data.rfind(b"\n") + 1  # What follows is an incomplete frame.
        if not consumed:
            return [], 0, None
        if self._bulk:
            if b"\r" not in data:
                # Without a "\r", bytes.splitlines breaks at "\n" only; keeping
                # the newlines makes each line's length its frame's length.
                lines = data.splitlines(True)
                if consumed < len(data):
                    lines.pop()
                lengths = list(map(len, lines))
            else:
                lines = data[:consumed].split(b"\n")
                lines.pop()
                lengths = list(map(_plus_one, map(len, lines)))
            try:
                frames = self._bulk_decode(lines, lengths, base)
            except (_DecodeError, KeyError, TypeError, ValueError):
                pass  # Some frame is bad, or lacks a UUID: find out which, one by one.
            else:
                return frames, consumed, None
        lines = data[:consumed].split(b"\n")
        lines.pop()
        return self._decode_each(lines, base)

    def _bulk_decode(self, lines: list[bytes], lengths: list[int], base: int) -> Frames:
        docs = list(map(_loads, lines))
        if self._path:
            fields = _fields_at(docs, self._path)
        else:
            if not all(map(dict.__instancecheck__, docs)):
                raise TypeError("not every document is an object")
            fields = fields_of_strings(docs)
        if fields is None:
            raise ValueError("a document has no canonical UUID string at its path")
        messages = docs if self._raw else list(map(self.message_type, docs))
        producers, clocks, flags = fields
        return Frames.of_lengths(self.spec, base, lengths, messages, producers, clocks, flags)

    def _decode_each(
        self, lines: list[bytes], base: int
    ) -> tuple[list[Envelope], int, FramingError | None]:
        envelopes: list[Envelope] = []
        spec = self.spec
        begin = base
        for line in lines:
            end = begin + len(line) + 1
            try:
                doc = _loads(line)
            except _DecodeError as exc:
                return (
                    envelopes,
                    end - base,
                    FramingError(self.journal, begin, f"malformed JSON line: {exc}"),
                )
            try:
                if self._raw:
                    if not isinstance(doc, dict):
                        raise TypeError(f"expected a JSON object, got {type(doc).__name__}")
                    message = doc
                else:
                    message = self.message_type.from_json(doc)
                producer, clock, flags = self._fields(message, doc)
            except (ValueError, TypeError) as exc:
                return (
                    envelopes,
                    end - base,
                    FramingError(self.journal, begin, f"cannot decode message: {exc}"),
                )
            envelopes.append(Envelope(spec, begin, end, message, producer, clock, flags))
            begin = end
        return envelopes, begin - base, None

    def _fields(self, message: Any, doc: Any) -> tuple[bytes, int, int]:
        if not self._path:
            return fields_of(message.get_uuid())
        node = doc
        for key in self._path:
            if not isinstance(node, dict) or key not in node:
                return fields_of(None)  # No UUID: processed at least once.
            node = node[key]
        if not isinstance(node, str):
            raise ValueError(f"{'.'.join(self._path)} is not a UUID string: {node!r}")
        try:
            return fields_of_string(node)
        except ValueError:
            raise ValueError(f"{'.'.join(self._path)} is not a UUID: {node!r}") from None


def _py_fields_at(docs: list[Any], path: tuple[str, ...]) -> _Fields | None:
    """The UUID fields of each document's string at `path`; None if a
    document is not an object, lacks the path, or has no canonical UUID there.
    (The reference for `_speedups.fields_at`, and what runs without it.)"""
    column: Any = docs
    try:
        for key in path:
            column = map(itemgetter(key), column)
        texts = list(column)
    except (KeyError, TypeError):  # Not an object (indexed by a str), or no such key.
        return None
    return fields_of_strings(texts)


_fields_at: Callable[[list[Any], tuple[str, ...]], _Fields | None] = (
    speedups.fields_at if speedups is not None else _py_fields_at
)


register_framing(JSONFraming())
