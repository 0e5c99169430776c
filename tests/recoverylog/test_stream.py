"""Splitting log bytes into ops, write payloads and de-synchronized garbage,
whatever the chunk boundaries (Gazette's `decodeOperation` semantics)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gazette_trio.protocol.recoverylog import RecordedOp, RecordedOpCreate, RecordedOpWrite
from gazette_trio.recoverylog.codec import encode_op, frame, frame_op
from gazette_trio.recoverylog.stream import Desync, LogDecodeError, LogDecoder, OpRead, Payload

LOG = "a/recovery/log"


def create(path: str) -> bytes:
    return frame_op(RecordedOp(seq_no=1, author=7, create=RecordedOpCreate(path=path)))[0]


def write(fnode: int, data: bytes) -> bytes:
    op = RecordedOp(seq_no=2, author=7, write=RecordedOpWrite(fnode=fnode, length=len(data)))
    return frame_op(op)[0] + data


def drain(decoder: LogDecoder) -> list[object]:
    out: list[object] = []
    while (event := decoder.next_event()) is not None:
        if isinstance(event, Payload):
            if out and isinstance(out[-1], bytes):
                out[-1] += bytes(event.data)
            else:
                out.append(bytes(event.data))
        elif isinstance(event, OpRead):
            op = event.op
            out.append((op.create or op.write, op.first_offset, op.last_offset, op.log))
        else:
            out.append(event)
    return out


def decode_in_chunks(data: bytes, cuts: list[int], start: int = 100) -> list[object]:
    """Events of `data` fed in pieces cut at `cuts`, with payload pieces
    joined and runs of garbage joined (how garbage splits depends on what is
    buffered, as in Gazette)."""
    decoder = LogDecoder(LOG, start)
    events: list[object] = []
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for a, b in itertools.pairwise(bounds):
        decoder.feed(data[a:b])
        for e in drain(decoder):
            last = events[-1] if events else None
            if isinstance(e, bytes) and isinstance(last, bytes):
                events[-1] = last + e
            elif isinstance(e, Desync) and isinstance(last, Desync):
                events[-1] = Desync(last.first_offset, e.last_offset)
            else:
                events.append(e)
    assert decoder.offset == start + len(data)
    return events


STREAM = [
    create("/a/path"),
    b"... invalid data ...",
    write(123, b"hello world"),
    create("/other/path"),
    write(5, b""),
    create("/fin"),
]


def expected(start: int = 100) -> list[object]:
    offsets = [start]
    for part in STREAM:
        offsets.append(offsets[-1] + len(part))
    o = offsets
    return [
        (RecordedOpCreate(path="/a/path"), o[0], o[1], LOG),
        Desync(o[1], o[2]),
        (RecordedOpWrite(fnode=123, length=11), o[2], o[3], LOG),
        b"hello world",
        (RecordedOpCreate(path="/other/path"), o[3], o[4], LOG),
        (RecordedOpWrite(fnode=5), o[4], o[5], LOG),
        (RecordedOpCreate(path="/fin"), o[5], o[6], LOG),
    ]


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_any_chunking_yields_the_same_ops_payloads_and_offsets(cuts: list[int]) -> None:
    """Each op gets its exact first and last offset (the payload included), a
    write's payload follows it, and garbage is reported and skipped."""
    assert decode_in_chunks(b"".join(STREAM), cuts) == expected()


def test_the_checksummed_body_is_the_frame_without_header() -> None:
    op = RecordedOp(seq_no=9, author=3, create=RecordedOpCreate(path="/x"))
    decoder = LogDecoder(LOG, 0)
    decoder.feed(frame(encode_op(op)))
    event = decoder.next_event()
    assert isinstance(event, OpRead)
    assert event.body == encode_op(op)


def test_a_partial_frame_waits_for_more_bytes() -> None:
    data = create("/a")
    decoder = LogDecoder(LOG, 0)
    decoder.feed(data[:5])
    assert decoder.next_event() is None
    decoder.feed(data[5:-1])
    assert decoder.next_event() is None
    assert decoder.buffered == len(data) - 1
    decoder.feed(data[-1:])
    assert isinstance(decoder.next_event(), OpRead)


def test_a_frame_that_does_not_decode_is_an_error_naming_log_and_offset() -> None:
    decoder = LogDecoder(LOG, 4096)
    decoder.feed(frame(b"\x08"))
    with pytest.raises(
        LogDecodeError, match=r"recovery log a/recovery/log at offset 4096: .*truncated varint"
    ):
        decoder.next_event()


def test_a_negative_write_length_is_an_error() -> None:
    decoder = LogDecoder(LOG, 0)
    decoder.feed(frame(encode_op(RecordedOp(write=RecordedOpWrite(fnode=3, length=-1)))))
    with pytest.raises(LogDecodeError, match="negative length"):
        decoder.next_event()
