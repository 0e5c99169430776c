"""The transaction state machine decides exactly as Gazette's consumer does.

These tests drive the pure machine with explicit times; the driver tests
(test_driver.py) check the same rules end to end on Trio's mock clock.
"""

from __future__ import annotations

import math

import pytest

from gazette_trio.consumer.transaction import (
    ReadProgress,
    Step,
    Timings,
    Transaction,
    decide,
    on_commit,
    on_consumed,
    on_prev_done,
    on_read_nothing,
    on_time,
)


def txn(
    min_d: float = 0.0, max_d: float = 1.0, *, prev_done: bool = True, wait_for_ack: bool = True
) -> Transaction:
    return Transaction(
        min_duration=min_d, max_duration=max_d, prev_done=prev_done, wait_for_ack=wait_for_ack
    )


def test_an_empty_transaction_waits_for_its_first_message() -> None:
    t = txn()
    assert decide(t, message_ready=False, has_pending=False) is Step.WAIT
    assert t.deadline == math.inf
    assert decide(t, message_ready=True, has_pending=False) is Step.CONSUME


def test_first_message_starts_the_timer_and_is_reported_as_first() -> None:
    t = txn(min_d=0.5, max_d=2.0)
    assert on_consumed(t, now=10.0) is True
    assert on_consumed(t, now=10.1) is False
    assert t.deadline == 10.5


def test_a_stall_after_min_duration_commits() -> None:
    t = txn(min_d=0.5, max_d=2.0)
    on_consumed(t, now=10.0)
    # Before min_duration, a stall only waits.
    assert decide(t, message_ready=False, has_pending=False) is Step.WAIT
    on_time(t, 10.5)
    assert t.min_elapsed and t.deadline == 12.0
    assert decide(t, message_ready=False, has_pending=False) is Step.COMMIT


def test_zero_min_duration_commits_on_the_first_stall() -> None:
    t = txn(min_d=0.0)
    on_consumed(t, now=3.0)
    assert t.min_elapsed
    assert decide(t, message_ready=False, has_pending=False) is Step.COMMIT


def test_ready_messages_are_consumed_until_max_duration() -> None:
    t = txn(min_d=0.0, max_d=1.0)
    on_consumed(t, now=0.0)
    assert decide(t, message_ready=True, has_pending=False) is Step.CONSUME
    on_time(t, 1.0)
    assert t.max_elapsed and not t.reading
    assert decide(t, message_ready=True, has_pending=False) is Step.COMMIT


def test_an_incomplete_predecessor_blocks_the_commit_and_stalls_at_max_duration() -> None:
    t = txn(min_d=0.0, max_d=1.0, prev_done=False)
    on_consumed(t, now=0.0)
    assert decide(t, message_ready=False, has_pending=False) is Step.WAIT
    # Messages are still consumed while the predecessor commits (pipelining).
    assert decide(t, message_ready=True, has_pending=False) is Step.CONSUME
    on_time(t, 1.0)
    assert t.stalled_at == 1.0
    # Stalled: no more reading, only waiting for the predecessor.
    assert decide(t, message_ready=True, has_pending=False) is Step.WAIT
    assert t.deadline == math.inf
    on_prev_done(t)
    assert decide(t, message_ready=True, has_pending=False) is Step.COMMIT
    on_commit(t, 1.7)
    timings = Timings.of(t)
    assert (timings.consuming, timings.total) == (1.0, 1.7)
    assert timings.stalled == pytest.approx(0.7)


def test_pending_uncommitted_messages_hold_the_transaction_open_until_max_duration() -> None:
    t = txn(min_d=0.0, max_d=1.0)
    on_consumed(t, now=0.0)
    assert decide(t, message_ready=False, has_pending=True) is Step.WAIT
    on_time(t, 1.0)
    assert decide(t, message_ready=False, has_pending=True) is Step.COMMIT


def test_disable_wait_for_ack_commits_despite_pending_messages() -> None:
    t = txn(min_d=0.0, max_d=1.0, wait_for_ack=False)
    on_consumed(t, now=0.0)
    assert decide(t, message_ready=False, has_pending=True) is Step.COMMIT


def test_time_before_the_first_message_changes_nothing() -> None:
    t = txn(min_d=0.0, max_d=1.0)
    on_time(t, 100.0)
    assert not t.min_elapsed and not t.max_elapsed


def test_a_transaction_that_never_stalled_spent_no_time_stalled() -> None:
    t = txn(min_d=0.0, max_d=5.0)
    on_consumed(t, now=1.0)
    on_commit(t, 1.25)
    assert Timings.of(t) == Timings(consuming=0.25, stalled=0.0, total=0.25)


def test_a_read_that_commits_nothing_is_reported_with_the_predecessor_while_it_completes() -> None:
    t = txn(prev_done=False)
    assert on_read_nothing(t) is ReadProgress.WITH_PREDECESSOR
    on_prev_done(t)
    assert on_read_nothing(t) is ReadProgress.NOW
    # Such a read begins nothing: the timer is not armed.
    assert not t.began and t.deadline == math.inf


def test_a_read_that_commits_nothing_inside_a_transaction_is_reported_by_its_commit() -> None:
    for prev_done in (False, True):
        t = txn(prev_done=prev_done)
        on_consumed(t, now=0.0)
        assert t.began
        assert on_read_nothing(t) is ReadProgress.WITH_COMMIT
