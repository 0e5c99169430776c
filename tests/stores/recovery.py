"""Members of one shard sharing a recovery log, in one process.

A real embedded journal server (in memory) holds the log; each "member" plays
the log back into its own directory with a `Player`, takes it over with a
hand-off (which fences the previous recorder through the journal's `author`
register), and records from there with a `Recorder`: the steps a consumer
member takes when it becomes a shard's primary.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trio

from gazette_trio.broker.append_service import AppendService, open_append_service
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.server.core import JournalServerCore
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.author import new_author
from gazette_trio.recoverylog.player import Player
from gazette_trio.recoverylog.recorder import Recorder, open_recorder

LOG = "recovery/test-shard"


@dataclass
class LogService:
    core: JournalServerCore
    client: LocalJournalClient
    appender: AppendService
    nursery: trio.Nursery
    log: str = LOG

    async def become_primary(self, directory: Path, hints: FsmHints | None = None) -> Recorder:
        """Play the log into `directory` and take it over as a new author."""
        player = Player()
        author = new_author()
        self.nursery.start_soon(
            player.play, hints or FsmHints(log=self.log), directory, self.client, self.appender
        )
        player.inject_handoff(author)
        playback = await player.wait_done()
        return await open_recorder(
            log=self.log,
            fsm=playback.fsm,
            author=author,
            directory=directory,
            appender=self.appender,
        )

    async def replay(self, directory: Path, hints: FsmHints | None = None) -> None:
        """Play the log into `directory` without taking it over."""
        player = Player()
        self.nursery.start_soon(
            player.play, hints or FsmHints(log=self.log), directory, self.client, self.appender
        )
        player.finish_at_write_head()
        await player.wait_done()

    @property
    def write_head(self) -> int:
        return self.core.write_head(self.log)


@contextlib.asynccontextmanager
async def log_service() -> AsyncIterator[LogService]:
    core = JournalServerCore()
    client = LocalJournalClient(core)
    await apply_journals(client, [upsert(new_journal_spec(LOG))])
    async with open_append_service(client) as appender, trio.open_nursery() as nursery:
        yield LogService(core, client, appender, nursery)
        nursery.cancel_scope.cancel()
