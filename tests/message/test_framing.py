"""Framings: Gazette's frame bytes, exact offsets, and loud errors on bad input.

Golden frames come from Gazette's framing tests (fixed_framing_test.go,
json_framing_test.go, csv_framing_test.go).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gazette_trio.message import (
    CSV,
    JSON_LINES,
    PROTO_FIXED,
    CSVRecord,
    DesyncError,
    Envelope,
    FramingError,
    JSONMessage,
    build_uuid,
    framing_by_content_type,
    framing_for,
)
from gazette_trio.protocol import protocol as pb

PRODUCER = bytes.fromhex("010203040506")


def spec(content_type: str, name: str = "test/journal") -> pb.JournalSpec:
    return pb.JournalSpec(
        name=name, labels=pb.LabelSet(labels=[pb.Label(name="content-type", value=content_type)])
    )


class Text:
    """A 'protobuf' message whose encoding is its text, like upstream's frameablestring."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __bytes__(self) -> bytes:
        return self.text.encode()

    @classmethod
    def parse(cls, data: bytes) -> Text:
        return cls(data.decode())

    def get_uuid(self) -> None:
        return None


FRAME = bytes([0x66, 0x33, 0x93, 0x36, 0x14, 0, 0, 0]) + b"test message content"


def decode_all(decoder: Any, content: bytes, offset: int = 0) -> list[Envelope]:
    decoder.feed(offset, content)
    decoded = decoder.decode()
    assert decoded.error is None
    return decoded.envelopes


# -- selection by content-type


def test_framing_is_chosen_by_content_type_label() -> None:
    for content_type in (JSON_LINES, PROTO_FIXED, CSV):
        assert framing_for(spec(content_type)).content_type == content_type


def test_unknown_or_missing_content_type_is_an_error_naming_the_journal() -> None:
    with pytest.raises(ValueError, match=r"test/journal.*application/x-nope"):
        framing_for(spec("application/x-nope"))
    with pytest.raises(ValueError, match=r"test/journal.*exactly one 'content-type'"):
        framing_for(pb.JournalSpec(name="test/journal"))


# -- fixed protobuf framing


def test_fixed_frame_golden_bytes() -> None:
    """Upstream TestFixedFramingMarshalWithFixtures, appended frames included."""
    framing = framing_by_content_type(PROTO_FIXED)
    assert framing.marshal(Text("test message content")) == FRAME
    assert (
        framing.marshal(Text("foo message"))
        == bytes([0x66, 0x33, 0x93, 0x36, 0x0B, 0, 0, 0]) + b"foo message"
    )
    assert framing.marshal(Text("foo")) == b"\x66\x33\x93\x36\x03\x00\x00\x00foo"


def test_fixed_frame_of_a_real_protobuf_message() -> None:
    """A betterproto2 message is framed with its exact protobuf encoding."""
    framing = framing_by_content_type(PROTO_FIXED)
    message = pb.Label(name="a", value="b")
    # Label: field 1 "a" (0a 01 61), field 2 "b" (12 01 62).
    assert framing.marshal(message) == b"\x66\x33\x93\x36\x06\x00\x00\x00\x0a\x01a\x12\x01b"


def test_fixed_frame_decodes_with_exact_offsets() -> None:
    decoder = framing_by_content_type(PROTO_FIXED).decoder(spec(PROTO_FIXED), Text, 100)
    envelopes = decode_all(decoder, FRAME + FRAME[:5], offset=100)
    assert [(e.begin, e.end, e.message.text) for e in envelopes] == [
        (100, 128, "test message content")
    ]
    assert decoder.offset == 128 and decoder.buffered == 5


def test_fixed_framing_tolerates_one_trailing_newline() -> None:
    """Upstream TestFixedFramingDecodeTrailingNewLine."""
    decoder = framing_by_content_type(PROTO_FIXED).decoder(spec(PROTO_FIXED), Text, 0)
    assert len(decode_all(decoder, FRAME + b"\n")) == 1
    assert decoder.finish() is None


@pytest.mark.parametrize(
    ("cut", "offset"),
    [(7, 3), (8, 3), (19, 3)],  # inside the header, just after it, inside the payload
)
def test_truncated_fixed_frame_is_an_error_naming_journal_and_offset(cut: int, offset: int) -> None:
    """Upstream TestFixedFramingIncompleteBufferHandling: a read that ends
    inside a frame reports it at the frame's offset."""
    decoder = framing_by_content_type(PROTO_FIXED).decoder(spec(PROTO_FIXED), Text, 3)
    assert decode_all(decoder, FRAME[:cut], offset=3) == []
    error = decoder.finish()
    assert isinstance(error, FramingError)
    assert (error.journal, error.offset) == ("test/journal", offset)
    assert "incomplete frame" in str(error) and "test/journal" in str(error)


