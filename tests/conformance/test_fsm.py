"""Upstream: consumer/recoverylog/fsm_test.go (go.gazette.dev/core v0.103.0).

The recovery-log FSM, against `gazette_trio.recoverylog.fsm`. As upstream,
each op is applied with a synthetic "frame" (the decimal string of a running
counter), so the CRC-32C chain values are Gazette's own fixtures and
independent of the op encoding. Gazette's FSM errors (ErrWrongSeqNo,
ErrLinkExists, ...) are our `Outcome`s (WRONG_SEQ_NO, LINK_EXISTS, ...);
`FSMHints.LiveLogSegments` is `hints.live_log_segments`.

Every case applies. TestPropertyUpdates holds the rule that an existing
property is updated in place (an earlier gazette-trio refused it with
PROPERTY_EXISTS).
"""

from __future__ import annotations

import pytest

from gazette_trio.protocol.recoverylog import (
    FnodeSegments,
    FsmHints,
    Property,
    RecordedOp,
    RecordedOpCreate,
    RecordedOpLink,
    RecordedOpWrite,
    Segment,
)
from gazette_trio.recoverylog.fsm import FSM, FnodeState, Outcome
from gazette_trio.recoverylog.hints import HintsError, live_log_segments

UPSTREAM = "consumer/recoverylog/fsm_test.go"
NOT_APPLICABLE: dict[str, str] = {}

LOG = "examples/integration-tests/recovery-log"


class Driver:
    """Applies ops with synthetic frames and offsets, as Gazette's suite does."""

    def __init__(self, hints: FsmHints) -> None:
        self.fsm = FSM(hints)
        self.offset = 0

    def apply(self, op: RecordedOp) -> Outcome:
        self.offset += 1
        op.first_offset = self.offset
        op.last_offset = self.offset + 1
        op.log = LOG
        return self.fsm.apply(op, str(self.offset).encode())

    def create(self, seq: int, checksum: int, author: int, path: str) -> Outcome:
        return self.apply(
            RecordedOp(
                seq_no=seq, checksum=checksum, author=author, create=RecordedOpCreate(path=path)
            )
        )

    def link(self, seq: int, checksum: int, author: int, fnode: int, path: str) -> Outcome:
        return self.apply(
            RecordedOp(
                seq_no=seq,
                checksum=checksum,
                author=author,
                link=RecordedOpLink(fnode=fnode, path=path),
            )
        )

    def unlink(self, seq: int, checksum: int, author: int, fnode: int, path: str) -> Outcome:
        return self.apply(
            RecordedOp(
                seq_no=seq,
                checksum=checksum,
                author=author,
                unlink=RecordedOpLink(fnode=fnode, path=path),
            )
        )

    def write(self, seq: int, checksum: int, author: int, fnode: int) -> Outcome:
        return self.apply(
            RecordedOp(
                seq_no=seq, checksum=checksum, author=author, write=RecordedOpWrite(fnode=fnode)
            )
        )

    def property(self, seq: int, checksum: int, author: int, path: str, content: str) -> Outcome:
        return self.apply(
            RecordedOp(
                seq_no=seq,
                checksum=checksum,
                author=author,
                property=Property(path=path, content=content),
            )
        )


def seg(
    author: int,
    first: int,
    last: int,
    first_offset: int,
    last_offset: int,
    checksum: int = 0,
    log: str = LOG,
) -> Segment:
    return Segment(
        author=author,
        first_seq_no=first,
        last_seq_no=last,
        first_offset=first_offset,
        last_offset=last_offset,
        first_checksum=checksum,
        log=log,
    )


def test_init_from_seq_no_zero() -> None:
    """With empty hints the first op is seq_no 1 with checksum 0, and each
    applied frame is folded into a CRC-32C chain matching Gazette's values."""
    d = Driver(FsmHints(log=LOG))
    assert d.create(1, 0x00000000, 100, "/path/A") is Outcome.APPLIED
    assert d.link(2, 0x90F599E3, 100, 1, "/path/B") is Outcome.APPLIED
    assert d.fsm.next_checksum == 0x7355C460
    assert d.fsm.next_seq_no == 3
    assert d.fsm.last_log == LOG


