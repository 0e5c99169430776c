"""Upstream: message/fixed_framing_test.go (go.gazette.dev/core v0.103.0).

Gazette's fixed protobuf frames, against `gazette_trio.message.fixed_framing`.
Upstream's `frameablestring` (a message whose encoding is its text) is
`Text` here. Gazette unmarshals one frame per call from a `bufio.Reader`;
ours feeds journal content to a `FrameDecoder` (EOF is `finish()` returning
None, an unexpected EOF is `finish()` returning a `FramingError`, and what a
frame consumed shows in the decoder's offset and buffered bytes).

Cases that apply in part:
- TestFixedFramingEncodeWithFixtures: the appending into a caller's buffer
  without reallocation is Go memory management; the frame bytes are checked.
- TestFixedFramingDecodingError: Go's failing Unmarshal also leaves half a
  message behind in the struct; ours reports the error, naming the offset,
  and consumes the frame.
- TestFixedFramingIncompleteBufferHandling: the wording of Go's errors
  (`Peek(FixedFrameHeaderLength): unexpected EOF`, `reading frame (size 28):
  unexpected EOF`) is bufio's; ours says "unexpected end of content" with the
  journal and offset.
- TestFixedFramingUnderflowReadingDesyncHeader: upstream returns the 21
  de-synchronized bytes as 13 + 8 because its reader's buffer is 16 bytes;
  ours sees all buffered content, so the same 21 bytes are skipped and
  reported (in as many DesyncErrors as it takes), then the frame decodes.
"""

from __future__ import annotations

import pytest

from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.message import PROTO_FIXED, DesyncError, FramingError, framing_by_content_type
from gazette_trio.message.fixed_framing import encode_fixed_frame
from gazette_trio.message.framing import FrameDecoder

UPSTREAM = "message/fixed_framing_test.go"
NOT_APPLICABLE: dict[str, str] = {}

SPEC = new_journal_spec("conformance/fixed", content_type=PROTO_FIXED)
WORD = bytes([0x66, 0x33, 0x93, 0x36])
FRAME = WORD + bytes([0x14, 0, 0, 0]) + b"test message content"


class Text:
    def __init__(self, text: str) -> None:
        self.text = text

    def __bytes__(self) -> bytes:
        return self.text.encode()

    @classmethod
    def parse(cls, data: bytes) -> Text:
        return cls(data.decode())

    def get_uuid(self) -> None:
        return None


class Failing(Text):
    """Fails to marshal and to unmarshal (upstream's frameableerror)."""

    def __bytes__(self) -> bytes:
        raise ValueError("error!")

    @classmethod
    def parse(cls, data: bytes) -> Text:
        raise ValueError("error!")


def decoder(message_type: type = Text) -> FrameDecoder:
    return framing_by_content_type(PROTO_FIXED).decoder(SPEC, message_type, 0)


def texts(d: FrameDecoder) -> list[str]:
    decoded = d.decode()
    assert decoded.error is None
    return [e.message.text for e in decoded.envelopes]


def test_fixed_framing_marshal_with_fixtures() -> None:
    f = framing_by_content_type(PROTO_FIXED)
    out = f.marshal(Text("test message content"))
    assert out == FRAME
    out += f.marshal(Text("foo message"))
    assert out == FRAME + WORD + bytes([0x0B, 0, 0, 0]) + b"foo message"


def test_fixed_framing_marshal_error() -> None:
    with pytest.raises(ValueError, match=r"^error!$"):
        framing_by_content_type(PROTO_FIXED).marshal(Failing("test message"))


def test_fixed_framing_encode_with_fixtures() -> None:
    foo = encode_fixed_frame(b"foo")
    assert foo == WORD + bytes([3, 0, 0, 0]) + b"foo"
    assert foo + encode_fixed_frame(b"bar") == (
        WORD + bytes([3, 0, 0, 0]) + b"foo" + WORD + bytes([3, 0, 0, 0]) + b"bar"
    )
    assert encode_fixed_frame(b"baz") == WORD + bytes([3, 0, 0, 0]) + b"baz"


def test_fixed_framing_decode_with_fixture() -> None:
    d = decoder()
    d.feed(0, FRAME + b"extra")
    assert texts(d) == ["test message content"]
    # Exactly the frame was consumed.
    assert d.offset == len(FRAME) and d.buffered == len(b"extra")


def test_fixed_framing_decoding_error() -> None:
    d = decoder(Failing)
    d.feed(0, FRAME)
    decoded = d.decode()
    assert decoded.envelopes == []
    assert isinstance(decoded.error, FramingError) and decoded.error.offset == 0
    assert "error!" in str(decoded.error)
    assert d.offset == len(FRAME)


def test_fixed_framing_decode_trailing_new_line() -> None:
    d = decoder()
    d.feed(0, FRAME + b"\n")
    assert texts(d) == ["test message content"]
    # The newline is left, and ending there is a clean end.
    assert d.offset == len(FRAME) and d.buffered == 1
    assert d.finish() is None


def test_fixed_framing_desync_detection() -> None:
    d = decoder()
    d.feed(0, b"foobar" + FRAME)
    decoded = d.decode()
    # The leading bad range is reported first...
    assert isinstance(decoded.error, DesyncError)
    assert (decoded.error.offset, decoded.error.length) == (0, 6)
    # ...and the next frame then decodes.
    assert texts(d) == ["test message content"]


def test_fixed_framing_incomplete_buffer_handling() -> None:
    fixture = b"foo" + FRAME

    def finish_of(content: bytes) -> FramingError | None:
        d = decoder()
        d.feed(0, content)
        decoded = d.decode()
        assert decoded.error is None and decoded.envelopes == []
        return d.finish()

    # Ends at the first byte: a clean end.
    assert finish_of(fixture[3:3]) is None
    # Ends inside the header, inside a de-synchronized header, just after the
    # header, inside the message: all unexpected.
    for cut in (fixture[3:10], fixture[0:7], fixture[3:11], fixture[3:22]):
        error = finish_of(cut)
        assert error is not None and "unexpected end of content" in str(error), cut
    # The whole message.
    d = decoder()
    d.feed(0, fixture[3:])
    assert texts(d) == ["test message content"]


def test_fixed_framing_underflow_reading_desync_header() -> None:
    fixture = b"x" * (13 + 8) + FRAME
    d = decoder()
    d.feed(0, fixture)
    skipped = 0
    while True:
        decoded = d.decode()
        if decoded.error is None:
            break
        assert isinstance(decoded.error, DesyncError)
        assert decoded.error.offset == skipped
        skipped += decoded.error.length
    assert skipped == 13 + 8
    assert [e.message.text for e in decoded.envelopes] == ["test message content"]
    assert (decoded.envelopes[0].begin, decoded.envelopes[0].end) == (21, 21 + len(FRAME))
