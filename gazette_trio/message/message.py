"""What a message is: the `Message` contract, the `Envelope`, and ready-made
message types.

A journal holds only bytes; messages are what applications make of them. To
get exactly-once processing, a message must carry the UUID its publisher
assigned (see `uuids`): `get_uuid`, `set_uuid`, and `new_acknowledgement`,
which returns a fresh message of the same type for the publisher to send as
the ACK that commits a transaction. A type that cannot keep a UUID returns
None from `get_uuid`; its messages are then processed at least once.

Each framing also needs a way to turn a message into a frame and back; those
hooks are the framing's business and are documented there (`to_json` /
`from_json` for JSON lines, `__bytes__` / `parse` for fixed protobuf frames,
`to_csv_row` / `from_csv_row` for CSV). The two types here implement them:

- `JSONMessage`, a dict whose UUID lives at `_meta.uuid` (the path is a class
  attribute, `uuid_path`: set it to `("UUID",)` to read the JSON that
  Gazette's Go examples write);
- plain `dict`s are JSON messages too, with the UUID at `_meta.uuid`
  (`get_uuid`, `set_uuid` and `acknowledgement_of` work on any message);
- `CSVRecord`, a list of strings whose first column is the UUID, as
  Gazette's CSVRecord.

An `Envelope` is a decoded message with where it came from: the journal's
spec and the [begin, end) byte offsets of its frame. It also carries the
producer, clock and flags of the message's UUID as decoded, so sequencing
does not depend on the application leaving the message's UUID alone.
Envelopes are immutable `msgspec.Struct`s, not tuples: the framings build
one per message, and a Struct costs about half of a NamedTuple to build.

This module owns these contracts; reading and writing frames belong to the
framing modules, and ordering to `sequencer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Generic, Protocol, runtime_checkable

import msgspec
from typing_extensions import TypeVar

from ..protocol import protocol as pb
from .uuids import ACK_TXN, UUID, ProducerID, fields_of, fields_of_string

__all__ = [
    "JSON_UUID_PATH",
    "CSVRecord",
    "Envelope",
    "JSONMessage",
    "Message",
    "acknowledgement_of",
    "get_uuid",
    "set_uuid",
]

JSON_UUID_PATH = ("_meta", "uuid")
"""Where JSON messages keep their UUID string, by convention."""


@runtime_checkable
class Message(Protocol):
    """A message that keeps the UUID its publisher gave it."""

    def get_uuid(self) -> UUID | None:
        """The UUID set on this message, or None if it has none (or cannot keep one)."""
        ...

    def set_uuid(self, uuid: UUID) -> None:
        """Record `uuid` on this message (a no-op for types that cannot keep one)."""
        ...

    def new_acknowledgement(self, journal: str) -> Message:
        """A new message of this type, to be sent to `journal` as an ACK."""
        ...


MessageT = TypeVar("MessageT", default=Any)


class Envelope(msgspec.Struct, Generic[MessageT], frozen=True):
    """A message read from a journal, with its place there.

    Generic in the message type: `Envelope[WordDelta]` carries a
    `WordDelta` (a bare `Envelope` carries anything).

    `producer`, `clock` and `flags` are the fields of the message's UUID as
    it was decoded (a message without a UUID has the zero producer and clock).
    Fields are positional in this order, and immutable.
    """

    journal: pb.JournalSpec
    begin: int
    end: int
    message: MessageT
    producer: ProducerID
    clock: int
    flags: int

    @classmethod
    def of(
        cls, journal: pb.JournalSpec, begin: int, end: int, message: MessageT
    ) -> Envelope[MessageT]:
        """An envelope for `message`, taking the UUID fields from `message.get_uuid()`."""
        producer, clock, flags = fields_of(get_uuid(message))
        return cls(journal, begin, end, message, producer, clock, flags)

    @property
    def is_ack(self) -> bool:
        """This message is an ACK_TXN: it commits others and has no content of its own."""
        return self.flags == ACK_TXN

    def __repr__(self) -> str:
        return (
            f"Envelope({self.journal.name}@[{self.begin}, {self.end}), "
            f"producer={self.producer.hex()}, clock={self.clock}, flags={self.flags}, "
            f"message={self.message!r})"
        )


class JSONMessage(dict[str, Any]):
    """A JSON object as a message; its UUID is the string at `uuid_path`."""

    uuid_path: ClassVar[tuple[str, ...]] = JSON_UUID_PATH

    def get_uuid(self) -> UUID | None:
        return _json_uuid(self, self.uuid_path)

    def set_uuid(self, uuid: UUID) -> None:
        _set_json_uuid(self, self.uuid_path, uuid)

    def new_acknowledgement(self, journal: str) -> JSONMessage:
        ack = type(self)()
        if self.uuid_path[:1] == ("_meta",):
            ack["_meta"] = {"ack": True}
        return ack

    # JSON framing hooks.
    def to_json(self) -> Any:
        return self

    @classmethod
    def from_json(cls, doc: Any) -> JSONMessage:
        if not isinstance(doc, dict):
            raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
        return cls(doc)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


class CSVRecord(list[str]):
    """A CSV row as a message; its first column is the UUID string."""

    def get_uuid(self) -> UUID | None:
        if not self or not self[0]:
            return None
        return UUID(self[0])

    def set_uuid(self, uuid: UUID) -> None:
        if self:
            self[0] = str(uuid)
        else:
            self.append(str(uuid))

    def new_acknowledgement(self, journal: str) -> CSVRecord:
        return type(self)([""] * max(len(self), 1))

    # CSV framing hooks.
    def to_csv_row(self) -> Sequence[str]:
        return self

    @classmethod
    def from_csv_row(cls, row: list[str]) -> CSVRecord:
        if not row:
            raise ValueError("fields are empty")
        fields_of_string(row[0])  # The first column must be a UUID.
        return cls(row)


def _json_uuid(doc: dict[str, Any], path: tuple[str, ...]) -> UUID | None:
    node: Any = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if not isinstance(node, str):
        raise ValueError(f"{'.'.join(path)} is not a UUID string: {node!r}")
    return UUID(node)


def _set_json_uuid(doc: dict[str, Any], path: tuple[str, ...], uuid: UUID) -> None:
    node = doc
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = str(uuid)


def get_uuid(message: Any) -> UUID | None:
    """The UUID of a message: `message.get_uuid()`, or `_meta.uuid` of a plain dict."""
    if type(message) is dict:
        return _json_uuid(message, JSON_UUID_PATH)
    uuid: UUID | None = message.get_uuid()
    return uuid


def set_uuid(message: Any, uuid: UUID) -> None:
    """Set the UUID of a message (`_meta.uuid` of a plain dict)."""
    if type(message) is dict:
        _set_json_uuid(message, JSON_UUID_PATH, uuid)
    else:
        message.set_uuid(uuid)


def acknowledgement_of(message: Any, journal: str) -> Any:
    """A new ACK message of the same type as `message`, for `journal`."""
    if type(message) is dict:
        return {"_meta": {"ack": True}}
    return message.new_acknowledgement(journal)
