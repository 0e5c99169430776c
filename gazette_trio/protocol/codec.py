"""The grpclib codec every channel and server of ours uses.

betterproto2 encodes and decodes any message, but at tens of microseconds per
message; that is fine for the control plane and too slow for the few messages
that carry journal content on hot paths (ReadResponse, AppendRequest). Those
register a specialized pair of functions here, tested byte-for-byte against
the generated classes; every other type falls through to betterproto2.

This module owns the registry and the codec. The fast functions themselves
live beside the code that needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import betterproto2
from grpclib.encoding.base import CodecBase

M = TypeVar("M")
Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]

_FAST: dict[type, tuple[Encoder, Decoder]] = {}


def register_fast(message_type: type, encode: Encoder, decode: Decoder) -> None:
    """Route `message_type` through `encode`/`decode` instead of betterproto2."""
    _FAST[message_type] = (encode, decode)


class GazetteCodec(CodecBase):  # type: ignore[misc]
    """Protobuf codec with per-type fast paths; wire-identical to `ProtoCodec`."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        if not isinstance(message, message_type):
            raise TypeError(f"message must be of type {message_type!r}, not {type(message)!r}")
        fast = _FAST.get(message_type)
        if fast is not None:
            return fast[0](message)
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> Any:
        fast = _FAST.get(message_type)
        if fast is not None:
            return fast[1](data)
        return parse_checked(message_type, data)


def parse_checked(message_type: type[M], data: bytes) -> M:
    """`message_type.parse(data)`, refusing (ValueError) wire types its
    fields cannot have. Fast decoders fall back to it."""
    check_wire_types(data, message_type)
    return message_type.parse(data)  # type: ignore[attr-defined,no-any-return]


_WIRE_TYPES: dict[str, frozenset[int]] = {}
for _types, _wire in (
    (betterproto2.WIRE_VARINT_TYPES, betterproto2.WIRE_VARINT),
    (betterproto2.WIRE_FIXED_32_TYPES, betterproto2.WIRE_FIXED_32),
    (betterproto2.WIRE_FIXED_64_TYPES, betterproto2.WIRE_FIXED_64),
    (betterproto2.WIRE_LEN_DELIM_TYPES, betterproto2.WIRE_LEN_DELIM),
):
    for _type in _types:
        _WIRE_TYPES[_type] = frozenset({_wire})
for _type in betterproto2.PACKED_TYPES:
    _WIRE_TYPES[_type] = _WIRE_TYPES[_type] | {betterproto2.WIRE_LEN_DELIM}
_UNPACKED: dict[str, frozenset[int]] = {
    _type: _WIRE_TYPES[_type] - {betterproto2.WIRE_LEN_DELIM} for _type in betterproto2.PACKED_TYPES
}
_NESTED = frozenset({betterproto2.TYPE_MESSAGE, betterproto2.TYPE_MAP})


def check_wire_types(data: bytes, message_type: Any, depth: int = 0) -> None:
    """Raise ValueError unless every known field of `data` has a wire type
    its declared type allows, in nested messages too.

    betterproto2 parses a mismatched field anyway, leaving an int where the
    message expects a sub-message or a string; the official runtimes refuse
    such input, and so do we, before any handler sees it.
    """
    if depth > 64:
        raise ValueError("messages nested too deeply")
    meta = getattr(message_type, "_betterproto", None)
    if meta is None:
        return  # not a betterproto2 class (etcd.wire parses its own)
    for parsed in betterproto2.parse_fields(data):
        name = meta.field_name_by_number.get(parsed.number)
        if name is None:
            continue  # unknown fields are kept, as protobuf does
        field = meta.meta_by_field_name[name]
        allowed = _WIRE_TYPES.get(field.proto_type, frozenset())
        if not field.repeated:
            # Packed encoding is for repeated fields only: on a scalar,
            # betterproto2 would store a list.
            allowed = _UNPACKED.get(field.proto_type, allowed)
        if parsed.wire_type not in allowed:
            raise ValueError(
                f"field {name} (number {parsed.number}) has wire type {parsed.wire_type}, "
                f"which a {field.proto_type} cannot have"
            )
        if field.proto_type in _NESTED and field.unwrap is None:
            check_wire_types(parsed.value, meta.cls_by_field[name], depth + 1)


CODEC = GazetteCodec()