def test_flattening_live_log_segments() -> None:
    """Segments of several Fnodes merge per author; an empty segment log
    means the hints' log; inconsistent hints are refused with a reason."""
    hints = FsmHints(
        log="other/log",
        live_nodes=[
            FnodeSegments(fnode=2, segments=[seg(0x1, 2, 7, 200, 700, 0x22)]),
            FnodeSegments(fnode=4, segments=[seg(0x1, 4, 9, 400, 901, 0x44)]),
            FnodeSegments(fnode=10, segments=[seg(0x2, 10, 10, 1000, 1001, 0x10, log="")]),
        ],
    )
    fnodes, segments = live_log_segments(hints)
    assert fnodes == [2, 4, 10]
    assert list(segments) == [
        seg(0x1, 2, 9, 200, 901, 0x22),
        seg(0x2, 10, 10, 1000, 1001, 0x10, log="other/log"),
    ]

    hints.live_nodes[2].segments[0].log = "whoops"
    with pytest.raises(
        HintsError, match=r"expected hints\.Log other/log to equal the last Segment Log whoops"
    ):
        live_log_segments(hints)

    hints.live_nodes.append(FnodeSegments(fnode=13, segments=[Segment(first_seq_no=14)]))
    with pytest.raises(HintsError, match="expected Fnode to match Segment FirstSeqNo"):
        live_log_segments(hints)

    hints.live_nodes[1].segments[0].author = 0x3
    with pytest.raises(HintsError, match="expected Segment Author equality"):
        live_log_segments(hints)

    hints.live_nodes[0], hints.live_nodes[1] = hints.live_nodes[1], hints.live_nodes[0]
    with pytest.raises(HintsError, match="expected monotonic Fnode ordering"):
        live_log_segments(hints)


def test_initialization_from_hints() -> None:
    """Ops before the hinted seq_no are out of sequence; once the hinted ops
    apply, built hints equal the input hints with exact offsets."""
    hints = FsmHints(
        log=LOG,
        live_nodes=[
            FnodeSegments(
                fnode=42,
                segments=[
                    Segment(
                        author=100,
                        first_checksum=0xFEEDBEEF,
                        first_offset=1234,
                        first_seq_no=42,
                        last_seq_no=43,
                    )
                ],
            )
        ],
        properties=[Property(path="/IDENTITY", content="foo-bar-baz")],
    )
    d = Driver(hints)
    assert d.fsm.hinted_segments[0].first_offset == 1234
    assert (d.fsm.next_seq_no, d.fsm.next_checksum) == (42, 0xFEEDBEEF)
    assert d.fsm.properties == {"/IDENTITY": "foo-bar-baz"}

    d.offset = 1234
    assert d.create(41, 0xFEEDBEEF, 100, "/path/A") is Outcome.WRONG_SEQ_NO
    assert d.create(42, 0xFEEDBEEF, 100, "/path/A") is Outcome.APPLIED
    assert d.link(43, 0xC132D1D7, 100, 42, "/path/B") is Outcome.APPLIED
    assert not d.fsm.has_remaining_hints()

    hints.live_nodes[0].segments[0].first_offset = 1236
    hints.live_nodes[0].segments[0].last_offset = 1238
    assert d.fsm.build_hints(LOG) == hints


def start_at(hints: FsmHints, seq_no: int, checksum: int) -> Driver:
    d = Driver(hints)
    d.fsm.next_seq_no, d.fsm.next_checksum = seq_no, checksum
    return d


def test_fnode_creation() -> None:
    d = start_at(
        FsmHints(log=LOG, properties=[Property(path="/property/path", content="content")]),
        42,
        0xFEEDBEEF,
    )
    assert d.create(42, 0xFEEDBEEF, 100, "/path/A") is Outcome.APPLIED
    assert d.create(43, 0x2D28E063, 100, "/another/path") is Outcome.APPLIED
    assert d.create(44, 0xF11E2261, 100, "/path/A") is Outcome.LINK_EXISTS
    assert d.create(44, 0xF11E2261, 100, "/property/path") is Outcome.PROPERTY_EXISTS
    assert d.create(44, 0xF11E2261, 100, "/path/B") is Outcome.APPLIED

    assert d.fsm.links == {"/path/A": 42, "/another/path": 43, "/path/B": 44}
    assert d.fsm.live_nodes == {
        42: FnodeState({"/path/A"}, [seg(100, 42, 42, 1, 2, 0xFEEDBEEF)]),
        43: FnodeState({"/another/path"}, [seg(100, 43, 43, 2, 3, 0x2D28E063)]),
        44: FnodeState({"/path/B"}, [seg(100, 44, 44, 5, 6, 0xF11E2261)]),
    }


