"""A `gazette-trio serve` whose embedded recovery log was damaged fails the
shard, saying why; it does not rebuild older state and publish again.

A member counts words into a JSON-file store recorded to a recovery log on
its embedded journal server. It is stopped, one byte of the recovery log's
spool is inverted, and it is started again: the shard goes FAILED with the
DATA_LOSS error naming the log's file and offset, and the output journal
holds exactly what it held before (nothing was counted twice).
"""

from __future__ import annotations

import collections
import signal
from pathlib import Path

import pytest

from tests.serve_member import ServeMember, append, counts, member, wait_for_counts

from .harness import flip

__all__ = ["member"]  # the fixture, imported for pytest

SPOOL = Path("data/journals/journals/ex/recovery/count-000/0000000000000000.spool")


@pytest.mark.slow
def test_a_damaged_recovery_log_fails_the_shard_naming_it_and_nothing_is_counted_twice(
    member: ServeMember,
) -> None:
    member.start(within=60)
    lines = [f"alpha beta {i % 3}" for i in range(40)]
    append(member, lines)
    expected = collections.Counter(w for t in lines for w in t.split())
    wait_for_counts(member, expected, within=60)
    member.signal(signal.SIGTERM)
    assert member.wait(60) == 0, member.logs()

    spool = member.directory / SPOOL
    flip(spool, spool.stat().st_size // 2)
    member.start(until=None)
    status = member.wait_for('"FAILED"', within=60)
    assert "stored content is damaged at offset" in status, status
    assert "journals/ex/recovery/count-000/0000000000000000.spool" in status, status
    assert counts(member) == expected  # nothing published again
