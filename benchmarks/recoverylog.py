"""Recovery-log playback throughput.

A Recorder writes a store's files into a recovery log on the embedded
journal server (in-process, memory storage): a few large files written in
64 KiB writes (the shape of RocksDB tables or a JSON snapshot), then a
SQLite-shaped file rewritten in 4 KiB pages. A Player then rebuilds the
directory from the log's start: reads it through the journal client in the
broker's 128 KiB chunks, decodes and checksums every op, and writes the
payloads to disk. The figure is log MB played per second.

The floor, in the same run: reading the same number of bytes from a local
file in 1 MiB reads (page cache), the least any playback must do. A second
line shows a plain file copy (read + write to a new file) of the same bytes,
which is closer to playback's work.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from gazette_trio.broker.append_service import AppendService, open_append_service
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.reader import read_journal
from gazette_trio.broker.server import JournalServerCore, MemoryStorage
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.fsm import FSM
from gazette_trio.recoverylog.player import Player
from gazette_trio.recoverylog.recorder import open_recorder

from .harness import Report

LOG = "bench/recovery-log"
MIB = 1 << 20


async def _record(appender: AppendService, directory: Path, total: int, write_size: int) -> None:
    recorder = await open_recorder(
        log=LOG, fsm=FSM(FsmHints(log=LOG)), author=1, directory=directory, appender=appender
    )
    rng = random.Random(1)
    block = rng.randbytes(write_size)
    written = 0
    file_no = 0
    while written < total:
        with recorder.create(f"data/{file_no:04}.bin") as f:
            for _ in range(64 * MIB // write_size):
                if written >= total:
                    break
                f.write(block)
                written += write_size
        file_no += 1
        await recorder.barrier()
    await recorder.barrier()


def _file_floor(data_path: Path, copy_path: Path) -> tuple[float, float]:
    """Seconds to read the file in 1 MiB reads; and to copy it."""
    start = time.perf_counter()
    with open(data_path, "rb", buffering=0) as f:
        while f.read(MIB):
            pass
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    with open(data_path, "rb", buffering=0) as src, open(copy_path, "wb", buffering=0) as dst:
        while chunk := src.read(MIB):
            dst.write(chunk)
    copy_s = time.perf_counter() - start
    os.unlink(copy_path)
    return read_s, copy_s


async def _measure(report: Report, label: str, total: int, write_size: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-recoverylog-"))
    try:
        core = JournalServerCore(MemoryStorage())
        client = LocalJournalClient(core)
        spec = new_journal_spec(LOG, content_type=CONTENT_TYPE_RECOVERY_LOG)
        await apply_journals(client, [upsert(spec)])
        async with open_append_service(client) as appender:
            primary = work / "primary"
            primary.mkdir()
            await _record(appender, primary, total, write_size)
            log_bytes = core.write_head(LOG)
            # The floor file holds the very bytes of the log.
            (work / "log.bin").write_bytes(await read_journal(client, LOG))

            best = float("inf")
            floor_read = floor_copy = float("inf")
            for attempt in range(3):
                read_s, copy_s = _file_floor(work / "log.bin", work / "copy.bin")
                floor_read, floor_copy = min(floor_read, read_s), min(floor_copy, copy_s)
                player = Player()
                player.finish_at_write_head()
                start = time.perf_counter()
                await player.play(FsmHints(log=LOG), work / f"replica-{attempt}", client, appender)
                best = min(best, time.perf_counter() - start)
                shutil.rmtree(work / f"replica-{attempt}")

        mb = log_bytes / 1e6
        report.add(
            "recoverylog",
            f"playback of a {mb:,.0f} MB log, {label}",
            mb / best,
            "MB/s",
            floor=mb / floor_read,
            floor_name="read the same bytes from a file",
            note=f"plain file copy of the same bytes: {mb / floor_copy:,.0f} MB/s",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def run(report: Report) -> None:
    total = 20 * MIB if report.quick else 100 * MIB
    await _measure(report, "64 KiB writes", total, 64 * 1024)
    await _measure(report, "4 KiB writes", total // 4 if report.quick else total, 4 * 1024)