def test_fnode_creation_not_hinted() -> None:
    hints = FsmHints(
        log=LOG,
        live_nodes=[
            FnodeSegments(
                fnode=42,
                segments=[
                    Segment(
                        author=100,
                        first_checksum=0xFEEDBEEF,
                        first_offset=1234,
                        first_seq_no=42,
                        last_seq_no=100,
                    )
                ],
            ),
            FnodeSegments(
                fnode=44,
                segments=[
                    Segment(
                        author=100,
                        first_checksum=0xF11E2261,
                        first_offset=1234,
                        first_seq_no=44,
                        last_seq_no=100,
                    )
                ],
            ),
        ],
    )
    d = start_at(hints, 42, 0xFEEDBEEF)
    assert d.create(42, 0xFEEDBEEF, 100, "/path/A") is Outcome.APPLIED
    assert d.create(43, 0x2D28E063, 100, "/another/path") is Outcome.FNODE_NOT_TRACKED
    assert d.create(44, 0xF11E2261, 100, "/final/path") is Outcome.APPLIED
    assert d.fsm.links == {"/path/A": 42, "/final/path": 44}
    assert set(d.fsm.live_nodes) == {42, 44}
    assert d.fsm.live_nodes[44].segments == [seg(100, 44, 44, 3, 4, 0xF11E2261)]


def test_hinted_fnode_not_created() -> None:
    hints = FsmHints(
        log=LOG,
        live_nodes=[
            FnodeSegments(
                fnode=42,
                segments=[
                    Segment(
                        author=100,
                        first_checksum=0xFEEDBEEF,
                        first_offset=1234,
                        first_seq_no=42,
                        last_seq_no=100,
                    )
                ],
            ),
            FnodeSegments(
                fnode=44,
                segments=[
                    Segment(
                        author=100,
                        first_checksum=0xF11E2261,
                        first_offset=1234,
                        first_seq_no=44,
                        last_seq_no=100,
                    )
                ],
            ),
        ],
    )
    d = start_at(hints, 42, 0xFEEDBEEF)
    assert d.create(42, 0xFEEDBEEF, 100, "/path/A") is Outcome.APPLIED
    assert d.write(43, d.fsm.next_checksum, 100, 42) is Outcome.APPLIED
    assert d.write(44, d.fsm.next_checksum, 100, 42) is Outcome.EXPECTED_HINTED_FNODE


def test_fnode_linking() -> None:
    d = start_at(FsmHints(log="empty/log"), 42, 0xFEEDBEEF)
    assert d.create(42, 0xFEEDBEEF, 100, "/existing/path") is Outcome.APPLIED
    assert d.create(43, 0x2D28E063, 100, "/source/path") is Outcome.APPLIED
    assert d.link(44, 0xF11E2261, 100, 42, "/target/one") is Outcome.APPLIED
    assert d.property(45, 0xE292E757, 100, "/property/path", "content") is Outcome.APPLIED

    assert d.link(46, 0x2009A120, 100, 43, "/existing/path") is Outcome.LINK_EXISTS
    assert d.link(46, 0x2009A120, 100, 15, "/existing/path") is Outcome.LINK_EXISTS
    assert d.link(46, 0x2009A120, 100, 44, "/property/path") is Outcome.PROPERTY_EXISTS
    assert d.link(46, 0x2009A120, 100, 15, "/target/two") is Outcome.FNODE_NOT_TRACKED
    # FNODE_NOT_TRACKED stepped the FSM: seq_no 47 and a new checksum follow.
    assert d.link(47, 0xC8DAC550, 200, 43, "/target/two") is Outcome.APPLIED

    assert d.fsm.links == {
        "/existing/path": 42,
        "/source/path": 43,
        "/target/one": 42,
        "/target/two": 43,
    }
    assert d.fsm.live_nodes == {
        42: FnodeState({"/existing/path", "/target/one"}, [seg(100, 42, 44, 1, 4, 0xFEEDBEEF)]),
        43: FnodeState(
            {"/source/path", "/target/two"},
            [seg(100, 43, 43, 2, 3, 0x2D28E063), seg(200, 47, 47, 9, 10, 0xC8DAC550)],
        ),
    }
    assert d.fsm.properties == {"/property/path": "content"}


