"""A member killed with SIGKILL mid-transaction loses nothing it committed.

A real journal server process holds the recovery log. A member process
records transactions into a store and reports each commit as it resolves;
the test SIGKILLs it mid-stream, starts another member process that resumes
from the log and is killed in turn, then rebuilds the store once more here.
The state must be exactly transactions 1..c, where c is the recovered
checkpoint, and c at least the last commit a member reported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from gazette_trio import aio
from gazette_trio.broker.append_service import open_append_service
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.consumer.stores.json_file import JSONFileStore
from gazette_trio.consumer.stores.sqlite import SQLiteStore
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.author import new_author
from gazette_trio.recoverylog.player import Player
from gazette_trio.recoverylog.recorder import open_recorder
from tests.services import _wait_port, free_port

from . import member
from .shard import TestShard

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def journal_server(tmp_path: Path) -> Iterator[str]:
    """A journal server process (memory storage) on a free loopback port."""
    port = free_port()
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gazette_trio.broker.server", "--memory", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        _wait_port(port, 30, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def run_member_until(
    endpoint: str, directory: Path, kind: str, commits: int
) -> tuple[int, int]:
    """Start a member, SIGKILL it once it reported `commits` commits past its
    restore; return (restored, last reported commit)."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.stores.member", endpoint, str(directory), kind],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    buffer = b""
    restored = last = -1
    try:
        with trio.fail_after(60):
            while restored < 0 or last < restored + commits:
                chunk = await proc.stdout.receive_some()
                if not chunk:
                    raise AssertionError(
                        f"member exited with {await proc.wait()} before {commits} commits"
                    )
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    word, number = line.decode().split()
                    if word == "restored":
                        restored = int(number)
                    else:
                        assert int(number) == last + 1 or last < 0
                        last = int(number)
        proc.send_signal(signal.SIGKILL)
        # Commits reported after we decided to kill still count.
        async for chunk in proc.stdout:
            buffer += chunk
        for line in buffer.split(b"\n"):
            if line.startswith(b"committed "):
                last = int(line.split()[1])
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return restored, last


async def recover_here(endpoint: str, directory: Path, kind: str) -> tuple[int, Any]:
    """Play the log into `directory`, take it over, and read the store."""
    async with aio.Channel(endpoint) as channel:
        client = GrpcJournalClient(channel)
        async with open_append_service(client) as appender, trio.open_nursery() as nursery:
            player = Player()
            author = new_author()
            nursery.start_soon(player.play, FsmHints(log=member.LOG), directory, client, appender)
            player.inject_handoff(author)
            playback = await player.wait_done()
            recorder = await open_recorder(
                log=member.LOG,
                fsm=playback.fsm,
                author=author,
                directory=directory,
                appender=appender,
            )
            store: Any
            if kind.startswith("sqlite"):
                store = await SQLiteStore.open(
                    recorder, bootstrap=member.SCHEMA, journal_mode=member.journal_mode(kind)
                )
            else:
                store = await JSONFileStore.open(recorder=recorder)
            restored = await store.restore_checkpoint(TestShard(nursery, member.FQN))
            c = restored.sources[member.SOURCE].read_through
            if kind.startswith("sqlite"):
                state: Any = dict(store.db.execute("SELECT i, payload FROM items"))
            else:
                state = store.state
            store.destroy()
            nursery.cancel_scope.cancel()
    return c, state


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "sqlite-truncate", "json"])
async def test_members_killed_mid_transaction_lose_no_committed_transaction(
    kind: str, journal_server: str, tmp_path: Path, island: None
) -> None:
    async with aio.Channel(journal_server) as channel:
        spec = new_journal_spec(member.LOG, content_type=CONTENT_TYPE_RECOVERY_LOG)
        await apply_journals(GrpcJournalClient(channel), [upsert(spec)])

    restored_a, last_a = await run_member_until(journal_server, tmp_path / "a", kind, 15)
    assert restored_a == 0
    restored_b, last_b = await run_member_until(journal_server, tmp_path / "b", kind, 15)
    assert restored_b >= last_a, "a reported commit was lost"

    c, state = await recover_here(journal_server, tmp_path / "c", kind)
    assert c >= last_b, "a reported commit was lost"
    if kind.startswith("sqlite"):
        assert state == {i: member.payload(i) for i in range(1, c + 1)}
    else:
        assert state == {"items": list(range(1, c + 1)), "last": c}