def test_garbage_before_a_frame_is_reported_then_skipped() -> None:
    """Upstream TestFixedFramingDesyncDetection: 'foobar' then a frame. The
    garbage is a DesyncError at its offset; decoding again resumes at the
    next magic word and reads the frame."""
    decoder = framing_by_content_type(PROTO_FIXED).decoder(spec(PROTO_FIXED), Text, 50)
    decoder.feed(50, b"foobar" + FRAME)
    first = decoder.decode()
    assert first.envelopes == []
    assert isinstance(first.error, DesyncError)
    assert (first.error.journal, first.error.offset, first.error.length) == ("test/journal", 50, 6)
    second = decoder.decode()
    assert second.error is None
    assert [(e.begin, e.end, e.message.text) for e in second.envelopes] == [
        (56, 84, "test message content")
    ]


def test_garbage_between_frames_keeps_the_frames_before_it() -> None:
    decoder = framing_by_content_type(PROTO_FIXED).decoder(spec(PROTO_FIXED), Text, 0)
    decoder.feed(0, FRAME + b"x" * 21 + FRAME)
    first = decoder.decode()
    assert [e.begin for e in first.envelopes] == [0]
    assert isinstance(first.error, DesyncError) and first.error.offset == 28
    assert first.error.length == 21
    assert [e.begin for e in decoder.decode().envelopes] == [49]


def test_garbage_without_a_magic_word_keeps_a_possible_word_prefix() -> None:
    """With no magic word in sight, all but the last three bytes are skipped
    (they may begin a word completed by the next chunk), as Gazette does."""
    decoder = framing_by_content_type(PROTO_FIXED).decoder(spec(PROTO_FIXED), Text, 0)
    decoder.feed(0, b"garbage!" + FRAME[:3])
    error = decoder.decode().error
    assert isinstance(error, DesyncError) and (error.offset, error.length) == (0, 8)
    decoder.feed(11, FRAME[3:])
    assert [(e.begin, e.message.text) for e in decoder.decode().envelopes] == [
        (8, "test message content")
    ]


def test_unparseable_fixed_payload_names_its_offset() -> None:
    class Broken(Text):
        @classmethod
        def parse(cls, data: bytes) -> Broken:
            raise ValueError("error!")

    decoder = framing_by_content_type(PROTO_FIXED).decoder(spec(PROTO_FIXED), Broken, 0)
    decoder.feed(0, FRAME + FRAME)
    decoded = decoder.decode()
    assert decoded.envelopes == []
    assert decoded.error is not None and decoded.error.offset == 0
    assert "error!" in str(decoded.error)
    assert decoder.decode().error.offset == 28  # type: ignore[union-attr]


# -- JSON lines


def test_json_frame_golden_bytes() -> None:
    """Compact JSON, one document per line, as Go's encoder writes it. The
    UUID string is the golden one of test_uuids with flags CONTINUE_TXN:
    bytes 8-9 are 0x8000 | 2 << 10 | 1 = 0x8801."""
    framing = framing_by_content_type(JSON_LINES)
    uuid = build_uuid(PRODUCER, 2205855587517003794, 1)
    message = JSONMessage({"A": 42, "B": "the answer"})
    message.set_uuid(uuid)
    assert framing.marshal(message) == (
        b'{"A":42,"B":"the answer","_meta":{"uuid":"83fc2f81-cc5f-11e9-8801-010203040506"}}\n'
    )
    assert framing.marshal({"Bar": 63}) == b'{"Bar":63}\n'


@pytest.mark.parametrize("message_type", [dict, JSONMessage])
def test_json_lines_decode_with_exact_offsets_and_uuid_fields(message_type: type) -> None:
    uuid = build_uuid(PRODUCER, 12345, 1)
    line1 = b'{"A":42,"_meta":{"uuid":"' + str(uuid).encode() + b'"}}\n'
    line2 = b'{"B":"no uuid"}\n'
    decoder = framing_by_content_type(JSON_LINES).decoder(spec(JSON_LINES), message_type, 7)
    envelopes = decode_all(decoder, line1 + line2 + b'{"partial', offset=7)
    assert [(e.begin, e.end) for e in envelopes] == [
        (7, 7 + len(line1)),
        (7 + len(line1), 7 + len(line1) + len(line2)),
    ]
    first, second = envelopes
    assert type(first.message) is message_type and first.message["A"] == 42
    assert (first.producer, first.clock, first.flags) == (PRODUCER, 12345, 1)
    assert (second.clock, second.flags) == (0, 0)  # no UUID: at-least-once
    assert decoder.buffered == len(b'{"partial')


