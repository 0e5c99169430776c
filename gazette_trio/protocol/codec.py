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
from typing import Any

from grpclib.encoding.base import CodecBase

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
        return message_type.parse(data)


CODEC = GazetteCodec()
