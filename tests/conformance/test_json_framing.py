"""Upstream: message/json_framing_test.go (go.gazette.dev/core v0.103.0).

Newline-delimited JSON frames, against `gazette_trio.message.json_framing`.
Gazette's framings marshal to a `bufio.Writer` and unmarshal from a
`bufio.Reader` one message per call; ours marshal a message to one frame and
decode journal content with a `FrameDecoder` (what Gazette's EOF,
ErrUnexpectedEOF and consumed-bytes checks observe is the decoder's
`finish()`, its error, and what it leaves buffered).

Cases that apply in part:
- TestJSONFramingMarshalWithFixtures: Go's struct has an unexported field
  that encoding/json skips; a Python message is a dict (or `to_json()`), which
  has no unexported fields. The bytes are checked.
- TestJSONFramingMarshalError: Go's message names its encoder's type
  (`json: unsupported type: chan struct {}`); ours is orjson's TypeError,
  naming the Python type.
- TestJSONFrameable: Go's `MarshalJSONTo` writes raw bytes of its own (with
  spaces); ours (`to_json`/`from_json`) hands a value to the encoder, so the
  frame is compact. The round trip through a custom mapping is checked.
"""

from __future__ import annotations

from typing import Any

import pytest

from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.message import JSON_LINES, FramingError, framing_by_content_type
from gazette_trio.message.framing import FrameDecoder

UPSTREAM = "message/json_framing_test.go"
NOT_APPLICABLE: dict[str, str] = {}

SPEC = new_journal_spec("conformance/json", content_type=JSON_LINES)


def decoder(message_type: Any = dict) -> FrameDecoder:
    return framing_by_content_type(JSON_LINES).decoder(SPEC, message_type, 0)


def test_json_framing_marshal_with_fixtures() -> None:
    f = framing_by_content_type(JSON_LINES)
    out = f.marshal({"A": 42, "B": "the answer"})
    assert out == b'{"A":42,"B":"the answer"}\n'
    # Another message follows.
    out += f.marshal({"Bar": 63})
    assert out == b'{"A":42,"B":"the answer"}\n{"Bar":63}\n'


def test_json_framing_marshal_error() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        framing_by_content_type(JSON_LINES).marshal({"Unencodable": object()})


def test_json_framing_decode_with_fixture() -> None:
    d = decoder()
    d.feed(0, b'{"A":42,"B":"test message content"}\n')
    decoded = d.decode()
    assert decoded.error is None
    assert [e.message["B"] for e in decoded.envelopes] == ["test message content"]
    # At a message boundary the content simply ends.
    assert d.decode().envelopes == [] and d.finish() is None


def test_json_framing_unexpected_eof() -> None:
    d = decoder()
    d.feed(0, b'{"A":42,"B":"missing trailing newline"}')
    assert d.decode().envelopes == []
    error = d.finish()
    assert isinstance(error, FramingError) and "unexpected end of content" in str(error)


def test_json_framing_message_decode_error() -> None:
    d = decoder()
    line = b'{"A":42,"B":"missing quote but including newline}\n'
    d.feed(0, line + b"extra")
    decoded = d.decode()
    assert decoded.envelopes == []
    assert decoded.error is not None and decoded.error.offset == 0
    assert "malformed JSON line" in str(decoded.error)
    # Exactly the bad frame was consumed: "extra" is what is left.
    assert d.offset == len(line) and d.buffered == len(b"extra")


class TestStruct:
    """A message with its own JSON mapping (upstream's TestStruct)."""

    __test__ = False  # not a pytest class

    def __init__(self, a_field: str, another_field: int) -> None:
        self.a_field, self.another_field = a_field, another_field

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a_field, "b": self.another_field}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TestStruct:
        return cls(doc["a"], int(doc["b"]))

    def get_uuid(self) -> None:
        return None


def test_json_frameable() -> None:
    m = TestStruct("hello, world!", 42)
    frame = framing_by_content_type(JSON_LINES).marshal(m)
    assert frame == b'{"a":"hello, world!","b":42}\n'
    d = decoder(TestStruct)
    d.feed(0, frame)
    (envelope,) = d.decode().envelopes
    assert vars(envelope.message) == vars(m)
