"""Latency of the exactly-once word count at a steady 5,000 msgs/s.

One process (`benchmarks.wordcount latency`) runs an embedded journal server
with file storage (every append fsynced), a consumer group with one member
and one shard counting words into each store in turn, a publisher appending
`{"word": ..., "ts": ...}` messages at 5,000 msgs/s (10 every 2 ms, published
committed), and a downstream read-committed reader of the consumer's output:
each transaction publishes one message (uncommitted), readable once the
transaction's ACK is written after its commit. After one second of warm-up,
ten seconds (three with --quick) are measured:

- commit latency: from `start_commit` to the commit's future resolving
  (recovery-log appends durable, or the SQL COMMIT returned). Target p50
  <= 10 ms;
- publish → read-committed: from the publish call until the shard's
  read-committed reader hands the message to `consume_message`. Target
  p50 <= 20 ms;
- publish → output read-committed: until a downstream read-committed
  reader sees the output of the transaction that consumed the message: the
  whole exactly-once path (read, transaction, store commit, ACK). Target
  p50 <= 20 ms.

The floor is what durability costs on this disk, measured in the same run:
the p50 (p99) of a 4 KiB `os.write` + `os.fsync` in the same directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from . import wordcount
from .e2e import child
from .harness import Report
from .wordcount import percentiles

GROUP = "latency"
STORES = {
    "sqlite": "SQLiteStore (recovery log)",
    "json": "JSONFileStore (recovery log)",
    "sql": "SQLStore on SQLite",
}
RATE = 5_000


def fsync_latency(directory: Path, n: int = 200) -> dict[str, float]:
    fd = os.open(directory / "fsync-floor", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = b"x" * 4096
    samples = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
    return percentiles(samples)


def run(report: Report) -> None:
    seconds = 3.0 if report.quick else 10.0
    root = Path(tempfile.mkdtemp(prefix="gazette-trio-bench-latency-"))
    try:
        for store, label in STORES.items():
            load = wordcount.load_note()
            floor = fsync_latency(root)
            r = child(
                "latency", root, "--store", store, "--rate", str(RATE), "--seconds", str(seconds)
            )
            what = f"{label}, {r['rate']:,.0f} msgs/s"
            txns = (
                f"{r['transactions']:,} transactions of {r['messages']:,} msgs; the process "
                f"used {r['cpu_share']:.0%} of a CPU; {load}"
            )
            for figure, title, target in (
                ("commit_ms", "commit", 10.0),
                ("consumed_ms", "publish -> read-committed", 20.0),
                ("visible_ms", "publish -> output read-committed", 20.0),
            ):
                for q in ("p50", "p99"):
                    report.add(
                        GROUP,
                        f"{title} {q}, {what}",
                        r[figure][q],
                        "ms",
                        floor=floor[q],
                        floor_name=f"4 KiB write + fsync {q}",
                        higher_is_better=False,
                        target_value=target if q == "p50" else None,
                        note=txns if figure == "commit_ms" and q == "p50" else "",
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)
