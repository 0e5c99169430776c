"""Segments: runs of one author's operations in one log, and sets of them.

A Segment names the sequence numbers `[first_seq_no, last_seq_no]` an author
wrote into a log, the byte offsets where they lie (`first_offset` a lower
bound; `last_offset` exclusive, zero when unknown) and the checksum the first
op expects. Hints list, per live Fnode, the segments holding its ops; a player
flattens them into one `SegmentSet` that says which parts of the log to read
and which author to believe for each sequence number.

`SegmentSet` keeps Gazette's invariants: segments strictly ordered and
non-overlapping by sequence number (so one author per sequence number),
`first_offset` monotonic within a log, and `last_offset` monotonic except for
a suffix of zeros. `add` merges overlapping or adjacent segments of the same
author and log, and refuses inconsistent ones with a `SegmentError` that
names both segments.

This module owns segment arithmetic. Segments are the generated
`recoverylog.Segment` messages; it never encodes them.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterator, Sequence

from ..errors import RecoveryLogError
from ..protocol.recoverylog import Segment


class SegmentError(RecoveryLogError, ValueError):
    """A segment, or a pair of them, breaks the recovery-log invariants."""


def _show(s: Segment) -> str:
    return (
        f"Segment(author={s.author:#x}, seq_no={s.first_seq_no}..{s.last_seq_no}, "
        f"offset={s.first_offset}..{s.last_offset}, first_checksum={s.first_checksum:#x}, "
        f"log={s.log!r})"
    )


def validate_segment(s: Segment) -> None:
    """Raise SegmentError if `s` is internally inconsistent."""
    if s.author == 0:
        raise SegmentError(f"Author is zero: {_show(s)}")
    if s.first_seq_no <= 0:
        raise SegmentError(f"FirstSeqNo <= 0: {_show(s)}")
    if s.first_offset < 0:
        raise SegmentError(f"FirstOffset < 0: {_show(s)}")
    if s.last_seq_no < s.first_seq_no:
        raise SegmentError(f"LastSeqNo < segment.FirstSeqNo: {_show(s)}")
    if s.last_offset != 0 and s.last_offset <= s.first_offset:
        raise SegmentError(f"LastOffset <= segment.FirstOffset: {_show(s)}")
    if not s.log:
        raise SegmentError(f"Log: invalid length 0: {_show(s)}")


def _nonzero_and_less(a: int, b: int) -> bool:
    return a != 0 and a < b


def reduce_segments(a: Segment, b: Segment) -> Segment | None:
    """One segment covering both `a` and `b`, or None if they are consistent
    but cannot merge (disjoint, or adjacent with another author or log).

    Raises SegmentError if the two contradict each other.
    """
    if a.first_seq_no > b.first_seq_no or (
        a.first_seq_no == b.first_seq_no and a.last_seq_no < b.last_seq_no
    ):
        a, b = b, a
    # From here a.first_seq_no <= b.first_seq_no, and on a tie a is the longer.
    pair = f"{_show(a)} vs {_show(b)}"

    if a.first_seq_no < b.first_seq_no and a.log == b.log and a.first_offset > b.first_offset:
        raise SegmentError(f"expected monotonic FirstOffset: {pair}")
    if a.first_seq_no < b.first_seq_no and a.last_offset == 0 and b.last_offset != 0:
        raise SegmentError(f"expected preceding Segment to also include LastOffset: {pair}")
    if a.last_offset == 0 and a.log != b.log:
        raise SegmentError(
            "Segment cannot use a different log where preceding Segment.LastOffset is zero: " + pair
        )
    if a.log == b.log and (
        (a.last_seq_no <= b.last_seq_no and _nonzero_and_less(b.last_offset, a.last_offset))
        or (a.last_seq_no >= b.last_seq_no and _nonzero_and_less(a.last_offset, b.last_offset))
    ):
        raise SegmentError(f"expected monotonic LastOffset: {pair}")
    if a.first_seq_no == b.first_seq_no and a.first_checksum != b.first_checksum:
        raise SegmentError(f"expected FirstChecksum equality: {pair}")

    if a.last_seq_no + 1 < b.first_seq_no:
        return None  # Disjoint.
    if a.last_seq_no + 1 == b.first_seq_no and (a.author != b.author or a.log != b.log):
        return None  # Adjacent, but another author or log.

    # What remains overlaps (or is adjacent), so must share author and log.
    if a.author != b.author:
        raise SegmentError(f"expected Segment Author equality: {pair}")
    if a.log != b.log:
        raise SegmentError(f"expected Segment Log equality: {pair}")

    out = copy.copy(a)
    if a.first_seq_no == b.first_seq_no and a.first_offset < b.first_offset:
        out.first_offset = b.first_offset  # A tighter lower bound.
    if a.last_seq_no == b.last_seq_no and a.last_offset == 0:
        out.last_offset = b.last_offset
    if a.last_seq_no < b.last_seq_no:
        out.last_seq_no, out.last_offset = b.last_seq_no, b.last_offset
    return out


class SegmentSet(Sequence[Segment]):
    """Ordered, non-overlapping segments; see the module docstring."""

    __slots__ = ("_segments",)

    def __init__(self, segments: Sequence[Segment] = ()) -> None:
        self._segments: list[Segment] = []
        for segment in segments:
            self.add(segment)

    def add(self, segment: Segment) -> None:
        """Add `segment`, merging it with segments it overlaps or adjoins."""
        validate_segment(segment)
        items = self._segments
        begin = bisect.bisect_left([s.first_seq_no for s in items], segment.first_seq_no)

        if begin > 0:
            reduced = reduce_segments(items[begin - 1], segment)
            if reduced is not None:
                segment, begin = reduced, begin - 1
        end = begin
        while end != len(items):
            reduced = reduce_segments(items[end], segment)
            if reduced is None:
                break
            segment = reduced
            end += 1
        items[begin:end] = [segment]

    def intersect(self, log: str, first_offset: int, last_offset: int) -> list[Segment]:
        """Segments overlapping the byte range `[first_offset, last_offset)` of
        `log`; every segment of the set must be of `log`."""
        if last_offset < first_offset:
            raise ValueError(f"invalid range [{first_offset}, {last_offset})")
        items = self._segments
        for s in items:
            if s.log != log:
                raise ValueError(f"segment of log {s.log!r} in a set intersected on {log!r}")
        j = bisect.bisect_left([s.first_offset for s in items], last_offset)
        i = j
        while i != 0 and (items[i - 1].last_offset == 0 or items[i - 1].last_offset > first_offset):
            i -= 1
        return items[i:j]

    def __getitem__(self, index: int) -> Segment:  # type: ignore[override]
        return self._segments[index]

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self._segments)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SegmentSet):
            return self._segments == other._segments
        if isinstance(other, list):
            return self._segments == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "SegmentSet([" + ", ".join(_show(s) for s in self._segments) + "])"
