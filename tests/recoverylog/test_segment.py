"""Segment validation, pairwise reduction, SegmentSet merging and intersection,
following the cases Gazette specifies in `consumer/recoverylog/segment_test.go`."""

from __future__ import annotations

import random

import pytest

from gazette_trio.protocol.recoverylog import Segment
from gazette_trio.recoverylog.segment import (
    SegmentError,
    SegmentSet,
    reduce_segments,
    validate_segment,
)

A, B = "log/A", "log/B"


def s(
    author: int, first: int, last: int, fo: int, lo: int = 0, ck: int = 0, log: str = A
) -> Segment:
    return Segment(
        author=author,
        first_seq_no=first,
        last_seq_no=last,
        first_offset=fo,
        last_offset=lo,
        first_checksum=ck,
        log=log,
    )


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"author": 0}, "Author is zero"),
        ({"first_seq_no": 0}, "FirstSeqNo <= 0"),
        ({"first_seq_no": -1}, "FirstSeqNo <= 0"),
        ({"first_offset": -1}, "FirstOffset < 0"),
        ({"last_seq_no": 9}, "LastSeqNo < segment.FirstSeqNo"),
        ({"first_offset": 100, "last_offset": 99}, "LastOffset <= segment.FirstOffset"),
        ({"log": ""}, "Log: invalid length"),
    ],
)
def test_invalid_segments_are_refused_with_the_reason(
    change: dict[str, object], error: str
) -> None:
    model = dict(
        author=0xFEFE,
        first_seq_no=10,
        first_checksum=0xABAB,
        first_offset=0,
        last_seq_no=10,
        last_offset=1,
        log="a/log",
    )
    validate_segment(Segment(**model))  # type: ignore[arg-type]
    validate_segment(Segment(**{**model, "last_offset": 0}))  # type: ignore[arg-type]
    with pytest.raises(SegmentError, match=error):
        validate_segment(Segment(**{**model, **change}))  # type: ignore[arg-type]


REDUCTIONS = [
    # Overlap.
    (s(1, 2, 7, 200, 700, 0x22), s(1, 4, 9, 400, 901, 0x44), s(1, 2, 9, 200, 901, 0x22)),
    (s(1, 2, 7, 200, 701, 0x22), s(1, 4, 9, 100, 901, 0x44), "expected monotonic FirstOffset"),
    (s(1, 2, 7, 200, 701, 0x22), s(1, 4, 9, 400, 700, 0x44), "expected monotonic LastOffset"),
    (
        s(1, 2, 7, 200, 0, 0x22),
        s(1, 4, 9, 400, 901, 0x44),
        "expected preceding Segment to also include LastOffset",
    ),
    (s(1, 2, 7, 200, 701, 0x22), s(2, 4, 9, 400, 901, 0x44), "expected Segment Author equality"),
    (
        s(1, 2, 7, 200, 701, 0x22),
        s(1, 4, 9, 400, 901, 0x44, log=B),
        "expected Segment Log equality",
    ),
    # Covered.
    (s(1, 2, 7, 200, 701, 0x22), s(1, 3, 6, 300, 0, 0x33), s(1, 2, 7, 200, 701, 0x22)),
    # Disjoint.
    (s(1, 2, 4, 200, 401, 0x22), s(1, 6, 7, 600, 0, 0x66), None),
    # Equal-right: a known LastOffset wins.
    (s(1, 2, 7, 200, 701, 0x22), s(1, 4, 7, 400, 0, 0x44), s(1, 2, 7, 200, 701, 0x22)),
    (s(1, 2, 7, 200, 701, 0x22), s(1, 4, 7, 400, 702, 0x44), "expected monotonic LastOffset"),
    # Equal-left: the larger FirstOffset is the tighter bound.
    (s(1, 2, 7, 200, 701, 0x22), s(1, 2, 9, 210, 901, 0x22), s(1, 2, 9, 210, 901, 0x22)),
    (s(1, 2, 7, 200, 701, 0x22), s(1, 2, 9, 210, 901, 0xBAD), "expected FirstChecksum equality"),
    # Identity.
    (s(1, 2, 7, 190, 701, 0x22), s(1, 2, 7, 200, 0, 0x22), s(1, 2, 7, 200, 701, 0x22)),
    # Adjacent.
    (s(1, 2, 4, 200, 401, 0x22), s(1, 5, 7, 500, 701, 0x55), s(1, 2, 7, 200, 701, 0x22)),
    (s(1, 2, 4, 200, 401, 0x22), s(2, 5, 7, 500, 701, 0x55), None),
    (s(1, 2, 4, 200, 401, 0x22), s(1, 5, 7, 500, 701, 0x55, log=B), None),
    (
        s(1, 2, 4, 200, 0, 0x22),
        s(1, 5, 7, 500, 0, 0x55, log=B),
        "Segment cannot use a different log where preceding Segment.LastOffset is zero",
    ),
]


