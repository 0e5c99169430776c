"""Scaling out: 4 shards on 1 member beside 4 shards on 2 members in 2 processes.

Both layouts run the word count (`benchmarks.wordcount:ServedWordCount`,
SQLiteStore recording into each shard's recovery log) as `gazette-trio
serve` processes against the same external services, so that only the
number of member processes differs:

- a journal server process (`gazette-trio broker serve`, file storage)
  holding 4 input journals of 1,000,000 messages each (100,000 with
  --quick), appended in advance, and the shards' recovery logs;
- a private etcd (`/usr/bin/etcd`) on loopback.

Members join first (with a shard limit that splits the shards evenly); the
4 ShardSpecs are then applied into etcd, and the clock runs from that Apply
until every shard's `/status.json` reports its source read
through the journal's head (progress of committed transactions). The figure
is messages per second over all shards, 2 processes beside 1 (target
>= 1.7x). CPU seconds of every process over the same span are noted: on a
machine with fewer cores than member processes plus the journal server, the
members compete with the server that feeds them.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

from gazette_trio import aio
from gazette_trio.allocator import apply_shard_specs
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.etcd import GrpcEtcd
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG

from . import wordcount
from .harness import Report

GROUP = "scaling"
SHARDS = 4
REPO = Path(__file__).resolve().parent.parent
GAZETTE_TRIO = [sys.executable, "-c", "from gazette_trio.cli import main; main()"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# No committed progress for this long means the members are stuck.
STALL = 30.0


def serve_available() -> bool:
    try:
        import gazette_trio.runtime.serve  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextlib.contextmanager
def process(args: list[str], log: Path, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the life of the block, then SIGTERM (SIGKILL if stuck)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextlib.contextmanager
def etcd(root: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    client, peer = free_port(), free_port()
    with process(
        [
            shutil.which("etcd") or "/usr/bin/etcd",
            "--name=bench",
            f"--data-dir={root}/etcd",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=bench=http://127.0.0.1:{peer}",
            "--log-level=error",
        ],
        root / "etcd.log",
    ) as proc:
        wait_port(client, proc)
        yield f"http://127.0.0.1:{client}", proc


@contextlib.contextmanager
def broker(data: Path, root: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    with process(
        [
            *GAZETTE_TRIO,
            "broker",
            "serve",
            "--data-dir",
            str(data / "broker"),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        root / "broker.log",
    ) as proc:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}", proc


MEMBER_CONFIG = """\
data_dir = "{data_dir}"

[application]
module = "benchmarks.wordcount:ServedWordCount"
name = "bench"

[application.settings]
store = "sqlite"

[member]
suffix = "{suffix}"
port = {grpc}
shard_limit = {limit}

[etcd]
endpoints = ["{etcd}"]
prefix = "/gazette/consumers/bench-{run}"

[broker]
endpoint = "{broker}"

[http]
port = {http}

[log]
level = "warning"
"""


def apply_shards(etcd_url: str, run: str, journals: list[str]) -> float:
    """Apply the layout's ShardSpecs straight into etcd, over a connection
    opened beforehand; returns `time.perf_counter()` as the Apply is sent,
    so the clock holds none of this process's start-up."""
    specs = [
        pc.ShardSpec(
            id=wordcount.shard_id(p),
            sources=[pc.ShardSpecSource(journal=journal)],
            recovery_log_prefix=f"bench/recovery/{run}",
            hint_prefix=f"/bench/hints/{run}",
            max_txn_duration=datetime.timedelta(seconds=1),
        )
        for p, journal in enumerate(journals)
    ]
    changes = [pc.ApplyRequestChange(upsert=s, expect_mod_revision=-1) for s in specs]

    async def apply() -> float:
        async with aio.asyncio_island(), GrpcEtcd.open(etcd_url) as etcd:
            await etcd.range("/", prefix=True)
            started = time.perf_counter()
            await apply_shard_specs(etcd, f"/gazette/consumers/bench-{run}", changes)
            return started

    return trio.run(apply)