def test_fnode_unlinking() -> None:
    d = start_at(FsmHints(log="empty/log"), 42, 0xFEEDBEEF)
    assert d.create(42, 0xFEEDBEEF, 100, "/path/A") is Outcome.APPLIED
    assert d.create(43, 0x2D28E063, 100, "/another/path") is Outcome.APPLIED
    assert d.link(44, 0xF11E2261, 200, 43, "/link/one") is Outcome.APPLIED
    assert len(d.fsm.links) == 3

    assert d.unlink(45, 0xE292E757, 200, 43, "/does/not/exist") is Outcome.NO_SUCH_LINK
    assert d.unlink(45, 0xE292E757, 200, 42, "/another/path") is Outcome.NO_SUCH_LINK
    assert d.unlink(45, 0xE292E757, 200, 15, "/some/path") is Outcome.FNODE_NOT_TRACKED
    assert d.unlink(46, 0xC132D1D7, 200, 43, "/another/path") is Outcome.APPLIED

    assert d.fsm.links == {"/path/A": 42, "/link/one": 43}
    assert d.fsm.live_nodes[43].links == {"/link/one"}
    assert d.fsm.build_hints(LOG) == FsmHints(
        log=LOG,
        live_nodes=[
            FnodeSegments(fnode=42, segments=[seg(0x64, 42, 42, 1, 2, 0xFEEDBEEF, log="")]),
            FnodeSegments(
                fnode=43,
                segments=[
                    seg(0x64, 43, 43, 2, 3, 0x2D28E063, log=""),
                    seg(0xC8, 44, 46, 3, 8, 0xF11E2261, log=""),
                ],
            ),
        ],
    )

    assert d.unlink(47, 0xB18CC99A, 200, 43, "/link/one") is Outcome.APPLIED
    assert d.fsm.links == {"/path/A": 42}
    assert d.fsm.build_hints(LOG) == FsmHints(
        log=LOG,
        live_nodes=[
            FnodeSegments(fnode=42, segments=[seg(0x64, 42, 42, 1, 2, 0xFEEDBEEF, log="")])
        ],
    )

    assert d.create(48, 0x11BC1AC9, 300, "/other/path") is Outcome.APPLIED
    assert d.unlink(49, 0xA102803E, 300, 42, "/path/A") is Outcome.APPLIED
    assert d.fsm.build_hints(LOG) == FsmHints(
        log=LOG,
        live_nodes=[
            FnodeSegments(fnode=48, segments=[seg(0x12C, 48, 48, 9, 10, 0x11BC1AC9, log="")])
        ],
    )

    assert d.unlink(50, 0xA40DAEE4, 400, 48, "/other/path") is Outcome.APPLIED
    assert d.fsm.links == {}
    assert d.fsm.live_nodes == {}
    assert d.fsm.build_hints(LOG) == FsmHints(log=LOG)


def test_property_updates() -> None:
    """Gazette's TestPropertyUpdates: an existing property may be updated."""
    d = start_at(
        FsmHints(log=LOG, properties=[Property(path="/a/property", content="content")]),
        42,
        0xFEEDBEEF,
    )
    assert d.create(42, 0xFEEDBEEF, 100, "/a/path") is Outcome.APPLIED
    assert d.property(43, 0x2D28E063, 100, "/another/property", "other-content") is Outcome.APPLIED
    assert d.property(44, 0xF11E2261, 100, "/a/path", "bad") is Outcome.LINK_EXISTS
    assert d.property(44, 0xF11E2261, 100, "/a/property", "update") is Outcome.APPLIED
    assert d.fsm.properties == {"/a/property": "update", "/another/property": "other-content"}


