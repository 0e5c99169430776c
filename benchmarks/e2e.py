"""End-to-end exactly-once throughput of a word count, beside the floor and a peer.

The workload and every measured case are `benchmarks.wordcount`'s: 1,000,000
JSON messages (100,000 with --quick) over 10,000 distinct words, appended in
advance to one journal of an embedded journal server with file storage, then
counted by one shard of a gazette-trio consumer group with in-memory
aggregation flushed in `finalize_txn` to each store in turn. Each case runs
in a fresh process, three times (twice with --quick), interleaved with the
others, and the best run counts (the machines are shared); the committed
counts are checked after every run.

Figures (msgs/s from the shard's store opening until the transaction that
read the last message has committed; CPU seconds of the whole process over
the same span):

- each store (JSONFileStore and SQLiteStore recording into the shard's
  recovery log, SQLStore on an SQLite file) beside the floor: a plain-Python
  loop reading the same bytes, decoding with orjson, counting into a dict
  and committing the changed keys plus the offset to SQLite (WAL,
  synchronous=FULL) every 10,000 lines. Target >= 0.6x;
- the same figures beside Bytewax (if installed; it is no dependency): the
  same count as a dataflow with SQLite recovery and 1 s snapshots. Target
  >= 1.2x;
- CPU seconds of each, beside the floor's;
- each store again with the word count written in the short form
  (`Aggregation`: a key function and a reducer) beside the full
  `Application`. Target >= 0.95x (within 5%);
- the JSONFileStore case again with Python's default collector settings,
  to show what the runtime's gc tuning (`wordcount.tune_gc`, which `serve`
  applies after start-up) is worth;
- peak RSS over the 1M-message run; and, without --quick, one run of
  10,000,000 messages reporting peak RSS after 10M beside its own peak after
  the first 1M. Target <= 1.1x (memory stays flat).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import wordcount
from .harness import Report

GROUP = "e2e"
STORES = {
    "json": "JSONFileStore (recovery log)",
    "sqlite": "SQLiteStore (recovery log)",
    "sql": "SQLStore on SQLite",
}
FLOOR = "plain loop: orjson + dict + SQLite commit every 10,000 lines"
PEER = "Bytewax 0.21 dataflow, SQLite recovery, 1 s snapshots"


def child(case: str, directory: Path, *args: str) -> dict[str, Any]:
    """Run one case of `benchmarks.wordcount` in its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.wordcount", case, str(directory), *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wordcount {case} {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def best(results: list[dict[str, Any]]) -> dict[str, Any]:
    return max(results, key=lambda r: r["msgs_per_s"])


def run(report: Report) -> None:
    messages = 100_000 if report.quick else 1_000_000
    repeat = 2 if report.quick else 3
    root = Path(tempfile.mkdtemp(prefix="gazette-trio-bench-e2e-"))
    load = wordcount.load_note()
    try:
        data = root / "words"
        wordcount.generate(data, messages, 1)
        peer = wordcount.bytewax_available()
        if not peer:
            print("  Bytewax is not installed (pip install bytewax): no peer figures", flush=True)
        cases: dict[str, list[str]] = {"floor": ["floor"]}
        for store in STORES:
            cases[store] = ["consume", "--store", store]
            cases[f"{store}-aggregate"] = ["consume", "--store", store, "--form", "aggregate"]
        cases["default-gc"] = ["consume", "--store", "json", "--default-gc"]
        if peer:
            cases["bytewax"] = ["bytewax"]
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
        for _ in range(repeat):
            for name, (case, *args) in cases.items():
                results[name].append(child(case, data, *args))
        got = {name: best(r) for name, r in results.items()}
        floor = got["floor"]
        size = f"{messages:,} msgs"

        for store, label in STORES.items():
            r = got[store]
            report.add(
                GROUP,
                f"word count, 1 shard, {label} ({size})",
                r["msgs_per_s"],
                "msgs/s",
                floor=floor["msgs_per_s"],
                floor_name=FLOOR,
                target_ratio=0.6,
                note=f"CPU {r['cpu_s']:.2f} s vs floor {floor['cpu_s']:.2f} s; {load}",
            )
        if peer:
            bw = got["bytewax"]
            for store, label in STORES.items():
                r = got[store]
                report.add(
                    GROUP,
                    f"word count, 1 shard, {label}, vs peer ({size})",
                    r["msgs_per_s"],
                    "msgs/s",
                    floor=bw["msgs_per_s"],
                    floor_name=PEER,
                    target_ratio=1.2,
                    note=f"Bytewax CPU {bw['cpu_s']:.2f} s",
                )
        for store, label in STORES.items():
            r = got[store]
            report.add(
                GROUP,
                f"CPU seconds, {label} ({size})",
                r["cpu_s"],
                "s",
                floor=floor["cpu_s"],
                floor_name=FLOOR,
                higher_is_better=False,
            )
        for store, label in STORES.items():
            r = got[f"{store}-aggregate"]
            report.add(
                GROUP,
                f"word count, 1 shard, {label}, short form (Aggregation) ({size})",
                r["msgs_per_s"],
                "msgs/s",
                floor=got[store]["msgs_per_s"],
                floor_name="the same count as a full Application",
                target_ratio=0.95,
                note=f"CPU {r['cpu_s']:.2f} s vs {got[store]['cpu_s']:.2f} s",
            )
        r = got["default-gc"]
        report.add(
            GROUP,
            f"word count, 1 shard, JSONFileStore, default gc settings ({size})",
            r["msgs_per_s"],
            "msgs/s",
            floor=got["json"]["msgs_per_s"],
            floor_name="the same with the runtime's gc tuning",
            note="gc.freeze() after start-up and gc.set_threshold(50_000, 20, 20) are worth this",
        )
        for store, label in STORES.items():
            r = got[store]
            report.add(
                GROUP,
                f"peak RSS, {label} ({size})",
                r["peak_rss_mib"],
                "MiB",
                floor=floor["peak_rss_mib"],
                floor_name="the floor's process",
                higher_is_better=False,
            )
        if not report.quick:
            memory_flat(report, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def memory_flat(report: Report, root: Path) -> None:
    """One 10M-message run: peak RSS after 10M beside its peak after 1M."""
    data = root / "words-10m"
    wordcount.generate(data, 10_000_000, 1, plain_copy=False)
    r = child("consume", data, "--store", "sqlite", "--rss-at", "1000000")
    report.add(
        GROUP,
        "peak RSS after 10,000,000 msgs, SQLiteStore (recovery log)",
        r["peak_rss_mib"],
        "MiB",
        floor=r["rss_at_mib"],
        floor_name="its peak after the first 1,000,000",
        higher_is_better=False,
        target_ratio=1.1,
        note=f"{r['msgs_per_s']:,.0f} msgs/s over the 10M run",
    )
