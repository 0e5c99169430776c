"""The bytes of JSONFileStore's `state.json`: Gazette's layout.

Gazette's `consumer.JSONFileStore` (consumer/store_json_file.go) writes the
file as three JSON documents, each the way Go's `json.Encoder.Encode` writes
a value (compact, `<`, `>`, `&`, U+2028 and U+2029 escaped as `\\u003c`...,
then a newline):

1. the checkpoint's read-through offsets, flattened
   (`FlattenReadThrough`): `{"<journal>":<offset>,...}`;
2. the application's state;
3. the `Checkpoint`, as encoding/json writes the generated Go struct. Its
   json tags name the fields, so the document is
   `{"sources":{"<journal>":{"read_through":N,"producers":[{"id":"<base64>",
   "state":{"last_ack":N,"begin":N}}]}},"ack_intents":{"<journal>":"<base64>"}}`.
   Struct fields keep that order; map keys are sorted, as Go sorts them;
   bytes are standard base64. `read_through`, `id`, `last_ack`, `begin` and
   `ack_intents` are omitted when zero or empty (`omitempty`); `producers`
   is `null` for a source without producers and `sources` is `{}`, which is
   what Go writes for a checkpoint built by its transaction loop
   (`BuildCheckpoint`).

So a Go member and this one can take over each other's shard: each reads
the file the other left in the recovery log.

Reading follows Go's decoder: any whitespace may separate the documents;
field names match case-insensitively and unknown fields are ignored;
`null` is an empty map or list; the third document may be missing (Gazette's
older, offsets-only files), and the first document's offsets override the
sources' read-through, as upstream's reader applies them. A file in this
project's earlier layout, one object `{"checkpoint": <Checkpoint in
protobuf's JSON mapping>, "state": ...}`, still loads; the next commit
rewrites it in Gazette's.

The state is checked before it is written: it must decode back to exactly
itself, so what a later instance restores is what was committed.

This module owns the format only; the store is `json_file.py`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ...protocol import consumer as pc
from .errors import StoreError

INT64 = (-(1 << 63), (1 << 63) - 1)
UINT64 = (0, (1 << 64) - 1)

# What Go's encoder escapes that orjson writes as is. They occur only inside
# strings, so replacing the bytes is replacing the characters.
_GO_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def encode_document(state: Any, checkpoint: pc.Checkpoint, fqn: str) -> bytes:
    """The state file's bytes; StoreError if JSON cannot represent `state` exactly."""
    try:
        state_json = orjson.dumps(state)
    except TypeError as exc:
        raise StoreError(f"state of shard {fqn} is not JSON-serializable: {exc}") from exc
    difference = _first_difference(orjson.loads(state_json), state, "state")
    if difference is not None:
        raise StoreError(
            f"state of shard {fqn} would not survive JSON unchanged: {difference}; "
            "use dicts with string keys, lists, strings, finite numbers, booleans and None"
        )
    sources = sorted(checkpoint.sources.items())
    offsets = {journal: source.read_through for journal, source in sources}
    go_checkpoint: dict[str, Any] = {
        "sources": {journal: _go_source(source) for journal, source in sources}
    }
    if checkpoint.ack_intents:
        go_checkpoint["ack_intents"] = {
            journal: _base64(intent) for journal, intent in sorted(checkpoint.ack_intents.items())
        }
    return b"".join(
        _go_escaped(document) + b"\n"
        for document in (orjson.dumps(offsets), state_json, orjson.dumps(go_checkpoint))
    )


def decode_document(data: bytes, path: Path) -> tuple[Any, pc.Checkpoint]:
    """(state, checkpoint) from a state file's bytes; StoreError naming `path`."""
    documents = _documents(data, path)
    if (
        len(documents) == 1
        and isinstance(documents[0], dict)
        and set(documents[0]) == {"checkpoint", "state"}
    ):
        return _decode_earlier_layout(documents[0], path)
    if len(documents) not in (2, 3):
        raise StoreError(
            f"state file {path} holds {len(documents)} JSON documents; Gazette's layout has "
            "three (read-through offsets, state, checkpoint), or two in its older files"
        )
    try:
        offsets = _map(documents[0], "offsets", lambda value, where: _int(value, where, INT64))
        checkpoint = _go_checkpoint(documents[2]) if len(documents) == 3 else pc.Checkpoint()
    except ValueError as exc:
        raise StoreError(f"state file {path} does not decode: {exc}") from exc
    for journal, offset in offsets.items():
        source = checkpoint.sources.setdefault(journal, pc.CheckpointSource())
        source.read_through = offset
    return documents[1], checkpoint


# -- writing


def _go_source(source: pc.CheckpointSource) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if source.read_through:
        out["read_through"] = source.read_through
    out["producers"] = [_go_producer(entry) for entry in source.producers] or None
    return out