def test_fnode_writes() -> None:
    d = start_at(FsmHints(log=LOG), 42, 0xFEEDBEEF)
    assert d.create(42, 0xFEEDBEEF, 100, "/path/A") is Outcome.APPLIED
    assert d.write(43, 0x2D28E063, 100, 42) is Outcome.APPLIED
    assert d.write(44, 0xF11E2261, 100, 42) is Outcome.APPLIED
    assert d.write(45, 0xE292E757, 100, 15) is Outcome.FNODE_NOT_TRACKED
    assert d.write(46, 0x2009A120, 100, 42) is Outcome.APPLIED
    assert d.fsm.build_hints(LOG) == FsmHints(
        log=LOG,
        live_nodes=[
            FnodeSegments(fnode=42, segments=[seg(0x64, 42, 46, 1, 6, 0xFEEDBEEF, log="")])
        ],
    )


def test_use_of_hinted_authors() -> None:
    """Two recorders race valid-looking ops for the same seq_nos; the hints
    say which author owns each seq_no and the other's ops are refused, even
    with a correct seq_no and checksum. Past the hints any author may apply."""
    hints = FsmHints(
        log=LOG,
        live_nodes=[
            FnodeSegments(
                fnode=42,
                segments=[
                    Segment(
                        author=100, first_offset=2, first_seq_no=42, last_seq_no=42, last_offset=3
                    ),
                    Segment(
                        author=200, first_offset=5, first_seq_no=44, last_seq_no=44, last_offset=6
                    ),
                    Segment(
                        author=300, first_offset=8, first_seq_no=45, last_seq_no=45, last_offset=9
                    ),
                ],
            ),
            FnodeSegments(
                fnode=46,
                segments=[
                    Segment(
                        author=400, first_offset=11, first_seq_no=46, last_seq_no=47, last_offset=13
                    )
                ],
            ),
        ],
    )
    d = Driver(hints)
    assert d.create(42, 0x0, 666, "/evil/path") is Outcome.NOT_HINTED_AUTHOR
    assert d.create(42, 0x0, 100, "/good/path") is Outcome.APPLIED
    assert d.write(43, d.fsm.next_checksum, 100, 42) is Outcome.NOT_HINTED_AUTHOR
    assert d.write(43, d.fsm.next_checksum, 200, 15) is Outcome.WRONG_SEQ_NO
    assert d.write(44, 0x0, 200, 42) is Outcome.APPLIED  # Checksum reset by the hinted segment.
    assert d.write(45, d.fsm.next_checksum, 200, 42) is Outcome.NOT_HINTED_AUTHOR
    assert d.write(45, d.fsm.next_checksum, 666, 42) is Outcome.NOT_HINTED_AUTHOR
    assert d.write(45, 0x0, 300, 42) is Outcome.APPLIED
    assert d.write(46, d.fsm.next_checksum, 300, 42) is Outcome.NOT_HINTED_AUTHOR
    assert d.write(46, d.fsm.next_checksum, 666, 42) is Outcome.NOT_HINTED_AUTHOR
    assert d.create(46, 0x0, 400, "/another/path") is Outcome.APPLIED
    assert d.write(47, d.fsm.next_checksum, 400, 46) is Outcome.APPLIED

    assert d.fsm.build_hints(LOG).live_nodes == hints.live_nodes
    assert not d.fsm.has_remaining_hints()

    assert d.unlink(48, d.fsm.next_checksum, 666, 42, "/good/path") is Outcome.APPLIED
    assert d.write(49, d.fsm.next_checksum, 666, 46) is Outcome.APPLIED
    assert d.fsm.build_hints(LOG) == FsmHints(
        log=LOG,
        live_nodes=[
            FnodeSegments(
                fnode=46,
                segments=[
                    Segment(
                        author=400, first_seq_no=46, first_offset=11, last_seq_no=47, last_offset=13
                    ),
                    Segment(
                        author=666,
                        first_seq_no=49,
                        first_offset=14,
                        first_checksum=0x1CAB6124,
                        last_seq_no=49,
                        last_offset=15,
                    ),
                ],
            )
        ],
    )
