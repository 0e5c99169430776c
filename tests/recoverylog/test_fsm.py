"""The recovery-log FSM beyond upstream's own cases (those are ported in
tests/conformance/test_fsm.py): hints without a log, checksum and
sequence refusals, and the no-op hand-off barrier."""

from __future__ import annotations

import pytest

from gazette_trio.protocol.recoverylog import FsmHints, RecordedOp
from gazette_trio.recoverylog.fsm import FSM, Outcome
from gazette_trio.recoverylog.hints import HintsError
from tests.conformance.test_fsm import LOG, Driver, seg


def test_hints_without_a_log_are_refused() -> None:
    with pytest.raises(HintsError, match="hinted log not provided"):
        FSM(FsmHints())


def test_checksum_mismatches_and_missequenced_ops_leave_the_fsm_untouched() -> None:
    """A correctly numbered op with the wrong checksum (a branch written by
    another recorder from a different prior state) and ops with a past or
    future seq_no are refused, and the FSM still accepts the right op next."""
    d = Driver(FsmHints(log=LOG))
    assert d.create(1, 0, 100, "/a") is Outcome.APPLIED
    expected = (d.fsm.next_seq_no, d.fsm.next_checksum, dict(d.fsm.links))

    assert d.create(2, expected[1] ^ 1, 100, "/b") is Outcome.CHECKSUM_MISMATCH
    assert d.create(1, 0, 100, "/b") is Outcome.WRONG_SEQ_NO
    assert d.create(3, expected[1], 100, "/b") is Outcome.WRONG_SEQ_NO
    assert (d.fsm.next_seq_no, d.fsm.next_checksum, d.fsm.links) == expected

    assert d.create(2, expected[1], 200, "/b") is Outcome.APPLIED
    assert d.fsm.links == {"/a": 1, "/b": 2}


def test_a_no_op_steps_the_sequence_without_touching_files() -> None:
    """An op with no union field (the hand-off barrier) is applied: it
    advances seq_no and checksum and leaves Fnodes alone."""
    d = Driver(FsmHints(log=LOG))
    assert d.create(1, 0, 100, "/a") is Outcome.APPLIED
    assert d.apply(RecordedOp(seq_no=2, checksum=0x90F599E3, author=555)) is Outcome.APPLIED
    assert d.fsm.next_seq_no == 3
    assert d.fsm.live_nodes[1].segments == [seg(100, 1, 1, 1, 2, 0)]