def test_json_message_subclass_with_gazette_go_uuid_field() -> None:
    """Gazette's Go examples keep the UUID in a top-level "UUID" field."""

    class GoMessage(JSONMessage):
        uuid_path = ("UUID",)

    uuid = build_uuid(PRODUCER, 99, 2)
    line = b'{"UUID":"' + str(uuid).encode() + b'","SeqNo":3}\n'
    decoder = framing_by_content_type(JSON_LINES).decoder(spec(JSON_LINES), GoMessage, 0)
    (env,) = decode_all(decoder, line)
    assert env.message.get_uuid() == uuid and (env.clock, env.flags) == (99, 2)


def test_malformed_json_line_is_an_error_naming_journal_and_offset() -> None:
    """Upstream TestJSONFramingMessageDecodeError: the bad line is consumed,
    the lines before it are delivered, and decoding continues after it."""
    good = b'{"A":1}\n'
    bad = b'{"A":42,"B":"missing quote but including newline}\n'
    decoder = framing_by_content_type(JSON_LINES).decoder(spec(JSON_LINES), dict, 1000)
    decoder.feed(1000, good + bad + good)
    first = decoder.decode()
    assert [e.begin for e in first.envelopes] == [1000]
    assert first.error is not None
    assert (first.error.journal, first.error.offset) == ("test/journal", 1000 + len(good))
    assert "malformed JSON" in str(first.error) and "test/journal" in str(first.error)
    second = decoder.decode()
    assert second.error is None and [e.begin for e in second.envelopes] == [
        1000 + len(good) + len(bad)
    ]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"[1, 2]\n", "expected a JSON object"),
        (b'{"_meta":{"uuid":"not-a-uuid"}}\n', "not a UUID"),
        (b'{"_meta":{"uuid":7}}\n', "not a UUID string"),
        (b"\n", "malformed JSON"),
    ],
)
def test_json_documents_that_are_not_messages_are_errors(line: bytes, why: str) -> None:
    decoder = framing_by_content_type(JSON_LINES).decoder(spec(JSON_LINES), dict, 5)
    decoder.feed(5, line)
    decoded = decoder.decode()
    assert decoded.envelopes == [] and decoded.error is not None
    assert decoded.error.offset == 5 and why in str(decoded.error)


def test_json_line_missing_its_newline_at_end_of_read_is_truncated() -> None:
    """Upstream TestJSONFramingUnexpectedEOF."""
    decoder = framing_by_content_type(JSON_LINES).decoder(spec(JSON_LINES), dict, 0)
    assert decode_all(decoder, b'{"A":42,"B":"missing trailing newline"}') == []
    error = decoder.finish()
    assert error is not None and error.offset == 0


def uuid_line(uuid: str, end: bytes = b"\n") -> bytes:
    return b'{"_meta":{"uuid":"' + uuid.encode() + b'"}}' + end


def drain(decoder: Any) -> list[tuple[str, int, int, Any, bytes, int, int] | tuple[str, int, str]]:
    """Everything a decoder yields for what it was fed, errors included, in
    order: ("ok", begin, end, message as a dict, producer, clock, flags) or
    ("error", offset, reason)."""
    out: list[Any] = []
    while True:
        decoded = decoder.decode()
        for e in decoded.envelopes:
            out.append(("ok", e.begin, e.end, dict(e.message), e.producer, e.clock, e.flags))
        if decoded.error is None:
            return out
        out.append(("error", decoded.error.offset, decoded.error.reason))


class FramePerFrame(JSONMessage):
    """A JSONMessage whose own from_json makes the decoder take every frame
    alone: the reference the whole-chunk path must agree with."""

    @classmethod
    def from_json(cls, doc: Any) -> FramePerFrame:
        return cls(super().from_json(doc))


