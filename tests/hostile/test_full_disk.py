"""A full data directory answers RESOURCE_EXHAUSTED and loses nothing acknowledged.

The journal server runs as its own process on a 2 MiB tmpfs. Appends go on
until the disk is full; the append that does not fit fails with
RESOURCE_EXHAUSTED saying so (not INTERNAL, which publishers retried
forever without a word), leaves no trace, and the process goes on serving.
Every acknowledged append reads back, before and after a restart, and once
space is freed the next append lands exactly at the old write head.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from gazette_trio import aio
from gazette_trio.broker.appender import append
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert

from ..services import tmpfs
from .harness import Acked, ServerProcess, connect, read_back, served_range

JOURNAL = "hostile/full"
CHUNK = b"0123456789abcdef" * 4096  # 64 KiB
CLI = [sys.executable, "-m", "gazette_trio"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "size=2m") as mount:
        yield mount


def assert_all_read_back(served: dict[int, bytes], acked: Acked) -> None:
    for begin, end, data in acked.appends:
        assert served_range(served, begin, end) == data, f"[{begin}, {end})"


async def test_a_full_disk_refuses_the_append_that_does_not_fit_and_keeps_the_rest(
    small_disk: Path, island: None
) -> None:
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (256 << 10))
    server = ServerProcess(small_disk / "data")
    server.log = small_disk.parent / "server.log"
    await server.start()
    try:
        acked = Acked(JOURNAL)
        async with connect(server) as client:
            await apply_journals(
                client, [upsert(new_journal_spec(JOURNAL, fragment_length=1 << 30))]
            )
            with pytest.raises(aio.ResourceExhausted) as refused:
                for _ in range(64):  # 4 MiB: twice the disk
                    await acked.append(client, CHUNK)
            assert (
                f"journal {JOURNAL}: append of {acked.write_head} onwards: the journal "
                "server's data directory is full (No space left on device); nothing was "
                "written" in str(refused.value)
            )
            assert str(small_disk) not in str(refused.value)
            assert len(acked.appends) >= 10
            assert server.proc is not None and server.proc.poll() is None
            assert_all_read_back(await read_back(client, JOURNAL), acked)

        # The command line reports it, once.
        cli = await trio.to_thread.run_sync(
            functools.partial(
                subprocess.run,
                [*CLI, "journals", "-e", server.endpoint, "append", JOURNAL],
                input=CHUNK * 2,
                capture_output=True,
                timeout=60,
            )
        )
        assert cli.returncode == 1
        assert b"RESOURCE_EXHAUSTED" in cli.stderr and b"data directory is full" in cli.stderr

        server.kill()
        await server.start()
        async with connect(server) as client:
            assert_all_read_back(await read_back(client, JOURNAL), acked)
            os.unlink(ballast)
            response = await append(client, JOURNAL, b"after space was freed")
            assert response.commit is not None
            assert response.commit.begin == acked.write_head
    finally:
        server.stop()
