"""A byte changed in acknowledged content is refused and named, never cut.

Against a real `broker serve` process: appends are acknowledged, the process
is killed, one byte of a spool, a commit log or a rolled fragment is
inverted, and the process is started again. Then:

- reads reaching the damage and every append fail with DATA_LOSS naming the
  journal, the file and the offset; nothing on disk is cut;
- `gazette-trio broker repair` reports the damage, and repairs it: after
  that, every acknowledged append but the damaged one reads back at exactly
  its acknowledged offsets (checked through the Read RPC of a fresh server
  process), the damaged files are kept under quarantine/, and the next
  append lands at the old write head: no offset is handed out twice;
- a torn tail (a crash while an append was being written, so never
  acknowledged) is still cut silently, with a warning in the log.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from gazette_trio import aio
from gazette_trio.broker.appender import append
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.server import commit_log

from .harness import (
    Acked,
    ServerProcess,
    append_to,
    connect,
    flip,
    gazette_trio_cli,
    read_back,
    served_range,
)

JOURNAL = "hostile/journal"
APPENDS = 10


def content(i: int) -> bytes:
    return f"<append {i:03d}>".encode() * (60 + i)


@pytest.fixture
async def server(tmp_path: Path, island: None) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data")
    try:
        await server.start()
        yield server
    finally:
        server.stop()


async def acknowledged_appends(server: ServerProcess, fragment_length: int) -> Acked:
    acked = Acked(JOURNAL)
    async with connect(server) as client:
        spec = new_journal_spec(JOURNAL, fragment_length=fragment_length)
        await apply_journals(client, [upsert(spec)])
        for i in range(APPENDS):
            await acked.append(client, content(i))
    # No chance to close anything: the files are as a crash leaves them.
    server.kill()
    return acked


def journal_dir(server: ServerProcess) -> Path:
    return server.data_dir / "journals" / "hostile" / "journal"


async def assert_refused(server: ServerProcess, message: str) -> None:
    async with connect(server) as client:
        with pytest.raises(aio.DataLoss, match=message):
            await read_back(client, JOURNAL)
        with pytest.raises(aio.DataLoss, match=message):
            await append(client, JOURNAL, b"one more")


def repair(server: ServerProcess, offset: int) -> None:
    report = gazette_trio_cli("broker", "repair", "--data-dir", str(server.data_dir))
    assert report.returncode == 1, report
    assert f"journal {JOURNAL}: damaged at offset {offset}: " in report.stdout
    assert f"--journal {JOURNAL} --truncate-at {offset}" in report.stdout
    fixed = gazette_trio_cli(
        "broker",
        "repair",
        "--data-dir",
        str(server.data_dir),
        "--journal",
        JOURNAL,
        "--truncate-at",
        str(offset),
    )
    assert fixed.returncode == 0, fixed
    assert fixed.stdout.endswith(f"journal {JOURNAL}: repaired\n")


async def assert_all_but_read_back(server: ServerProcess, acked: Acked, lost: range) -> None:
    """Every acknowledged append outside `lost` (indexes) is served at its
    offsets; those in `lost` are not served at all; the next append takes
    the old write head."""
    async with connect(server) as client:
        served = await read_back(client, JOURNAL)
        for i, (begin, end, data) in enumerate(acked.appends):
            expected = None if i in lost else data
            assert served_range(served, begin, end) == expected, f"append {i} [{begin}, {end})"
        response = await append(client, JOURNAL, b"after the repair")
        assert response.commit is not None
        assert response.commit.begin == acked.write_head


async def test_a_flipped_byte_in_an_acknowledged_append_is_refused_then_repaired(
    server: ServerProcess,
) -> None:
    acked = await acknowledged_appends(server, fragment_length=1 << 20)
    spool = journal_dir(server) / "0000000000000000.spool"
    begin, end, _ = acked.appends[4]
    flip(spool, (begin + end) // 2)

    await server.start()
    await assert_refused(
        server,
        rf"journal {JOURNAL}: stored content is damaged at offset {begin} "
        rf"\(journals/hostile/journal/0000000000000000.spool: bytes \[{begin}, {end}\) do not "
        r"match the CRC-32 of their commit record",
    )
    # What a user of the command line sees: the error, once, and exit 1.
    read = await trio.to_thread.run_sync(
        gazette_trio_cli, "journals", "-e", server.endpoint, "read", JOURNAL
    )
    assert read.returncode == 1
    assert read.stderr.startswith(
        f"Error: {server.endpoint}: DATA_LOSS: journal {JOURNAL}: stored content is damaged "
        f"at offset {begin} (journals/hostile/journal/0000000000000000.spool: "
    ), read.stderr
    assert len(read.stderr.splitlines()) == 1, read.stderr
    server.stop()
    assert spool.stat().st_size == acked.write_head  # nothing was cut

    repair(server, begin)
    [quarantined] = (server.data_dir / "quarantine").rglob("0000000000000000.spool")
    assert quarantined.stat().st_size == acked.write_head
    await server.start()
    await assert_all_but_read_back(server, acked, lost=range(4, 5))


@pytest.mark.parametrize("record", [5, APPENDS], ids=["a-middle-record", "the-last-record"])
async def test_a_flipped_byte_in_a_commit_record_is_refused_then_repaired(
    server: ServerProcess, record: int
) -> None:
    acked = await acknowledged_appends(server, fragment_length=1 << 20)
    log_path = journal_dir(server) / "0000000000000000.commits"
    fd = os.open(log_path, os.O_RDONLY)
    try:
        records = [r for r in commit_log.scan(fd) if isinstance(r, commit_log.Record)]
    finally:
        os.close(fd)
    assert len(records) == APPENDS + 1  # the spool's opening record, then one per append
    damaged = records[record]
    flip(log_path, damaged.position + 10)  # inside its end offset
    begin = acked.appends[record - 1][0]

    await server.start()
    await assert_refused(
        server,
        rf"journal {JOURNAL}: stored content is damaged at offset {begin} "
        r"\(journals/hostile/journal/0000000000000000.commits: the commit record at log "
        rf"position {damaged.position} is damaged",
    )
    server.stop()

    repair(server, begin)
    await server.start()
    await assert_all_but_read_back(server, acked, lost=range(record - 1, record))


async def test_a_rolled_fragment_with_a_flipped_byte_is_refused_naming_the_file(
    server: ServerProcess,
) -> None:
    acked = await acknowledged_appends(server, fragment_length=1024)
    fragments = sorted(p for p in journal_dir(server).iterdir() if p.suffix == ".raw")
    assert len(fragments) >= 2
    target = fragments[1]
    fragment_begin, fragment_end = (int(part, 16) for part in target.name.split("-")[:2])
    flip(target, 7)

    await server.start()
    async with connect(server) as client:
        # Content before the damaged fragment is still served.
        served = await read_back(client, JOURNAL, end_offset=fragment_begin)
        for begin, end, data in acked.appends:
            if end <= fragment_begin:
                assert served_range(served, begin, end) == data
    await assert_refused(
        server,
        rf"journal {JOURNAL}: stored content is damaged at offset {fragment_begin} "
        rf"\(journals/hostile/journal/{re.escape(target.name)}: its content does not match "
        r"the SHA-1 in its name",
    )
    server.stop()

    repair(server, fragment_begin)
    assert not target.exists()
    assert list((server.data_dir / "quarantine").rglob(target.name))
    await server.start()
    inside = [
        i for i, (b, e, _) in enumerate(acked.appends) if b < fragment_end and e > fragment_begin
    ]
    await assert_all_but_read_back(server, acked, lost=range(inside[0], inside[-1] + 1))


async def test_a_torn_tail_is_still_cut_silently_with_a_warning(server: ServerProcess) -> None:
    acked = await acknowledged_appends(server, fragment_length=1 << 20)
    # What a crash in the middle of the next append leaves: its bytes in the
    # spool, its commit record half written. It was never acknowledged.
    directory = journal_dir(server)
    head = acked.write_head
    append_to(directory / "0000000000000000.spool", b"never acknowledged" * 5)
    record = commit_log.encode_record(head, head + 90, 0, None)
    append_to(directory / "0000000000000000.commits", record[: len(record) // 2])

    await server.start()
    await assert_all_but_read_back(server, acked, lost=range(0))
    log = server.log.read_text()
    assert re.search(
        rf"journal {JOURNAL}: cutting a torn tail past offset {head} \(90 spool bytes, "
        rf"{len(record) // 2} commit-log bytes\)",
        log,
    ), log