def test_uuids_that_only_add_up_to_canonical_ones_are_errors_at_their_lines() -> None:
    """Lines whose UUIDs are 35 and 37 characters long, and would read as two
    good UUIDs run together, are each an error at its own offset."""
    first = str(build_uuid(PRODUCER, 10, 1))
    second = str(build_uuid(PRODUCER, 11, 1))
    good = uuid_line(str(build_uuid(PRODUCER, 9, 1)))
    short = uuid_line(first[:-1])
    long = uuid_line(first[-1] + second)
    decoder = framing_by_content_type(JSON_LINES).decoder(spec(JSON_LINES), dict, 0)
    decoder.feed(0, good + short + long + good)
    out = drain(decoder)
    assert [item[:2] for item in out] == [
        ("ok", 0),
        ("error", len(good)),
        ("error", len(good) + len(short)),
        ("ok", len(good) + len(short) + len(long)),
    ]
    assert all("not a UUID" in str(item[2]) for item in out if item[0] == "error")


def test_json_lines_ending_in_crlf_keep_the_carriage_return_in_their_frame() -> None:
    lines = [uuid_line(str(build_uuid(PRODUCER, clock, 1)), b"\r\n") for clock in (1, 2)]
    decoder = framing_by_content_type(JSON_LINES).decoder(spec(JSON_LINES), dict, 3)
    envelopes = decode_all(decoder, b"".join(lines), offset=3)
    assert [(e.begin, e.end, e.clock) for e in envelopes] == [
        (3, 3 + len(lines[0]), 1),
        (3 + len(lines[0]), 3 + len(lines[0]) + len(lines[1]), 2),
    ]


_GOOD_UUIDS = [str(build_uuid(PRODUCER, clock, clock % 3)) for clock in range(1, 6)]
_json_lines = st.one_of(
    st.sampled_from(_GOOD_UUIDS).map(uuid_line),
    st.sampled_from(_GOOD_UUIDS).map(lambda u: uuid_line(u.upper(), b" \r\n")),
    st.sampled_from(_GOOD_UUIDS).map(lambda u: uuid_line("{" + u + "}")),
    st.sampled_from(_GOOD_UUIDS).map(lambda u: uuid_line(u[:-1])),
    st.sampled_from(_GOOD_UUIDS).map(lambda u: uuid_line(u[-1] + u)),
    st.sampled_from(_GOOD_UUIDS).map(
        lambda u: b'\r{"n":1,\r"_meta":{"uuid":"' + u.encode() + b'"}}\n'
    ),
    st.sampled_from(
        [b'{"A":1}\n', b"[1]\n", b"\n", b'{"_meta":{"uuid":7}}\n', b'{"_meta":{"u', b'{"x":"\r"}\n']
    ),
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(_json_lines, min_size=1, max_size=12))
def test_whole_chunk_decoding_agrees_with_decoding_frame_by_frame(lines: list[bytes]) -> None:
    """Whatever the lines (good UUIDs, non-canonical ones, strings that only
    add up to UUIDs, carriage returns, no UUID, bad JSON, not objects), the
    whole-chunk path yields the same envelopes and errors, at the same
    offsets, as taking each frame alone."""
    content = b"".join(lines)
    framing = framing_by_content_type(JSON_LINES)
    outputs = []
    for message_type in (dict, FramePerFrame):
        decoder = framing.decoder(spec(JSON_LINES), message_type, 11)
        decoder.feed(11, content)
        outputs.append(drain(decoder))
    assert outputs[0] == outputs[1]


def test_offset_jump_under_a_partial_frame_is_reported() -> None:
    """Content removed from the journal under a half-read frame cannot be
    framed: the fragment is reported, and reading goes on at the new offset."""
    decoder = framing_by_content_type(JSON_LINES).decoder(spec(JSON_LINES), dict, 0)
    decoder.feed(0, b'{"A":1}\n{"A":')
    assert len(decoder.decode().envelopes) == 1
    decoder.feed(500, b'{"B":2}\n')
    jumped = decoder.decode()
    assert jumped.error is not None and jumped.error.offset == 8
    assert "offset jump to 500" in str(jumped.error)
    assert [(e.begin, e.message) for e in decoder.decode().envelopes] == [(500, {"B": 2})]


def test_offset_jump_on_a_frame_boundary_is_not_an_error() -> None:
    decoder = framing_by_content_type(JSON_LINES).decoder(spec(JSON_LINES), dict, 0)
    assert len(decode_all(decoder, b'{"A":1}\n')) == 1
    assert [e.begin for e in decode_all(decoder, b'{"B":2}\n', offset=90)] == [90]


