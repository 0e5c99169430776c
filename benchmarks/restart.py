"""Restart of the embedded journal server: memory while it verifies a large spool.

Restart verifies every append's bytes against its commit record and every
rolled fragment against its SHA-1. It used to read each whole spool into
memory (672 MB peak for a 400 MB spool); it now streams. Measured in a
fresh process (`ru_maxrss`), against the same process's baseline after its
imports, so the figure is what verification adds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from .harness import Report

GROUP = "restart"

_WRITE = textwrap.dedent(
    """
    import sys, trio
    from gazette_trio.broker.appender import append
    from gazette_trio.broker.journal_spec import new_journal_spec
    from gazette_trio.broker.list_apply import apply_journals, upsert
    from gazette_trio.broker.local import LocalJournalClient
    from gazette_trio.broker.server import FileStorage, JournalServerCore

    async def main():
        core = JournalServerCore(FileStorage(sys.argv[1], sync=False))
        client = LocalJournalClient(core)
        spec = new_journal_spec("bench/restart", fragment_length=1 << 34)
        await apply_journals(client, [upsert(spec)])
        chunk = bytes(range(256)) * 4096 * 4
        for _ in range(int(sys.argv[2]) // 4):
            await append(client, "bench/restart", chunk)
        core.close()

    trio.run(main)
    """
)

_RECOVER = textwrap.dedent(
    """
    import json, resource, sys, time
    from gazette_trio.broker.server import FileStorage

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    storage = FileStorage(sys.argv[1])
    head = storage.recover().journals["bench/restart"].write_head
    seconds = time.perf_counter() - started
    storage.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"head": head, "added_kb": peak - base, "seconds": seconds}))
    """
)


def run(report: Report) -> None:
    megabytes = 40 if report.quick else 400
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([sys.executable, "-c", _WRITE, str(data), str(megabytes)], check=True)
        out = subprocess.run(
            [sys.executable, "-c", _RECOVER, str(data)],
            check=True,
            capture_output=True,
            text=True,
        )
    figures = json.loads(out.stdout)
    assert figures["head"] == megabytes << 20
    report.add(
        GROUP,
        f"memory added verifying a {megabytes} MB spool",
        figures["added_kb"] / 1024,
        "MB",
        higher_is_better=False,
        target_value=16,
        note="streams 1 MiB at a time; was 672 MB for 400 MB before",
    )
    report.add(
        GROUP,
        f"time to verify a {megabytes} MB spool",
        figures["seconds"],
        "s",
        higher_is_better=False,
        note="CRC-32 of every append's bytes, page cache warm",
    )
