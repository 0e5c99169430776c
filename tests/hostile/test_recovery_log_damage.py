"""A damaged recovery log fails playback with a clear error; it never
rebuilds a different state.

A flipped byte in a recovery log once made the embedded server cut the log
back, and the shard silently rebuilt older SQLite state and published a
duplicate. Now:

- on the embedded server's file storage, the damage is found at restart and
  the player's read fails with DATA_LOSS naming the log, the file and the
  offset (the server core and FileStorage in this process: a separate
  process would add nothing here);
- where storage cannot tell (a broker serving a damaged copy), an op inside
  the hinted history whose checksum breaks the CRC-32C chain stops playback
  with PlaybackError naming the log and offset, instead of skipping it and
  every op after it.

In both cases the playback directory is removed and nothing is made live.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gazette_trio import aio
from gazette_trio.broker.append_service import AppendService, open_append_service
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.reader import read_journal
from gazette_trio.broker.server import FileStorage, JournalServerCore, MemoryStorage
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.codec import FRAME_HEADER_LENGTH
from gazette_trio.recoverylog.fsm import FSM
from gazette_trio.recoverylog.player import PlaybackError, Player
from gazette_trio.recoverylog.recorder import open_recorder
from gazette_trio.recoverylog.stream import LogDecoder, OpRead

from .harness import flip

LOG = "hostile/recovery-log"


@asynccontextmanager
async def journals(
    core: JournalServerCore,
) -> AsyncIterator[tuple[LocalJournalClient, AppendService]]:
    client = LocalJournalClient(core)
    async with open_append_service(client) as appender:
        yield client, appender


async def create_log(client: LocalJournalClient, name: str) -> None:
    spec = new_journal_spec(name, content_type=CONTENT_TYPE_RECOVERY_LOG, fragment_length=1 << 26)
    await apply_journals(client, [upsert(spec)])


async def record_a_store(
    client: LocalJournalClient, appender: AppendService, directory: Path
) -> FsmHints:
    """A store's files recorded into LOG; the hints a primary would persist."""
    await create_log(client, LOG)
    os.makedirs(directory)
    recorder = await open_recorder(
        log=LOG, fsm=FSM(FsmHints(log=LOG)), author=0x5EED, directory=directory, appender=appender
    )
    with recorder.create("store.db") as f:
        for i in range(20):
            f.write(f"page {i:02d} ".encode() * 50)
    with recorder.create("store.db-wal") as f:
        f.write(b"wal frames")
    hints = await recorder.build_hints()
    await recorder.barrier()
    return hints


async def play(
    client: LocalJournalClient, appender: AppendService, hints: FsmHints, directory: Path
) -> None:
    player = Player()
    player.finish_at_write_head()
    await player.play(hints, directory, client, appender)


async def test_a_flipped_byte_in_a_stored_recovery_log_fails_playback_naming_it(
    tmp_path: Path,
) -> None:
    core = JournalServerCore(FileStorage(tmp_path / "broker"))
    async with journals(core) as (client, appender):
        hints = await record_a_store(client, appender, tmp_path / "primary")
        head = core.write_head(LOG)
    core.close()
    spool = tmp_path / "broker" / "journals" / "hostile" / "recovery-log" / "0000000000000000.spool"
    flip(spool, head // 2)

    core = JournalServerCore(FileStorage(tmp_path / "broker"))
    try:
        async with journals(core) as (client, appender):
            with pytest.raises(
                aio.DataLoss,
                match=r"journal hostile/recovery-log: stored content is damaged at offset \d+ "
                r"\(journals/hostile/recovery-log/0000000000000000.spool: bytes",
            ):
                await play(client, appender, hints, tmp_path / "replica")
        assert not (tmp_path / "replica").exists()
        assert core.write_head(LOG) == head  # the log did not move back
    finally:
        core.close()


async def test_an_op_that_breaks_the_hinted_checksum_chain_stops_playback_at_it(
    tmp_path: Path,
) -> None:
    core = JournalServerCore(MemoryStorage())
    async with journals(core) as (client, appender):
        hints = await record_a_store(client, appender, tmp_path / "primary")
        content = await read_journal(client, LOG)
        # A broker serving a damaged copy of the log: the same bytes, but one
        # write op in the middle of the hinted history carries another
        # checksum (a flipped byte of the field keeps the op decodable).
        decoder = LogDecoder(LOG, 0)
        decoder.feed(content)
        writes = []
        while (event := decoder.next_event()) is not None:
            if isinstance(event, OpRead) and event.op.write is not None:
                writes.append(event.op)
        op = writes[len(writes) // 2]
        field = b"\x15" + op.checksum.to_bytes(4, "little")
        body_at = op.first_offset + FRAME_HEADER_LENGTH
        at = content.index(field, body_at) + 1
        damaged = bytearray(content)
        damaged[at] ^= 0xFF
        copy = "hostile/recovery-log-copy"
        await create_log(client, copy)
        await appender.append(copy, bytes(damaged))
        hints.log = copy

        with pytest.raises(
            PlaybackError,
            match=rf"recovery log {copy} at offset {op.first_offset}: op {op.seq_no} of author "
            r"0x5eed carries checksum 0x[0-9a-f]{8}, but the history the hints describe "
            rf"continues with {op.checksum:#010x}",
        ):
            await play(client, appender, hints, tmp_path / "replica")
        assert not (tmp_path / "replica").exists()