def test_content_overlapping_what_was_fed_is_refused() -> None:
    decoder = framing_by_content_type(JSON_LINES).decoder(spec(JSON_LINES), dict, 0)
    decoder.feed(0, b'{"A":1}\n')
    with pytest.raises(ValueError, match="overlaps"):
        decoder.feed(4, b"xx")


@settings(max_examples=60, deadline=None)
@given(
    docs=st.lists(
        st.dictionaries(
            st.text(max_size=5), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8), max_size=3
        ),
        min_size=1,
        max_size=20,
    ),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_json_chunk_boundaries_do_not_change_what_is_decoded(
    docs: list[dict[str, Any]], cuts: list[int]
) -> None:
    """However content is cut into chunks, the same envelopes come out."""
    framing = framing_by_content_type(JSON_LINES)
    content = b"".join(framing.marshal(doc) for doc in docs)
    points = sorted({min(c, len(content)) for c in cuts} | {0, len(content)})
    decoder = framing.decoder(spec(JSON_LINES), dict, 0)
    envelopes: list[Envelope] = []
    for start, stop in itertools.pairwise(points):
        envelopes.extend(decode_all(decoder, content[start:stop], offset=start))
    assert decoder.finish() is None
    assert [e.message for e in envelopes] == docs
    assert [e.end for e in envelopes[:-1]] == [e.begin for e in envelopes[1:]]
    assert envelopes[-1].end == len(content)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(max_size=30), min_size=1, max_size=10), cut=st.integers(0, 500))
def test_fixed_chunk_boundaries_do_not_change_what_is_decoded(texts: list[str], cut: int) -> None:
    framing = framing_by_content_type(PROTO_FIXED)
    content = b"".join(framing.marshal(Text(t)) for t in texts)
    cut = min(cut, len(content))
    decoder = framing.decoder(spec(PROTO_FIXED), Text, 0)
    envelopes = decode_all(decoder, content[:cut]) + decode_all(decoder, content[cut:], cut)
    assert [e.message.text for e in envelopes] == texts
    assert decoder.finish() is None


# -- CSV


def test_csv_frames_quote_as_go_does() -> None:
    """Upstream TestCSVFramingMarshalWithFixtures."""
    framing = framing_by_content_type(CSV)
    uuid = str(build_uuid(PRODUCER, 5, 0))
    assert (
        framing.marshal(CSVRecord([uuid, "123", 'qu"ote'])) == (uuid + ',123,"qu""ote"\n').encode()
    )
    assert framing.marshal(CSVRecord([uuid, "567,891"])) == (uuid + ',"567,891"\n').encode()
    assert (
        framing.marshal(CSVRecord([uuid, " lead", "", "a\nb"]))
        == (uuid + '," lead",,"a\nb"\n').encode()
    )


def test_csv_records_decode_with_quoted_newlines() -> None:
    framing = framing_by_content_type(CSV)
    uuid = str(build_uuid(PRODUCER, 5, 1))
    content = framing.marshal(CSVRecord([uuid, "a\nb"])) + framing.marshal(CSVRecord([uuid, "c"]))
    decoder = framing.decoder(spec(CSV), CSVRecord, 0)
    envelopes = decode_all(decoder, content)
    assert [list(e.message) for e in envelopes] == [[uuid, "a\nb"], [uuid, "c"]]
    assert envelopes[0].clock == 5 and envelopes[1].begin == envelopes[0].end


def test_csv_record_with_a_different_width_is_an_error() -> None:
    """Upstream TestCSVFramingErrorsIfFieldsChange."""
    uuid = str(build_uuid(PRODUCER, 5, 0))
    first = (uuid + ",foo,bar\n").encode()
    decoder = framing_by_content_type(CSV).decoder(spec(CSV), CSVRecord, 0)
    decoder.feed(0, first + (uuid + ",baz\n").encode())
    decoded = decoder.decode()
    assert len(decoded.envelopes) == 1
    assert decoded.error is not None and decoded.error.offset == len(first)
    assert "wrong number of fields" in str(decoded.error)


def test_csv_record_without_a_uuid_first_is_an_error() -> None:
    """Upstream TestCSVFramingDecodeError."""
    decoder = framing_by_content_type(CSV).decoder(spec(CSV), CSVRecord, 0)
    decoder.feed(0, b"not-a-uuid, bar, baz\n")
    decoded = decoder.decode()
    assert decoded.error is not None and decoded.error.offset == 0
    assert "badly formed" in str(decoded.error)