@pytest.mark.parametrize(("a", "b", "expect"), REDUCTIONS)
def test_reduction_is_symmetric_and_checks_consistency(
    a: Segment, b: Segment, expect: Segment | str | None
) -> None:
    for x, y in ((a, b), (b, a)):
        if isinstance(expect, str):
            with pytest.raises(SegmentError, match=expect):
                reduce_segments(x, y)
        else:
            assert reduce_segments(x, y) == expect


def model() -> SegmentSet:
    return SegmentSet(
        [s(0xA, 5, 10, 500, 1001), s(0xB, 11, 11, 1100, 1101), s(0xB, 13, 15, 1300, 1501)]
    )


def added(to: SegmentSet, segments: list[Segment], seed: int) -> SegmentSet:
    order = list(segments)
    random.Random(seed).shuffle(order)
    for segment in order:
        to.add(segment)
    return to


@pytest.mark.parametrize("seed", range(5))
def test_sets_merge_in_any_insertion_order(seed: int) -> None:
    assert added(SegmentSet(), list(model()), seed) == model()
    assert added(
        model(),
        [
            s(0xF, 1, 4, 100, 401),
            s(0xF, 12, 12, 1200, 1201),
            s(0xF, 16, 18, 1600, 1801),
            s(0xF, 19, 20, 20, 21, log=B),
        ],
        seed,
    ) == [
        s(0xF, 1, 4, 100, 401),
        s(0xA, 5, 10, 500, 1001),
        s(0xB, 11, 11, 1100, 1101),
        s(0xF, 12, 12, 1200, 1201),
        s(0xB, 13, 15, 1300, 1501),
        s(0xF, 16, 18, 1600, 1801),
        s(0xF, 19, 20, 20, 21, log=B),
    ]
    assert added(
        model(), [s(0xA, 1, 4, 100, 401), s(0xB, 12, 12, 1200, 1201), s(0xB, 16, 18, 1600)], seed
    ) == [
        s(0xA, 1, 10, 100, 1001),
        s(0xB, 11, 18, 1100),
    ]
    covered = [
        s(0xA, 5, 9, 500),
        s(0xA, 6, 10, 600),
        s(0xB, 11, 11, 1100),
        s(0xB, 13, 14, 1300),
        s(0xB, 14, 15, 1400),
    ]
    assert added(model(), covered, seed) == model()
    points = [
        s(0xB, 16, 16, 1600, 1601),
        s(0xB, 17, 17, 1700, 1701),
        s(0xB, 18, 18, 1800, 1801),
        s(0xC, 19, 19, 1900, 0),
        s(0xC, 20, 20, 2000, 0),
    ]
    assert added(model(), points, seed) == [
        s(0xA, 5, 10, 500, 1001),
        s(0xB, 11, 11, 1100, 1101),
        s(0xB, 13, 18, 1300, 1801),
        s(0xC, 19, 20, 1900, 0),
    ]


@pytest.mark.parametrize(
    ("segment", "error"),
    [
        (s(0xC, 4, 5, 400, 501), "expected Segment Author equality"),
        (s(0xA, 10, 11, 1000, 1101), "expected Segment Author equality"),
        (s(0xB, 10, 11, 1000, 1101), "expected Segment Author equality"),
        (s(0xC, 15, 15, 1500, 1501), "expected Segment Author equality"),
        (s(0xA, 4, 5, 400, 501, log="wrong"), "expected Segment Log equality"),
        (s(0xB, 12, 12, 1200, 0), "expected preceding Segment to also include LastOffset"),
        (s(0xB, 12, 12, 1050, 1200), "expected monotonic FirstOffset"),
        (s(0xA, 3, 3, 300, 1050), "expected monotonic LastOffset"),
    ],
)
def test_sets_refuse_inconsistent_segments_and_stay_unchanged(segment: Segment, error: str) -> None:
    m = model()
    with pytest.raises(SegmentError, match=error):
        m.add(segment)
    assert m == model()


@pytest.mark.parametrize(
    ("first", "last", "expect"),
    [
        (0, 100000, slice(0, 3)),
        (0, 500, slice(0, 0)),
        (0, 501, slice(0, 1)),
        (1000, 1001, slice(0, 1)),
        (1000, 1100, slice(0, 1)),
        (1000, 1101, slice(0, 2)),
        (1000, 1300, slice(0, 2)),
        (1000, 1301, slice(0, 3)),
        (1001, 1001, slice(1, 1)),
        (1001, 1101, slice(1, 2)),
        (1101, 1300, slice(2, 2)),
        (1101, 1301, slice(2, 3)),
        (1500, 100000, slice(2, 3)),
        (1501, 100000, slice(3, 3)),
    ],
)
def test_intersection_returns_segments_overlapping_a_byte_range(
    first: int, last: int, expect: slice
) -> None:
    m = model()
    assert m.intersect(A, first, last) == list(m)[expect]
