"""FSMHints encodings as stored in etcd, and hint validation.

Gazette's consumer stores hints as Go's `json.Marshal` of the struct (and
reads protobuf too, sniffing the leading `{`). Our JSON must be readable by
Gazette and Gazette's by us.
"""

from __future__ import annotations

import pytest

from gazette_trio.protocol.recoverylog import FnodeSegments, FsmHints, Property, Segment
from gazette_trio.recoverylog.hints import (
    HintsError,
    decode_hints,
    hints_from_json,
    hints_to_json,
    hints_to_proto,
    validate_hints,
)

HINTS = FsmHints(
    log="a/log",
    live_nodes=[
        FnodeSegments(
            fnode=3,
            segments=[
                Segment(
                    author=1234,
                    first_seq_no=3,
                    first_offset=31,
                    first_checksum=0x5CCBEEAA,
                    last_seq_no=5,
                ),
                Segment(
                    author=99,
                    first_seq_no=7,
                    first_offset=400,
                    last_seq_no=9,
                    last_offset=500,
                    log="old/log",
                ),
            ],
        )
    ],
    properties=[Property(path="/IDENTITY", content="<id & more>")],
)


def test_json_is_what_gos_encoding_json_writes() -> None:
    """Struct-tag names in field order, zero scalars omitted, nil lists as
    null, and HTML-sensitive characters escaped as Go escapes them."""
    assert hints_to_json(HINTS) == (
        b'{"log":"a/log","live_nodes":[{"fnode":3,"segments":['
        b'{"author":1234,"first_seq_no":3,"first_offset":31,"first_checksum":1556868778,"last_seq_no":5},'
        b'{"author":99,"first_seq_no":7,"first_offset":400,"last_seq_no":9,"last_offset":500,"log":"old/log"}'
        b']}],"properties":[{"path":"/IDENTITY","content":"\\u003cid \\u0026 more\\u003e"}]}'
    )
    assert (
        hints_to_json(FsmHints(log="a/log"))
        == b'{"log":"a/log","live_nodes":null,"properties":null}'
    )


def test_json_and_protobuf_values_both_decode() -> None:
    assert decode_hints(hints_to_json(HINTS)) == HINTS
    assert decode_hints(hints_to_proto(HINTS)) == HINTS
    # Go's decoder matches keys case-insensitively; protojson uses lowerCamel and string int64s.
    assert hints_from_json(
        b'{"Log":"a/log","liveNodes":[{"fnode":"3","segments":[{"author":1234,"firstSeqNo":"3"}]}]}'
    ) == FsmHints(
        log="a/log",
        live_nodes=[FnodeSegments(fnode=3, segments=[Segment(author=1234, first_seq_no=3)])],
    )


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (b"", "FSMHints value is empty"),
        (b"{not json", "FSMHints JSON"),
        (b"[1]", "FSMHints protobuf: wire type 3"),
        (
            b'{"live_nodes":[{"fnode":"x"}]}',
            r"FSMHints\.live_nodes\[0\]\.fnode: expected an integer",
        ),
        (
            b'{"live_nodes":[{"segments":[{"log":5}]}]}',
            r"live_nodes\[0\]\.segments\[0\]\.log: expected a string",
        ),
        (b'{"properties":3}', r"FSMHints\.properties: expected a list of objects"),
        (b"\xff\xff\xff", "FSMHints protobuf"),
    ],
)
def test_bad_values_are_refused_naming_the_field(value: bytes, error: str) -> None:
    with pytest.raises(HintsError, match=error):
        decode_hints(value)


def test_validation_refuses_a_segment_repeating_the_hints_log_or_invalid_segments() -> None:
    validate_hints(HINTS)
    repeated = FsmHints(
        log="a/log",
        live_nodes=[
            FnodeSegments(
                fnode=1, segments=[Segment(author=1, first_seq_no=1, last_seq_no=1, log="a/log")]
            )
        ],
    )
    with pytest.raises(HintsError, match=r"duplicates FSMHints\.Log"):
        validate_hints(repeated)
    zero_author = FsmHints(
        log="a/log",
        live_nodes=[FnodeSegments(fnode=1, segments=[Segment(first_seq_no=1, last_seq_no=1)])],
    )
    with pytest.raises(HintsError, match="Segment: Author is zero"):
        validate_hints(zero_author)
