"""FSMHints: what a player needs to rebuild a recorder's file system.

Hints list the Fnodes that were live when they were built, each with the log
segments holding all of its operations, plus property files. A segment whose
`log` is empty lies in `hints.log`. This module checks hints, flattens them
into the ordered Fnodes and `SegmentSet` a player follows, and encodes them
as Gazette stores them in etcd: Go's `encoding/json` rendering of the struct
(what Gazette writes today), or protobuf (what it will write and already
reads; a value that does not start with `{` is protobuf).

This module owns hints as data. Reading and writing them under a shard's
`hint_prefix` is `hint_store.py`; building them is the FSM's.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import RecoveryLogError
from ..protocol.recoverylog import FnodeSegments, FsmHints, Property, Segment
from .segment import SegmentError, SegmentSet, validate_segment


class HintsError(RecoveryLogError, ValueError):
    """FSMHints that no player could follow."""


def live_log_segments(hints: FsmHints) -> tuple[list[int], SegmentSet]:
    """The hinted Fnodes in ascending order, and the segments covering them.

    Raises HintsError if an Fnode's first segment does not start at the Fnode
    (an Fnode is the seq_no of its Create), Fnodes are not ascending, segments
    contradict each other, or the last segment is not in `hints.log`.
    """
    fnodes: list[int] = []
    segments = SegmentSet()
    for node in hints.live_nodes:
        if not node.segments or node.segments[0].first_seq_no != node.fnode:
            raise HintsError(f"expected Fnode to match Segment FirstSeqNo: {node}")
        if fnodes and fnodes[-1] >= node.fnode:
            raise HintsError(f"expected monotonic Fnode ordering: {fnodes[-1]} vs {node.fnode}")
        fnodes.append(node.fnode)
        for segment in node.segments:
            if not segment.log:
                segment = Segment(
                    author=segment.author,
                    first_seq_no=segment.first_seq_no,
                    first_offset=segment.first_offset,
                    first_checksum=segment.first_checksum,
                    last_seq_no=segment.last_seq_no,
                    last_offset=segment.last_offset,
                    log=hints.log,
                )
            try:
                segments.add(segment)
            except SegmentError as exc:
                raise HintsError(str(exc)) from None
    if segments and segments[-1].log != hints.log:
        raise HintsError(
            f"expected hints.Log {hints.log} to equal the last Segment Log {segments[-1].log}"
        )
    return fnodes, segments


def validate_hints(hints: FsmHints) -> None:
    """Gazette's `FSMHints.Validate`: every segment valid, and none repeating
    `hints.log` explicitly (an empty log already means `hints.log`)."""
    for node in hints.live_nodes:
        for segment in node.segments:
            if segment.log == hints.log:
                raise HintsError("contained segment.Log duplicates FSMHints.Log")
            check = segment if segment.log else _with_log(segment, hints.log)
            try:
                validate_segment(check)
            except SegmentError as exc:
                raise HintsError(f"Segment: {exc}") from None


def _with_log(segment: Segment, log: str) -> Segment:
    return Segment(
        author=segment.author,
        first_seq_no=segment.first_seq_no,
        first_offset=segment.first_offset,
        first_checksum=segment.first_checksum,
        last_seq_no=segment.last_seq_no,
        last_offset=segment.last_offset,
        log=log,
    )


# --------------------------------------------------------------------------
# Encodings

_SEGMENT_FIELDS = (
    "author",
    "first_seq_no",
    "first_offset",
    "first_checksum",
    "last_seq_no",
    "last_offset",
    "log",
)


def _go_json(value: Any) -> str:
    # Go's encoding/json: compact, UTF-8 kept, and <, >, &, U+2028/9 escaped.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def hints_to_json(hints: FsmHints) -> bytes:
    """Hints as Gazette's consumer writes them to etcd (`json.Marshal(hints)`)."""
    out: dict[str, Any] = {}
    if hints.log:
        out["log"] = hints.log
    nodes = []
    for node in hints.live_nodes:
        entry: dict[str, Any] = {}
        if node.fnode:
            entry["fnode"] = node.fnode
        entry["segments"] = [
            {f: getattr(s, f) for f in _SEGMENT_FIELDS if getattr(s, f)} for s in node.segments
        ] or None
        nodes.append(entry)
    out["live_nodes"] = nodes or None
    props = []
    for prop in hints.properties:
        p: dict[str, Any] = {}
        if prop.path:
            p["path"] = prop.path
        if prop.content:
            p["content"] = prop.content
        props.append(p)
    out["properties"] = props or None
    return _go_json(out).encode("utf-8")