def _go_producer(entry: pc.CheckpointSourceProducerEntry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if entry.id:
        out["id"] = _base64(entry.id)
    state: dict[str, int] = {}
    if entry.state is not None and entry.state.last_ack:
        state["last_ack"] = entry.state.last_ack
    if entry.state is not None and entry.state.begin:
        state["begin"] = entry.state.begin
    out["state"] = state
    return out


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _go_escaped(document: bytes) -> bytes:
    for raw, escaped in _GO_ESCAPES:
        if raw in document:
            document = document.replace(raw, escaped)
    return document


# -- reading


def _documents(data: bytes, path: Path) -> list[Any]:
    # Go's encoder (and ours) writes one document per line, never a raw
    # newline inside one: parse line by line, and only fall back to a
    # streaming parse for files laid out otherwise.
    try:
        return [orjson.loads(line) for line in data.split(b"\n") if line.strip()]
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreError(f"state file {path} is not valid JSON: {exc}") from exc
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    documents: list[Any] = []
    index = 0
    while True:
        while index < len(text) and text[index] in " \t\r\n":
            index += 1
        if index == len(text):
            return documents
        try:
            document, index = decoder.raw_decode(text, index)
        except ValueError as exc:
            raise StoreError(f"state file {path} is not valid JSON: {exc}") from exc
        documents.append(document)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode_earlier_layout(document: dict[str, Any], path: Path) -> tuple[Any, pc.Checkpoint]:
    try:
        checkpoint = pc.Checkpoint.from_dict(document["checkpoint"])
    except Exception as exc:
        raise StoreError(f"checkpoint in state file {path} does not decode: {exc}") from exc
    return document["state"], checkpoint


def _go_checkpoint(document: Any) -> pc.Checkpoint:
    fields = _struct(document, "checkpoint", ("sources", "ack_intents"))
    return pc.Checkpoint(
        sources=_map(fields.get("sources"), "checkpoint.sources", _go_source_of),
        ack_intents=_map(fields.get("ack_intents"), "checkpoint.ack_intents", _bytes),
    )


def _go_source_of(document: Any, where: str) -> pc.CheckpointSource:
    fields = _struct(document, where, ("read_through", "producers"))
    producers = fields.get("producers")
    if producers is not None and not isinstance(producers, list):
        raise ValueError(f"{where}.producers is {type(producers).__name__}, not a list")
    return pc.CheckpointSource(
        read_through=_int(fields.get("read_through"), f"{where}.read_through", INT64),
        producers=[
            _go_producer_of(entry, f"{where}.producers[{i}]")
            for i, entry in enumerate(producers or ())
        ],
    )


def _go_producer_of(document: Any, where: str) -> pc.CheckpointSourceProducerEntry:
    fields = _struct(document, where, ("id", "state"))
    state = _struct(fields.get("state"), f"{where}.state", ("last_ack", "begin"))
    return pc.CheckpointSourceProducerEntry(
        id=_bytes(fields.get("id"), f"{where}.id"),
        state=pc.CheckpointProducerState(
            last_ack=_int(state.get("last_ack"), f"{where}.state.last_ack", UINT64),
            begin=_int(state.get("begin"), f"{where}.state.begin", INT64),
        ),
    )


def _struct(document: Any, where: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The known fields of a JSON object decoded into a Go struct: an exact
    name or a case-insensitive match, later keys overriding earlier ones;
    other keys ignored."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError(f"{where} is {type(document).__name__}, not an object")
    by_fold = {name.lower(): name for name in names}
    fields: dict[str, Any] = {}
    for key, value in document.items():
        name = key if key in names else by_fold.get(key.lower())
        if name is not None:
            fields[name] = value
    return fields


def _map(document: Any, where: str, value_of: Callable[[Any, str], Any]) -> dict[str, Any]:
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError(f"{where} is {type(document).__name__}, not an object")
    return {key: value_of(value, f"{where}[{key!r}]") for key, value in document.items()}


def _int(value: Any, where: str, bounds: tuple[int, int]) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where} is {value!r}, not an integer")
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{where} is {value}, out of range [{bounds[0]}, {bounds[1]}]")
    return value


def _bytes(value: Any, where: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise ValueError(f"{where} is {type(value).__name__}, not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{where} is not standard base64: {exc}") from exc


def _first_difference(decoded: Any, original: Any, path: str) -> str | None:
    """Where `original` and its JSON round trip `decoded` first differ."""
    if type(decoded) is not type(original):
        if isinstance(original, float) and original != original:
            return f"{path} is NaN"
        if isinstance(original, bool) or isinstance(decoded, bool):
            return f"{path} is {type(original).__name__}, reads back as {type(decoded).__name__}"
        if (
            isinstance(original, int | float)
            and isinstance(decoded, int | float)
            and decoded == original
        ):
            return None  # e.g. an int subclass such as an IntEnum
        return f"{path} is {type(original).__name__}, reads back as {type(decoded).__name__}"
    if isinstance(original, dict):
        for key, value in original.items():
            if key not in decoded:
                return f"{path}[{key!r}] is lost"
            found = _first_difference(decoded[key], value, f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    if isinstance(original, list):
        if len(decoded) != len(original):
            return f"{path} changes length"
        for i, (d, o) in enumerate(zip(decoded, original, strict=True)):
            found = _first_difference(d, o, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if decoded != original:
        return f"{path} is {original!r}, reads back as {decoded!r}"
    return None
