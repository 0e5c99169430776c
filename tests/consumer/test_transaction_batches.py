"""The driver hands the transaction machine whole batches: `on_consumed`
with a count counts every message of the batch, and only the transaction's
first non-empty batch starts its timer (and so the application's
`begin_txn`)."""

from __future__ import annotations

from gazette_trio.consumer.transaction import Transaction, on_consumed


def test_a_batch_counts_all_its_messages_and_only_the_first_starts_the_timer() -> None:
    t = Transaction(min_duration=0.5, max_duration=2.0, prev_done=True)
    assert on_consumed(t, 10.0, 0) is False  # an empty batch (all held back) is not a start
    assert t.consumed == 0
    assert on_consumed(t, 10.0, 1750) is True
    assert (t.consumed, t.began_at) == (1750, 10.0)
    assert on_consumed(t, 11.0, 250) is False
    assert (t.consumed, t.began_at) == (2000, 10.0)
    assert t.deadline == 10.5