def layout(
    run: str,
    members: int,
    data: Path,
    root: Path,
    etcd_url: str,
    broker_url: str,
    expected: dict[str, Any],
    others: list[subprocess.Popen[bytes]],
) -> dict[str, Any]:
    """Run `members` serve processes over the 4 shards; msgs/s and CPU."""
    heads = {p["journal"]: p["head"] for p in expected["partitions"]}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with contextlib.ExitStack() as stack:
        procs = []
        ports = []
        for m in range(members):
            grpc, http = free_port(), free_port()
            directory = root / f"{run}-member-{m}"
            directory.mkdir()
            config = directory / "config.toml"
            config.write_text(
                MEMBER_CONFIG.format(
                    data_dir=directory / "data",
                    suffix=f"bench-member-{m}",
                    grpc=grpc,
                    limit=SHARDS // members,
                    etcd=etcd_url,
                    run=run,
                    broker=broker_url,
                    http=http,
                )
            )
            proc = stack.enter_context(
                process(
                    [*GAZETTE_TRIO, "serve", str(config)],
                    directory / "serve.log",
                    env=env,
                    cwd=REPO,
                )
            )
            procs.append(proc)
            ports.append((grpc, http))
        for proc, (grpc, http) in zip(procs, ports, strict=True):
            wait_port(grpc, proc, timeout=60)
            wait_port(http, proc, timeout=60)
        watched = procs + others
        load = wordcount.load_note()
        cpu_before = [cpu_seconds(p.pid) for p in watched]
        start = apply_shards(etcd_url, run, list(heads))
        moved_at, last = start, -1
        while True:
            read = progress([http for _, http in ports])
            if all(read.get(j, 0) >= head for j, head in heads.items()):
                break
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{run}: a member exited with {proc.returncode}")
            now = time.perf_counter()
            if sum(read.values()) != last:
                moved_at, last = now, sum(read.values())
            elif now - moved_at > STALL:
                raise RuntimeError(
                    f"{run}: no transaction completed for {STALL:.0f} s "
                    f"(committed read-through {read} of {heads}): the members are stuck"
                )
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        cpu = [cpu_seconds(p.pid) - before for p, before in zip(watched, cpu_before, strict=True)]
    return {
        "load": load,
        "msgs_per_s": expected["messages"] / elapsed,
        "wall_s": elapsed,
        "member_cpu_s": cpu[:members],
        "broker_cpu_s": cpu[members],
        "etcd_cpu_s": cpu[members + 1],
    }


def progress(http_ports: list[int]) -> dict[str, int]:
    """Journal → committed read-through, from the members' /status.json."""
    read: dict[str, int] = {}
    for port in http_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=10) as r:
            doc = json.load(r)
        for shard in doc["shards"]:
            for source in shard["sources"]:
                if source["read_through"] is not None:
                    read[source["journal"]] = max(
                        read.get(source["journal"], 0), source["read_through"]
                    )
    return read


def run(report: Report) -> None:
    if not serve_available():
        print("  `gazette-trio serve` is not available: no scaling figures", flush=True)
        return
    per_shard = 100_000 if report.quick else 1_000_000
    root = Path(tempfile.mkdtemp(prefix="gazette-trio-bench-scaling-"))
    try:
        data = root / "words"
        expected = wordcount.generate(data, per_shard * SHARDS, SHARDS, plain_copy=False)
        wordcount.create_journals(
            data,
            [
                new_journal_spec(
                    f"bench/recovery/{run}/{wordcount.shard_id(p)}",
                    content_type=CONTENT_TYPE_RECOVERY_LOG,
                )
                for run in ("one", "two")
                for p in range(SHARDS)
            ],
        )
        size = f"{per_shard * SHARDS:,} msgs"
        name = f"4 shards on 2 members in 2 processes ({size})"
        try:
            with (
                etcd(root) as (etcd_url, etcd_proc),
                broker(data, root) as (broker_url, broker_proc),
            ):
                others = [broker_proc, etcd_proc]
                one = layout("one", 1, data, root, etcd_url, broker_url, expected, others)
                two = layout("two", 2, data, root, etcd_url, broker_url, expected, others)
        except RuntimeError as exc:
            # A figure that cannot be measured is a missed target, not a
            # crash of the whole run.
            report.add(GROUP, name, 0.0, "msgs/s", target_value=1.0, note=f"FAILED: {exc}")
            return

        def cpu_note(r: dict[str, Any]) -> str:
            members = " + ".join(f"{c:.1f}" for c in r["member_cpu_s"])
            return (
                f"CPU s: members {members}, journal server {r['broker_cpu_s']:.1f}, "
                f"etcd {r['etcd_cpu_s']:.1f}; {r['load']}"
            )

        report.add(
            GROUP,
            name,
            two["msgs_per_s"],
            "msgs/s",
            floor=one["msgs_per_s"],
            floor_name="4 shards on 1 member",
            target_ratio=1.7,
            note=f"2 members: {cpu_note(two)} | 1 member: {cpu_note(one)}",
        )
        messages = per_shard * SHARDS
        report.add(
            GROUP,
            f"msgs per member CPU second, 2 processes ({size})",
            messages / sum(two["member_cpu_s"]),
            "msgs/CPU-s",
            floor=messages / sum(one["member_cpu_s"]),
            floor_name="1 process",
            note="what a second process costs per message, whatever else runs on the machine",
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
