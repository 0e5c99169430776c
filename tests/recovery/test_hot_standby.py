"""Hot standbys, end to end, in an in-process consumer group.

A word-count shard keeps its store in files recorded into a recovery log
(`JSONFileStore`, and `SQLiteStore` through its VFS) and asks for one hot
standby (`hot_standbys: 1`). What is promised:

- the standby member plays the log, reporting BACKFILL, then STANDBY once it
  has caught up, and then tails the log as the primary writes it;
- when the primary crashes mid-transaction, the standby takes over and the
  committed state is exactly the committed transactions: every input line
  counted once, as a player rebuilding the log from scratch finds it;
- the promoted standby continues from what it has already played: after
  promotion it reads only its own hand-off no-op, not the log again;
- hints live under the shard's `hint_prefix`: the primary writes its
  recorder's hints periodically (`.primary`), and each new primary stores the
  hints it recovered from as `.backup.0`, rotating older ones down;
- a replica that starts cold plays from those hints, reading far less than
  the whole log, and can take over in turn.

The clock is real: the stores read and open files in worker threads, and a
mock clock would jump ahead while they run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from gazette_trio.recoverylog.hint_store import fetch_hints, hint_backup_keys, hint_primary_key
from gazette_trio.recoverylog.hints import decode_hints

from .harness import (
    HINT_PREFIX,
    HINTS_INTERVAL,
    LOG,
    SHARD,
    Code,
    Member,
    RecoveryCluster,
    expected_counts,
    hold_line,
    shard_spec,
)

TIMEOUT = 30


def batch(round_: int, n: int = 40) -> list[str]:
    return [f"w{(round_ * 31 + i) % 97} x{i % 13} round{round_}" for i in range(n)]


async def primary_and_standby(g: RecoveryCluster) -> tuple[Member, Member]:
    """`alpha` the primary, `beta` its standby, once beta reports STANDBY."""
    alpha = await g.add_member("alpha")
    with trio.fail_after(TIMEOUT):
        assert (await g.primary()) is alpha
        beta = await g.add_member("beta")
        await beta.statuses.wait_for(Code.STANDBY)
    return alpha, beta


async def commit_rounds(g: RecoveryCluster, rounds: range) -> None:
    """Publish a batch per round and wait until the primary committed it."""
    with trio.fail_after(TIMEOUT):
        for round_ in rounds:
            await g.publish(batch(round_))
            await g.wait_consumed()


async def crash_mid_transaction(g: RecoveryCluster, primary: Member, standby: Member) -> int:
    """Crash `primary` in the middle of a transaction (lines of it applied to
    the store, none committed), once the standby has played everything in
    the log; returns the bytes the standby had read of the log then."""
    await g.publish([*batch(999), hold_line(primary.suffix), *batch(998)])
    with trio.fail_after(TIMEOUT):
        await primary.app.holding.wait()
        await g.wait_tailing(standby)
    read = standby.journals.read_bytes
    await g.crash(primary.suffix)
    return read


async def test_a_standby_reports_backfill_then_standby_and_tails_the_primarys_log(
    group: RecoveryCluster,
) -> None:
    g = group
    alpha, beta = await primary_and_standby(g)
    assert beta.statuses.codes == [Code.BACKFILL, Code.STANDBY]
    # A primary plays its log back too, reported as BACKFILL (as Gazette's).
    assert alpha.statuses.codes == [Code.BACKFILL, Code.PRIMARY]
    # As the group sees it in etcd (the observer hears of a status as the
    # member starts writing it).
    assert beta.consumer is not None
    session = beta.consumer.session
    expected = {("alpha", 0, Code.PRIMARY), ("beta", 1, Code.STANDBY)}
    with trio.fail_after(TIMEOUT):
        while True:
            replicas = {
                (a.suffix, a.slot, a.status.code) for a in session.state.assignments_by_item[SHARD]
            }
            if replicas == expected:
                break
            await session.wait_for_change(session.state.revision)

    # As the primary commits, the standby reads every byte of the log, once.
    for rounds in (range(0, 10), range(10, 20)):
        await commit_rounds(g, rounds)
        with trio.fail_after(TIMEOUT):
            await g.wait_tailing(beta)
        assert beta.journals.read_bytes == g.log_head()
    assert g.log_head() > 20_000


async def test_the_standby_of_a_crashed_primary_takes_over_with_exactly_the_committed_state(
    group: RecoveryCluster, tmp_path: Path
) -> None:
    g = group
    alpha, beta = await primary_and_standby(g)
    await commit_rounds(g, range(0, 20))
    await crash_mid_transaction(g, alpha, beta)

    with trio.fail_after(TIMEOUT):
        assert (await g.primary()) is beta
    assert beta.statuses.codes[-1] == Code.PRIMARY
    await commit_rounds(g, range(100, 103))
    # The line batch the crashed primary had read but not committed is
    # counted once, by its successor; so is every other.
    assert await g.committed_counts(tmp_path / "check") == expected_counts(g.lines)


async def test_a_promoted_standby_continues_from_its_tailed_state_without_replaying_the_log(
    group: RecoveryCluster,
) -> None:
    g = group
    alpha, beta = await primary_and_standby(g)
    await commit_rounds(g, range(0, 30))
    log_size = g.log_head()
    assert log_size > 50_000
    read_before = await crash_mid_transaction(g, alpha, beta)

    with trio.fail_after(TIMEOUT):
        assert (await g.primary()) is beta
    # What promotion read: the hand-off no-op it appended (one small frame).
    read_after = beta.journals.read_bytes - read_before
    assert read_after < 200, f"read {read_after} bytes of a {log_size}-byte log after promotion"


async def test_hints_are_stored_under_the_hint_prefix_and_recovered_hints_rotate(
    group: RecoveryCluster, tmp_path: Path
) -> None:
    g = group
    alpha, beta = await primary_and_standby(g)
    spec = shard_spec()
    assert hint_primary_key(spec) == f"{HINT_PREFIX}/{SHARD}.primary"
    assert hint_backup_keys(spec) == [
        f"{HINT_PREFIX}/{SHARD}.backup.0",
        f"{HINT_PREFIX}/{SHARD}.backup.1",
    ]

    # alpha recovered an empty log: its recovered hints name no file.
    first_backup = await g.etcd.get(hint_backup_keys(spec)[0])
    assert first_backup is not None
    assert decode_hints(first_backup.value).live_nodes == []
    assert await g.etcd.get(hint_backup_keys(spec)[1]) is None

    # The primary writes its recorder's hints periodically.
    await commit_rounds(g, range(0, 10))
    await trio.sleep(3 * HINTS_INTERVAL)
    fetched = await fetch_hints(g.etcd, spec)
    primary_hints = fetched.hints[0]
    assert primary_hints is not None and primary_hints.log == LOG
    assert primary_hints.live_nodes
    # They are enough to play the log: what they point at, then on to the head.
    assert await g.committed_counts(tmp_path / "from-hints", primary_hints) == expected_counts(
        g.lines
    )

    # The next primary stores what it recovered as .backup.0; alpha's moves down.
    await crash_mid_transaction(g, alpha, beta)
    with trio.fail_after(TIMEOUT):
        await g.primary()
    with trio.fail_after(TIMEOUT):
        while (await g.etcd.get(hint_backup_keys(spec)[1])) is None:
            await trio.sleep(0.01)
    second, rotated = [await g.etcd.get(k) for k in hint_backup_keys(spec)]
    assert second is not None and rotated is not None
    assert rotated.value == first_backup.value
    recovered = decode_hints(second.value)
    assert recovered.log == LOG and recovered.live_nodes


async def test_a_cold_replica_plays_from_hints_and_can_take_over(
    group: RecoveryCluster, tmp_path: Path
) -> None:
    g = group
    alpha = await g.add_member("alpha")
    await commit_rounds(g, range(0, 30))
    await trio.sleep(3 * HINTS_INTERVAL)  # the primary's hints are current
    log_size = g.log_head()

    gamma = await g.add_member("gamma")
    with trio.fail_after(TIMEOUT):
        await gamma.statuses.wait_for(Code.STANDBY)
        await g.wait_tailing(gamma)
    assert gamma.statuses.codes == [Code.BACKFILL, Code.STANDBY]
    # Hints skip the dead history (every superseded state file, or the
    # database pages compaction re-recorded).
    assert gamma.journals.read_bytes < log_size // 2, (gamma.journals.read_bytes, log_size)

    await crash_mid_transaction(g, alpha, gamma)
    with trio.fail_after(TIMEOUT):
        assert (await g.primary()) is gamma
    await commit_rounds(g, range(100, 103))
    assert await g.committed_counts(tmp_path / "check") == expected_counts(g.lines)


async def test_a_standby_logs_catching_up_then_completing_its_playback_when_promoted(
    group: RecoveryCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gazette_trio.consumer.shard")
    g = group
    alpha, beta = await primary_and_standby(g)
    await commit_rounds(g, range(0, 3))
    await crash_mid_transaction(g, alpha, beta)
    with trio.fail_after(TIMEOUT):
        assert (await g.primary()) is beta
        # alpha served first; beta's line follows its promotion.
        while caplog.messages.count(f"shard {SHARD}: serving as primary") < 2:
            await trio.sleep(0.05)

    lines = [m for m in caplog.messages if m.startswith(f"shard {SHARD}: ")]
    tailing = [i for i, m in enumerate(lines) if f"caught up with recovery log {LOG}" in m]
    completed = [i for i, m in enumerate(lines) if f"completed playback of {LOG} as primary" in m]
    assert len(tailing) == 1 and lines[tailing[0]].endswith("; tailing it"), lines
    assert len(completed) == 1, lines
    serving = [i for i, m in enumerate(lines) if m == f"shard {SHARD}: serving as primary"]
    # The standby caught up, was promoted, completed playback, then served.
    assert tailing[0] < completed[0] < serving[1], lines