def _field(obj: dict[str, Any], snake: str, what: str) -> Any:
    # Go's decoder matches keys case-insensitively; protojson uses lowerCamel.
    camel = snake.split("_")[0] + "".join(w.title() for w in snake.split("_")[1:])
    for key, value in obj.items():
        if key.lower() in (snake, camel.lower()):
            return value
    return None


def _int(obj: dict[str, Any], name: str, what: str) -> int:
    value = _field(obj, name, what)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise HintsError(f"{what}.{name}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise HintsError(f"{what}.{name}: expected an integer, got {value!r}") from None


def _str(obj: dict[str, Any], name: str, what: str) -> str:
    value = _field(obj, name, what)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise HintsError(f"{what}.{name}: expected a string, got {value!r}")
    return value


def _list(obj: dict[str, Any], name: str, what: str) -> list[dict[str, Any]]:
    value = _field(obj, name, what)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise HintsError(f"{what}.{name}: expected a list of objects, got {value!r}")
    return value


def _segment_from_json(obj: dict[str, Any], what: str) -> Segment:
    return Segment(
        author=_int(obj, "author", what),
        first_seq_no=_int(obj, "first_seq_no", what),
        first_offset=_int(obj, "first_offset", what),
        first_checksum=_int(obj, "first_checksum", what),
        last_seq_no=_int(obj, "last_seq_no", what),
        last_offset=_int(obj, "last_offset", what),
        log=_str(obj, "log", what),
    )


def hints_from_json(data: bytes | str) -> FsmHints:
    """Parse hints written by `hints_to_json` or Gazette's consumer."""
    try:
        root = json.loads(data)
    except ValueError as exc:
        raise HintsError(f"FSMHints JSON: {exc}") from None
    if not isinstance(root, dict):
        raise HintsError(f"FSMHints JSON: expected an object, got {type(root).__name__}")
    nodes = []
    for i, node in enumerate(_list(root, "live_nodes", "FSMHints")):
        where = f"FSMHints.live_nodes[{i}]"
        segments = [
            _segment_from_json(s, f"{where}.segments[{j}]")
            for j, s in enumerate(_list(node, "segments", where))
        ]
        nodes.append(FnodeSegments(fnode=_int(node, "fnode", where), segments=segments))
    props = [
        Property(
            path=_str(p, "path", f"FSMHints.properties[{i}]"),
            content=_str(p, "content", f"FSMHints.properties[{i}]"),
        )
        for i, p in enumerate(_list(root, "properties", "FSMHints"))
    ]
    return FsmHints(log=_str(root, "log", "FSMHints"), live_nodes=nodes, properties=props)


def hints_to_proto(hints: FsmHints) -> bytes:
    """Hints as protobuf bytes."""
    return bytes(hints)


def decode_hints(value: bytes) -> FsmHints:
    """Hints from an etcd value: JSON if it opens with `{`, else protobuf."""
    if not value:
        raise HintsError("FSMHints value is empty")
    if value[:1] == b"{":
        return hints_from_json(value)
    try:
        # betterproto2 parses some malformed input without complaint, so the
        # wire structure is checked first.
        _check_wire(value, 0, len(value), _FSM_HINTS_WIRE, "FSMHints")
        return FsmHints.parse(value)
    except HintsError:
        raise
    except Exception as exc:  # betterproto2 raises assorted errors on bad input.
        raise HintsError(f"FSMHints protobuf: {exc}") from None


_Wire = dict[int, "_Wire"]
_SEGMENT_WIRE: _Wire = {}
_FSM_HINTS_WIRE: _Wire = {2: {2: _SEGMENT_WIRE}, 3: {}}


def _varint_at(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 70:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise HintsError(f"FSMHints protobuf: malformed varint in {what}")


def _check_wire(buf: bytes, pos: int, end: int, nested: _Wire, what: str) -> None:
    while pos < end:
        key, pos = _varint_at(buf, pos, end, what)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise HintsError(f"FSMHints protobuf: field number zero in {what}")
        if wire_type == 0:
            _, pos = _varint_at(buf, pos, end, what)
        elif wire_type == 1 or wire_type == 5:
            pos += 8 if wire_type == 1 else 4
        elif wire_type == 2:
            length, pos = _varint_at(buf, pos, end, what)
            if pos + length <= end and number in nested:
                _check_wire(buf, pos, pos + length, nested[number], f"{what} field {number}")
            pos += length
        else:
            raise HintsError(f"FSMHints protobuf: wire type {wire_type} in {what}")
        if pos > end:
            raise HintsError(f"FSMHints protobuf: truncated field {number} in {what}")
