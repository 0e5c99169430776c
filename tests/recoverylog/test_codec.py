"""RecordedOp's fast codec and Gazette's fixed framing.

The codec must produce exactly the bytes Gazette's marshaler produces (field
number order, proto3 zero omission), because the FSM checksum chain runs
over those bytes: a single differing byte forks history. Golden values come
from Gazette's recorder tests, whose frame sizes and chained checksums were
computed by Go.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gazette_trio.protocol.recoverylog import (
    Property,
    RecordedOp,
    RecordedOpCreate,
    RecordedOpLink,
    RecordedOpWrite,
)
from gazette_trio.recoverylog.checksum import crc32c_update
from gazette_trio.recoverylog.codec import (
    FRAME_HEADER_LENGTH,
    RecordedOpDecodeError,
    decode_op,
    encode_op,
    frame_length,
    frame_op,
)
from tests.official import official

AUTHOR = 1234  # Gazette's `anAuthor` fixture.

int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
uint32 = st.integers(min_value=0, max_value=2**32 - 1)
text = st.text(max_size=20)


@st.composite
def ops(draw: st.DrawFn, meta: bool = True) -> RecordedOp:
    op = RecordedOp(seq_no=draw(int64), checksum=draw(uint32), author=draw(uint32))
    kind = draw(st.sampled_from(["none", "create", "link", "unlink", "write", "property", "all"]))
    if kind in ("create", "all"):
        op.create = RecordedOpCreate(path=draw(text))
    if kind in ("link", "all"):
        op.link = RecordedOpLink(fnode=draw(int64), path=draw(text))
    if kind in ("unlink", "all"):
        op.unlink = RecordedOpLink(fnode=draw(int64), path=draw(text))
    if kind in ("write", "all"):
        op.write = RecordedOpWrite(fnode=draw(int64), offset=draw(int64), length=draw(int64))
    if kind in ("property", "all"):
        op.property = Property(path=draw(text), content=draw(text))
    if meta:
        op.first_offset, op.last_offset, op.log = draw(int64), draw(int64), draw(text)
    return op


def to_official(op: RecordedOp):  # type: ignore[no-untyped-def]
    msg = official().recoverylog.RecordedOp()
    msg.ParseFromString(bytes(op))  # betterproto2 bytes parse in any field order.
    return msg


@given(ops(meta=False))
def test_encoding_equals_betterproto2_for_ops_as_recorders_write_them(op: RecordedOp) -> None:
    """Without meta-fields (never written to a log), our bytes and
    betterproto2's are identical."""
    assert encode_op(op) == bytes(op)


@given(ops())
def test_encoding_equals_the_official_runtime_in_field_number_order(op: RecordedOp) -> None:
    """With every field set, our bytes equal the official runtime's
    deterministic serialization, which (like gogo) orders by field number."""
    assert encode_op(op) == to_official(op).SerializeToString(deterministic=True)


@given(ops())
def test_decoding_inverts_encoding_and_reads_betterproto2_bytes(op: RecordedOp) -> None:
    assert decode_op(encode_op(op)) == op
    assert decode_op(bytes(op)) == op


def test_an_empty_submessage_is_kept_and_a_no_op_is_empty_of_union_fields() -> None:
    op = RecordedOp(seq_no=3, create=RecordedOpCreate())
    assert encode_op(op) == b"\x08\x03\x22\x00"
    assert decode_op(b"\x08\x03\x22\x00").create == RecordedOpCreate()
    noop = decode_op(encode_op(RecordedOp(seq_no=7, checksum=1, author=2)))
    assert (noop.create, noop.link, noop.unlink, noop.write, noop.property) == (None,) * 5


def test_unknown_fields_are_skipped() -> None:
    unknown = b"\x60\x05" + b"\x6a\x02hi" + b"\x75\x01\x02\x03\x04" + b"\x79" + bytes(8)
    assert decode_op(b"\x08\x01" + unknown + b"\x1d\xd2\x04\x00\x00") == RecordedOp(
        seq_no=1, author=AUTHOR
    )


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x08", "truncated varint"),
        (b"\x08" + b"\xff" * 11, "varint longer than ten bytes"),
        (b"\x15\x01\x02", "truncated fixed32"),
        (b"\x22\x05\x0a\x01", "truncated length-delimited field"),
        (b"\x22\x03\x0a\x01\xff", "create.path|path is not valid UTF-8"),
        (b"\x0f", "unsupported wire type 7"),
        (b"\x02\x00", "field number zero"),
    ],
)
def test_malformed_bytes_raise_a_decode_error_saying_where(data: bytes, error: str) -> None:
    with pytest.raises(RecordedOpDecodeError, match=error):
        decode_op(data)


def test_frames_are_magic_length_and_body() -> None:
    op = RecordedOp(seq_no=1, author=AUTHOR, create=RecordedOpCreate(path="/path/to/file"))
    framed, body = frame_op(op)
    assert framed[:4] == bytes([0x66, 0x33, 0x93, 0x36])
    assert framed[4:8] == len(body).to_bytes(4, "little")
    assert framed[8:] == body
    assert frame_length(framed[:FRAME_HEADER_LENGTH]) == len(body)
    assert frame_length(b"\x66\x33\x93\x37" + bytes(4)) is None


def chain(*ops: RecordedOp) -> list[tuple[int, int]]:
    """(frame size, checksum expected by the op) for ops recorded in sequence."""
    out = []
    checksum = 0
    for seq, op in enumerate(ops, start=1):
        op.seq_no, op.author, op.checksum = seq, AUTHOR, checksum
        framed, body = frame_op(op)
        out.append((len(framed), checksum))
        checksum = crc32c_update(checksum, body)
    return out


def test_frame_sizes_and_checksums_match_gazettes_recorder() -> None:
    """Gazette's recorder tests pin these: after creating `/path/to/file` the
    next op lands 32 bytes later expecting checksum 0x568e8e4e, and so on."""
    create = lambda p: RecordedOp(create=RecordedOpCreate(path=p))  # noqa: E731
    assert chain(create("/path/to/file"), create("/other/file"))[1][1] == 0x568E8E4E
    assert chain(create("/path/to/file"))[0][0] == 32
    assert chain(create("/target/path"), create("/source/path"))[1][1] == 0x5CCBEEAA
    assert chain(create("/target/path"))[0][0] == 31
    overwrite = chain(
        create("/path/to/file"),
        RecordedOp(unlink=RecordedOpLink(fnode=1, path="/path/to/file")),
        create("/path/to/file"),
    )
    assert overwrite[2][1] == 0x8EE45505
    assert chain(create("/delete/path"), create("/a/path"))[1][1] == 0x950C2859
