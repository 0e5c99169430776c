"""Upstream: message/csv_framing_test.go (go.gazette.dev/core v0.103.0).

CSV frames, against `gazette_trio.message.csv_framing` and `CSVRecord`.
Gazette decodes with Go's `csv.Reader`; ours with a `FrameDecoder` (see
tests/conformance/test_json_framing.py for how EOF maps).

Cases that apply in part:
- TestCSVFramingErrorsIfFieldsChange: Go's message names the record's line
  (`record on line 2: wrong number of fields`); ours names the journal
  offset of the record and says "wrong number of fields".
- TestCSVFramingDecodeError: Go's message is github.com/google/uuid's
  (`invalid UUID length: 10`); ours is a FramingError at the record's offset
  naming the bad UUID.
"""

from __future__ import annotations

import uuid

from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.message import CSV, CSVRecord, framing_by_content_type
from gazette_trio.message.framing import FrameDecoder

UPSTREAM = "message/csv_framing_test.go"
NOT_APPLICABLE: dict[str, str] = {}

SPEC = new_journal_spec("conformance/csv", content_type=CSV)


def decoder() -> FrameDecoder:
    return framing_by_content_type(CSV).decoder(SPEC, CSVRecord, 0)


def test_csv_framing_marshal_with_fixtures() -> None:
    f = framing_by_content_type(CSV)
    u = str(uuid.uuid4())
    # Quotes are escaped the way encoding/csv does.
    out = f.marshal(CSVRecord([u, "123", 'qu"ote']))
    assert out == (u + ',123,"qu""ote"\n').encode()
    out += f.marshal(CSVRecord([u, "567,891"]))
    assert out == (u + ',123,"qu""ote"\n' + u + ',"567,891"\n').encode()


def test_csv_framing_decode_with_fixture() -> None:
    u = str(uuid.uuid4())
    d = decoder()
    d.feed(0, (u + ",bar,baz\n").encode())
    decoded = d.decode()
    assert decoded.error is None
    assert [list(e.message) for e in decoded.envelopes] == [[u, "bar", "baz"]]
    # At a record boundary the content simply ends.
    assert d.finish() is None


def test_csv_framing_errors_if_fields_change() -> None:
    u = str(uuid.uuid4())
    first = (u + ",foo,bar\n").encode()
    d = decoder()
    d.feed(0, first + (u + ",baz\n").encode())
    decoded = d.decode()
    assert [list(e.message) for e in decoded.envelopes] == [[u, "foo", "bar"]]
    assert decoded.error is not None and decoded.error.offset == len(first)
    assert "wrong number of fields" in str(decoded.error)


def test_csv_framing_decode_error() -> None:
    d = decoder()
    d.feed(0, b"not-a-uuid, bar, baz\n")
    decoded = d.decode()
    assert decoded.envelopes == []
    assert decoded.error is not None and decoded.error.offset == 0
    assert "UUID" in str(decoded.error)
