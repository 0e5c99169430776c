"""The simulator finds bugs: break exactly-once on purpose, expect a violation.

Each test plants one bug in the production runtime, of the kind the
simulation exists to catch, runs seeds until one reports an invariant
violation (bounded), and checks that the report names the seed, the command
that replays it, and that the replay traces the same events.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import pytest
import trio

from gazette_trio.consumer import shard as shard_module
from gazette_trio.consumer.driver import run_transactions
from gazette_trio.consumer.stores import memory
from gazette_trio.opfuture import OpFuture
from gazette_trio.protocol import consumer as pc
from gazette_trio.testing.sim import SeedResult, run_seed


def first_failure(seeds: Iterable[int]) -> SeedResult:
    for seed in seeds:
        result = run_seed(seed)
        if not result.ok:
            return result
    pytest.fail("the planted bug went unnoticed")


def assert_replayable(result: SeedResult) -> None:
    report = result.report()
    assert f"seed {result.seed} FAILED" in report
    assert f"python -m gazette_trio.testing.sim --seed {result.seed}" in report
    again = run_seed(result.seed)
    assert again.digest == result.digest
    assert again.violations == result.violations


class _BrokenBarriers:
    """The driver's appender, with one of its barriers broken."""

    def __init__(self, inner: Any, *, acks_wait_for_commit: bool, commit_waits: bool) -> None:
        self.inner = inner
        self.acks_wait_for_commit = acks_wait_for_commit
        self.commit_waits = commit_waits

    def append(
        self, journal: str, content: bytes, *, depends_on: OpFuture[Any] | None = None
    ) -> OpFuture[Any]:
        if not self.acks_wait_for_commit:
            depends_on = None
        return self.inner.append(journal, content, depends_on=depends_on)  # type: ignore[no-any-return]

    def pending(self) -> set[OpFuture[Any]]:
        return self.inner.pending() if self.commit_waits else set()  # type: ignore[no-any-return]


def plant(monkeypatch: pytest.MonkeyPatch, **broken: bool) -> None:
    """Give the shard's transaction driver a broken appender."""

    async def patched(**kwargs: Any) -> None:
        kwargs["appender"] = _BrokenBarriers(kwargs["appender"], **broken)
        await run_transactions(**kwargs)

    monkeypatch.setattr(shard_module, "run_transactions", patched)


@pytest.mark.slow
def test_acks_written_before_their_commit_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Barrier 3 broken: ACKs no longer wait for the store commit. A commit
    that then fails (fenced, refused, or its member crashed) leaves outputs
    committed downstream that the shard will publish again."""
    plant(monkeypatch, acks_wait_for_commit=False, commit_waits=True)
    result = first_failure(range(60))
    assert any(v.startswith("output not exactly once") for v in result.violations), result.report()
    assert_replayable(result)


@pytest.mark.slow
def test_a_commit_that_does_not_wait_for_its_appends_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Barrier 2 broken: the store commits before the transaction's output
    appends are written. A member crashing in between loses outputs that the
    checkpoint says were published: a gap the verifier never sees filled."""
    plant(monkeypatch, acks_wait_for_commit=True, commit_waits=False)
    result = first_failure(range(150))
    assert any("output" in v for v in result.violations), result.report()
    assert_replayable(result)


@pytest.mark.slow
def test_a_store_without_a_fence_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The external store's fence removed: a deposed primary (a zombie whose
    lease expired while it ran) still commits after the new primary restored."""

    async def restore_without_fencing(self: memory.MemoryStore, shard: Any) -> pc.Checkpoint:
        row = self.db._rows.setdefault(shard.fqn, memory._Row())
        self._fence = row.fence
        self.state = copy.deepcopy(row.state)
        await trio.lowlevel.checkpoint()
        return pc.Checkpoint.parse(row.checkpoint) if row.checkpoint else pc.Checkpoint()

    monkeypatch.setattr(memory.MemoryStore, "restore_checkpoint", restore_without_fencing)
    result = first_failure(range(80))
    assert any(v.startswith("fence broken") for v in result.violations), result.report()
    assert_replayable(result)
