"""A tailing player acts on a hand-off (or finish) request at once, even
when the log is quiet.

A hot standby catches up with the log and then waits for more of it. When
its member is promoted, `inject_handoff` must complete playback without
waiting for anyone to append again: after a primary crashes there is
nobody left to append.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing

from gazette_trio.broker.append_service import AppendService, open_append_service
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.server import JournalServerCore, MemoryStorage
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.fsm import FSM
from gazette_trio.recoverylog.player import Player, PlayerState
from gazette_trio.recoverylog.recorder import Recorder, open_recorder

LOG = "recovery/quiet-log"

QUIET_LOG_BUG = (
    "recoverylog bug: Player._request interrupts the blocked read only when `_at_head` is "
    "set, and `_read` sets it only after a chunk arrives in that read; when playback first "
    "catches up, `_caught_up` moves BACKFILL to TAIL and `_read` then blocks at the head with "
    "`_at_head` False, so a request waits for the next append (forever, on a log whose "
    "primary crashed). Setting `_at_head` when a read opens at the head (TAIL, no hinted "
    "segment left) fixes it."
)


@dataclass
class Log:
    client: LocalJournalClient
    appender: AppendService


@pytest.fixture
async def log() -> AsyncIterator[Log]:
    core = JournalServerCore(MemoryStorage())
    client = LocalJournalClient(core)
    await apply_journals(
        client, [upsert(new_journal_spec(LOG, content_type=CONTENT_TYPE_RECOVERY_LOG))]
    )
    async with open_append_service(client) as appender:
        yield Log(client, appender)


def fresh(directory: Path) -> Path:
    directory.mkdir()
    return directory


async def committed_state(log: Log, directory: Path) -> Recorder:
    recorder = await open_recorder(
        log=LOG,
        fsm=FSM(FsmHints(log=LOG)),
        author=0x11,
        directory=fresh(directory),
        appender=log.appender,
    )
    with recorder.create("state") as f:
        f.write(b"committed")
    await recorder.barrier()
    return recorder


async def start_tailing(nursery: trio.Nursery, player: Player, log: Log, directory: Path) -> None:
    """Start `player` playing the log into `directory`, back once it tails."""
    nursery.start_soon(player.play, FsmHints(log=LOG), directory, log.client, log.appender)
    await player.wait_tailing()


async def test_a_hand_off_completes_while_the_caught_up_log_is_quiet(
    log: Log, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    await committed_state(log, tmp_path / "primary")
    player = Player()
    async with trio.open_nursery() as nursery:
        await start_tailing(nursery, player, log, tmp_path / "standby")
        await trio.testing.wait_all_tasks_blocked()
        assert player.state is PlayerState.TAIL
        # The primary crashed: nobody appends any more. The standby is promoted.
        player.inject_handoff(0x22)
        with trio.fail_after(30):
            playback = await player.wait_done()
    assert (playback.directory / "state").read_bytes() == b"committed"


async def test_finishing_at_the_write_head_completes_while_the_log_is_quiet(
    log: Log, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    await committed_state(log, tmp_path / "primary")
    player = Player()
    async with trio.open_nursery() as nursery:
        await start_tailing(nursery, player, log, tmp_path / "replica")
        await trio.testing.wait_all_tasks_blocked()
        player.finish_at_write_head()
        with trio.fail_after(30):
            playback = await player.wait_done()
    assert (playback.directory / "state").read_bytes() == b"committed"


async def test_a_request_made_while_the_log_is_written_completes(
    log: Log, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The same request, made after the tailing player has read a fresh
    append, completes at once (the path that works today)."""
    recorder = await committed_state(log, tmp_path / "primary")
    player = Player()
    async with trio.open_nursery() as nursery:
        await start_tailing(nursery, player, log, tmp_path / "standby")
        with recorder.open("state") as f:
            f.write_at(b"COMMITTED", 0)
        await recorder.barrier()
        await trio.testing.wait_all_tasks_blocked()
        player.inject_handoff(0x22)
        with trio.fail_after(30):
            playback = await player.wait_done()
    assert (playback.directory / "state").read_bytes() == b"COMMITTED"
