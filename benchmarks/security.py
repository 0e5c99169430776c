"""What TLS and tokens cost: the same work with security on and off.

Three cases, each measured with everything secured (the journal server
verifying a token per call and serving TLS; the consumer dialing TLS and
signing its calls with a shared key) beside the same run in plaintext
without tokens, which is the floor:

- e2e: the `e2e` group's word count (`benchmarks.wordcount`: SQLiteStore
  recorded into its recovery log, one shard) with its journals on a
  `gazette-trio broker serve` in a process of its own, as a broker is, so
  that every read of the input and every recovery-log append crosses TLS
  and carries a token. msgs/s, the member's CPU seconds, and the broker
  process's CPU seconds from the member joining to its read-through (it
  encrypts what the member decrypts); target: secured >= 0.9x plaintext
  (security costs at most 10%).
- read: the word count's input journal (75 MB of 1,000,000 messages) read
  whole over gRPC from the same kind of broker process, three times on one
  connection: the reader's CPU seconds (the least of the three) and the
  broker's over the reads. No application work rides along, so the
  difference is TLS's own cost, and CPU time holds up on a shared machine
  where throughput does not. Reported beside plaintext; no target.
- latency: one small append (100 bytes) at a time over gRPC, waited for,
  p50 and p99 over a few thousand: the per-call cost of verifying a token
  and of TLS records. Reported beside plaintext; no target.

Each case runs in its own process (`python -m benchmarks.security <case>
DIR --secured/--plain`), alternating plaintext and secured, best of five
(two with --quick). On a shared machine one run can be a third slower than
the next, so the note also gives the median of each back-to-back pair's
ratio, which a burst of load on one run moves less. The certificates are
made with the `openssl` command.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from . import wordcount
from .harness import Report

GROUP = "security"
KEY = base64.b64encode(b"benchmark key, not a secret").decode()
REPO = Path(__file__).resolve().parent.parent


def _child(case: str, directory: Path, secured: bool, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.security",
            case,
            str(directory),
            "--secured" if secured else "--plain",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"security {case} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _pki(directory: Path) -> None:
    sys.path.insert(0, str(REPO))
    from tests.auth.pki import make_pki

    make_pki(directory / "pki")


def run(report: Report) -> None:
    if shutil.which("openssl") is None:
        print("[security] skipped: the certificates are made with the openssl command")
        return
    messages = 100_000 if report.quick else 1_000_000
    repeat = 2 if report.quick else 5
    root = Path(tempfile.mkdtemp(prefix="gazette-trio-bench-security-"))
    try:
        _pki(root)
        wordcount.generate(root, messages, 1, plain_copy=False)
        load = wordcount.load_note()
        results: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for _ in range(repeat):
            for secured in (False, True):
                results[secured].append(_child("consume", root, secured))
        plain = max(results[False], key=lambda r: r["msgs_per_s"])
        secure = max(results[True], key=lambda r: r["msgs_per_s"])
        pairs = sorted(
            s["msgs_per_s"] / p["msgs_per_s"]
            for p, s in zip(results[False], results[True], strict=True)
        )
        report.add(
            GROUP,
            f"e2e word count, SQLiteStore, journals over gRPC, TLS + tokens ({messages:,} msgs)",
            secure["msgs_per_s"],
            "msgs/s",
            floor=plain["msgs_per_s"],
            floor_name="the same in plaintext, no tokens",
            target_ratio=0.9,
            note=f"median of {len(pairs)} back-to-back pairs {statistics.median(pairs):.2f}x "
            f"(each {', '.join(f'{r:.2f}' for r in pairs)}); {load}; "
            f"at the end {wordcount.load_note()}",
        )
        # The member's own CPU is steadier than throughput on a shared machine.
        for who, key in (("the member's", "cpu_s"), ("the broker's", "broker_cpu_s")):
            report.add(
                GROUP,
                f"e2e word count, {who} CPU seconds, TLS + tokens ({messages:,} msgs)",
                min(r[key] for r in results[True]),
                "s",
                floor=min(r[key] for r in results[False]),
                floor_name="the same in plaintext, no tokens",
                higher_is_better=False,
            )
        reads: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for _ in range(repeat):
            for secured in (False, True):
                reads[secured].append(_child("read", root, secured))
        size = reads[True][0]["bytes"]
        for who, key in (("the reader's", "cpu_s"), ("the broker's", "broker_cpu_s")):
            report.add(
                GROUP,
                f"journal read over gRPC ({size / 1e6:.0f} MB), {who} CPU seconds, TLS + tokens",
                min(r[key] for r in reads[True]),
                "s",
                floor=min(r[key] for r in reads[False]),
                floor_name="the same in plaintext, no tokens",
                higher_is_better=False,
            )
        count = 1_000 if report.quick else 3_000
        lat: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for _ in range(repeat):
            for secured in (False, True):
                lat[secured].append(_child("latency", root, secured, "--count", str(count)))
        for q in ("p50", "p99"):
            secure_q = min(r[q] for r in lat[True])
            plain_q = min(r[q] for r in lat[False])
            report.add(
                GROUP,
                f"append round trip {q}, 100 B, TLS + tokens",
                secure_q,
                "ms",
                floor=plain_q,
                floor_name=f"plaintext, no tokens {q}",
                higher_is_better=False,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------
# The child processes


def _security(directory: Path, secured: bool) -> tuple[Any, Any, Any, str]:
    from gazette_trio import aio
    from gazette_trio.auth import tls
    from gazette_trio.auth.authorizer import KeyedAuthorizer, channel_hook
    from gazette_trio.auth.tokens import Keys
    from gazette_trio.auth.verifier import OPEN, Verifier

    if not secured:
        return OPEN, None, aio.DialCredentials(), "http://127.0.0.1:{port}"
    pki = directory / "pki"
    keys = Keys.parse(KEY)
    return (
        Verifier(keys),
        tls.server_context(pki / "node.pem", pki / "node.key"),
        aio.DialCredentials(
            ssl=tls.client_context(pki / "ca.pem"), metadata=channel_hook(KeyedAuthorizer(keys))
        ),
        "https://localhost:{port}",
    )


def _broker(directory: Path, secured: bool, port: int) -> subprocess.Popen[bytes]:
    """`gazette-trio broker serve` over the generated journals, in its own
    process as a broker is, secured or not."""
    args = [
        sys.executable, "-m", "gazette_trio", "broker", "serve",
        "--data-dir", str(directory / "broker"), "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    if secured:
        pki = directory / "pki"
        (directory / "auth-keys").write_text(KEY)
        args += [
            "--auth-keys-file", str(directory / "auth-keys"),
            "--server-cert-file", str(pki / "node.pem"),
            "--server-key-file", str(pki / "node.key"),
        ]  # fmt: skip
    # Its log goes to a file: a pipe nobody reads would stall it once full.
    log = directory / f"broker-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=out, stdin=subprocess.DEVNULL
        )
    deadline = time.monotonic() + 60
    while "listening on" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"broker serve did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return proc


async def consume(directory: Path, secured: bool) -> dict[str, Any]:
    from gazette_trio import aio
    from gazette_trio.broker.grpc_client import GrpcJournalClient
    from gazette_trio.broker.journal_spec import new_journal_spec
    from gazette_trio.broker.server import JournalServerCore, MemoryStorage
    from gazette_trio.etcd import MemoryEtcd
    from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
    from gazette_trio.testing.cluster import Cluster

    _, _, credentials, endpoint = _security(directory, secured)
    expected = wordcount.load_expected(directory)
    run = f"sqlite-{'tls' if secured else 'plain'}-{os.getpid()}"
    run_dir = directory / "runs" / run
    run_dir.mkdir(parents=True)
    meter = wordcount.Meter()
    app = wordcount.WordCount("sqlite", run_dir, meter)
    specs = wordcount.shard_specs(expected, "sqlite", run)
    port = _free_port()
    broker = _broker(directory, secured, port)
    try:
        async with (
            aio.asyncio_island(),
            aio.Channel(endpoint.format(port=port), credentials=credentials) as channel,
            MemoryEtcd.open() as etcd,
            trio.open_nursery() as nursery,
        ):
            # The cluster's own core is unused: every journal call (listings,
            # reads of the input, recovery-log appends) goes to the broker.
            cluster = Cluster(
                nursery,
                lambda: app,
                JournalServerCore(MemoryStorage()),
                etcd,
                run_dir,
                wordcount.ROOT,
            )
            # Any journal client serves the cluster; its attribute names the local one.
            cluster.journals = GrpcJournalClient(channel)  # type: ignore[assignment]
            await cluster.apply_journals(
                new_journal_spec(
                    f"{s.recovery_log_prefix}/{s.id}", content_type=CONTENT_TYPE_RECOVERY_LOG
                )
                for s in specs
            )
            await cluster.apply_shards(specs)
            wordcount.tune_gc()
            broker_cpu = _cpu_seconds(broker.pid)
            await cluster.add_member("bench")
            shards = []
            for spec, part in zip(specs, expected["partitions"], strict=True):
                shards.append(
                    await cluster.wait_read_through(spec.id, {part["journal"]: part["head"]})
                )
            meter.stop()
            broker_cpu = _cpu_seconds(broker.pid) - broker_cpu
            for spec, part, shard in zip(specs, expected["partitions"], shards, strict=True):
                got = await wordcount.committed_counts(
                    "sqlite", shard.store, run_dir, spec.id, "full"
                )
                if got != part["counts"]:
                    raise AssertionError(f"shard {spec.id}: counts differ from the input")
            nursery.cancel_scope.cancel()
    finally:
        broker.terminate()
        broker.wait(30)
    return meter.result(expected["messages"], secured=secured, broker_cpu_s=broker_cpu)


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process `pid` has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        # The fields after the command name, which is in parentheses and
        # may hold spaces: utime and stime are the 12th and 13th of them.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def read(directory: Path, secured: bool) -> dict[str, Any]:
    from gazette_trio import aio
    from gazette_trio.broker.grpc_client import GrpcJournalClient
    from gazette_trio.protocol import protocol as pb

    _, _, credentials, endpoint = _security(directory, secured)
    part = wordcount.load_expected(directory)["partitions"][0]
    port = _free_port()
    broker = _broker(directory, secured, port)
    runs: list[tuple[float, float]] = []
    size = 0
    try:
        async with (
            aio.asyncio_island(),
            aio.Channel(endpoint.format(port=port), credentials=credentials) as channel,
        ):
            client = GrpcJournalClient(channel)
            request = pb.ReadRequest(
                journal=part["journal"], offset=0, end_offset=part["head"], block=False
            )
            for _ in range(3):
                cpu, broker_cpu, size = time.process_time(), _cpu_seconds(broker.pid), 0
                async with client.read(request) as stream:
                    async for response in stream:
                        size += len(response.content or b"")
                runs.append((time.process_time() - cpu, _cpu_seconds(broker.pid) - broker_cpu))
    finally:
        broker.terminate()
        broker.wait(30)
    if size != part["head"]:
        raise AssertionError(f"read {size} bytes of the journal's {part['head']}")
    return {
        "bytes": size,
        "cpu_s": min(r[0] for r in runs),
        "broker_cpu_s": min(r[1] for r in runs),
        "secured": secured,
    }


async def latency(directory: Path, secured: bool, count: int) -> dict[str, Any]:
    from gazette_trio import aio
    from gazette_trio.broker.grpc_client import GrpcJournalClient
    from gazette_trio.broker.journal_spec import new_journal_spec
    from gazette_trio.broker.list_apply import apply_journals, upsert
    from gazette_trio.broker.server import FileStorage, JournalServerCore, journal_service
    from gazette_trio.protocol import protocol as pb

    verifier, server_tls, credentials, endpoint = _security(directory, secured)
    data = directory / f"latency-{os.getpid()}"
    core = JournalServerCore(FileStorage(data))
    samples: list[float] = []
    try:
        async with aio.asyncio_island(), trio.open_nursery() as nursery:
            port = await nursery.start(
                lambda task_status: aio.serve(
                    [journal_service(core, verifier)],
                    "127.0.0.1",
                    0,
                    tls=server_tls,
                    task_status=task_status,
                )
            )
            async with aio.Channel(endpoint.format(port=port), credentials=credentials) as ch:
                client = GrpcJournalClient(ch)
                await apply_journals(client, [upsert(new_journal_spec("bench/latency"))])
                record = b"x" * 99 + b"\n"
                for i in range(count + 100):
                    start = time.perf_counter()
                    await client.append(pb.AppendRequest(journal="bench/latency"), [record])
                    if i >= 100:  # the first calls warm the connection up
                        samples.append((time.perf_counter() - start) * 1000)
            nursery.cancel_scope.cancel()
    finally:
        core.close()
        shutil.rmtree(data, ignore_errors=True)
    samples.sort()
    return {
        "p50": samples[len(samples) // 2],
        "p99": samples[int(len(samples) * 0.99)],
        "secured": secured,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.security")
    parser.add_argument("case", choices=["consume", "read", "latency"])
    parser.add_argument("dir", type=Path)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--secured", action="store_true")
    mode.add_argument("--plain", action="store_true")
    parser.add_argument("--count", type=int, default=3_000)
    args = parser.parse_args()
    if args.case == "consume":
        result = trio.run(consume, args.dir, args.secured)
    elif args.case == "read":
        result = trio.run(read, args.dir, args.secured)
    else:
        result = trio.run(latency, args.dir, args.secured, args.count)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
