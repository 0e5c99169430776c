"""Cross-language exactly-once: upstream's Go `chunker` against gazette-trio's summers.

The set-up: a real etcd 3.5, two `gazette serve` brokers, and two
`gazette-trio serve examples/stream_sum/config.toml` members in two zones,
whose journals and recovery logs live on those brokers. Upstream's Go
`chunker` (v0.103.0, unchanged) writes its streams there and verifies each
sum it reads back; it exits non-zero on a wrong or missing sum.

What is promised:

- upstream's chunker exits 0, every stream verified, while the summers are
  SIGKILLed (no drain, no lease revocation) and restarted during the run:
  the example's messages, journals and mapping are upstream's, so the Go
  chunker finds the chunk partitions by its label, maps its streams onto
  them, and reads gazette-trio's sums as its own;
- exactly once: upstream's chunker waits for each stream's sum and ignores
  any other, so this test also reads the sums journal read-committed after
  the run and finds each of the chunker's streams there exactly once, and
  nothing else;
- the kills moved shards: at least two kills (of three planned, a second
  apart) hit a live member while the chunker was still running, and a
  standby on the other member took over (the summer logs "first commit
  here ... after the last commit of ...").

And the other way round: the example's own `chunker.py` verifies upstream's
Go summer when it publishes as upstream's chunker does (`--committed`);
its default, transactional chunks carry ACKs that upstream's summer cannot
take (it exits on the first, as shown).

The helpers here (members of both kinds, the Go chunker, reading the sums)
are shared with test_mixed_group.py.
"""

from __future__ import annotations

import collections
import json
import socket
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from gazette_trio import aio
from gazette_trio.broker import GrpcJournalClient, append
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.message import open_committed
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
from gazette_trio.runtime.config import load_config

from ..examples.processes import (
    PYTHON,
    REPO,
    SERVING,
    MemberPorts,
    Proc,
    ProcessGroup,
    clean_env,
    member_env,
    serve_args,
)
from ..services import free_port
from .conftest import Gazctl, GazetteCluster, peer, wait_until

# The example's modules, importable as `gazette-trio serve` imports them.
if str(REPO / "examples" / "stream_sum") not in sys.path:
    sys.path.insert(0, str(REPO / "examples" / "stream_sum"))

from stream_sum import Sum

pytestmark = pytest.mark.etcd

SUMS = "examples/stream-sum/sums"
CHUNK_JOURNALS = [f"examples/stream-sum/chunks/part-00{i}" for i in range(4)]
CHUNKER = str(REPO / "examples" / "stream_sum" / "chunker.py")
SHARDS = [f"chunks-part-00{i}" for i in range(4)]
GO_CHUNKER_DIAGNOSTICS = 8080
"""The Go chunker serves diagnostics on :8080 whatever its flags say, and
exits if it cannot."""


@dataclass
class Group:
    """One consumer group of the example: its etcd root and hint prefix are
    its own, so runs on one etcd never read each other's hints."""

    prefix: str
    hints: str

    @classmethod
    def fresh(cls) -> Group:
        tag = uuid.uuid4().hex[:8]
        return cls(f"/gazette/consumers/stream-sum-{tag}", f"/gazette/hints/stream-sum-{tag}")


@dataclass
class TrioSummer:
    """A `gazette-trio serve` member running examples/stream_sum."""

    name: str
    zone: str
    ports: MemberPorts
    proc: Proc

    def alive(self) -> bool:
        return self.proc.popen.poll() is None


def start_trio_summer(
    procs: ProcessGroup,
    gazette: GazetteCluster,
    group: Group,
    name: str,
    zone: str,
    data_dir: Path,
) -> TrioSummer:
    """A member on the real brokers, serving once it logs that it does."""
    ports = MemberPorts()
    env = member_env(
        ports,
        data_dir,
        suffix=name,
        zone=zone,
        etcd=gazette.etcd,
        etcd_prefix=group.prefix,
        lease_ttl="2s",
        broker=gazette.endpoint,
        json_logs=True,
    )
    env["GAZETTE_TRIO_SHARDS__COMMON__HINT_PREFIX"] = group.hints
    proc = procs.start(name, serve_args("stream_sum"), env)
    proc.wait_for_log(SERVING, timeout=30)
    return TrioSummer(name, zone, ports, proc)


def wait_caught_up(member: TrioSummer, endpoint: str) -> None:
    """Until the shards have committed reading their sources through the
    write heads they have now, as the member's /status.json says: what is
    already in the chunk journals (another test's, say) is summed before
    what comes next."""
    heads = {journal: write_head(endpoint, journal) for journal in CHUNK_JOURNALS}

    def caught_up() -> bool:
        url = f"http://127.0.0.1:{member.ports.http}/status.json"
        with urllib.request.urlopen(url, timeout=5) as response:
            shards = json.load(response)["shards"]
        read = {
            src["journal"]: src["read_through"] or 0 for shard in shards for src in shard["sources"]
        }
        return all(read.get(journal, 0) >= head for journal, head in heads.items())

    wait_until(f"the shards read their sources through {heads}", caught_up, 60, 0.2)


def takeovers(procs: ProcessGroup) -> list[dict[str, Any]]:
    """The summers' records of a shard taken over from another process."""
    return [r for p in procs.procs for r in p.json_lines() if "failover_s" in r]


def wait_diagnostics_port_free(timeout: float = 60.0) -> None:
    def free() -> bool:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", GO_CHUNKER_DIAGNOSTICS))
            except OSError:
                return False
            return True

    wait_until(f"port {GO_CHUNKER_DIAGNOSTICS} free for the Go chunker", free, timeout, 0.5)


def start_go_chunker(
    procs: ProcessGroup, gazette: GazetteCluster, *, streams: int, chunks: int, workers: int
) -> Proc:
    """Upstream's chunker: `workers` x `streams` streams of `chunks` chunks each."""
    wait_diagnostics_port_free()
    return procs.start(
        "go-chunker",
        [
            peer("chunker"),
            "run",
            f"--broker.address={gazette.address}",
            f"--chunker.streams={streams}",
            f"--chunker.chunks={chunks}",
            f"--chunker.workers={workers}",
            "--chunker.zone=zone-a",
            "--log.level=info",
        ],
        {"PATH": "/usr/bin:/bin"},
    )


def start_go_summer(
    procs: ProcessGroup, gazette: GazetteCluster, group: Group, name: str, zone: str, tmp: Path
) -> tuple[Proc, str]:
    """Upstream's summer in `group`; its shard stores live under `tmp` (its TMPDIR)."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    proc = procs.start(
        name,
        [
            peer("summer"),
            "serve",
            "--consumer.host=127.0.0.1",
            f"--consumer.port={port}",
            f"--consumer.zone={zone}",
            f"--consumer.id={name}",
            f"--etcd.address={gazette.etcd}",
            f"--etcd.prefix={group.prefix}",
            "--etcd.lease=2s",
            f"--broker.address={gazette.address}",
            f"--broker.file-root={gazette.file_root}",
            "--broker.cache.size=256",
            "--log.level=info",
            "--log.format=json",
        ],
        {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp)},
    )
    proc.wait_for_log("starting consumer")
    return proc, f"127.0.0.1:{port}"


async def _committed_sums(endpoint: str, offset: int) -> list[Any]:
    out: list[Any] = []
    async with aio.asyncio_island(), aio.Channel(endpoint) as channel:
        client = GrpcJournalClient(channel, timeout=30)
        async with open_committed(client, SUMS, Sum, offset=offset, block=False) as reader:
            async for envelope in reader:
                if not envelope.is_ack:
                    out.append(envelope.message)
    return out


def committed_sums(endpoint: str, offset: int = 0) -> list[Any]:
    """Every sum the sums journal committed from `offset` (read-committed,
    ACKs left out)."""
    return trio.run(_committed_sums, endpoint, offset)


async def _write_head(endpoint: str, journal: str) -> int:
    async with aio.asyncio_island(), aio.Channel(endpoint) as channel:
        commit = (await append(GrpcJournalClient(channel, timeout=30), journal, b"")).commit
        assert commit is not None
        return commit.end


def write_head(endpoint: str, journal: str) -> int:
    """A journal's write head (an empty append's commit ends there)."""
    return trio.run(_write_head, endpoint, journal)


def sums_by_stream(sums: list[Any]) -> collections.Counter[bytes]:
    return collections.Counter(bytes(s["ID"]) for s in sums)


def test_upstreams_chunker_verifies_gazette_trio_summers_killed_and_restarted(
    gazette: GazetteCluster, group: ProcessGroup, tmp_path: Path
) -> None:
    consumers = Group.fresh()
    members = {
        zone: start_trio_summer(
            group, gazette, consumers, f"summer-{zone}-0", zone, tmp_path / zone
        )
        for zone in ("zone-a", "zone-b")
    }
    wait_caught_up(members["zone-a"], gazette.endpoint)
    head = write_head(gazette.endpoint, SUMS)  # Sums of chunks already there come before.
    workers, streams, chunks = 2, 600, 20
    chunker = start_go_chunker(group, gazette, streams=streams, chunks=chunks, workers=workers)
    chunker.wait_for_log("starting chunker")

    kills = 0
    for round_ in range(1, 4):
        time.sleep(1.0)
        if chunker.popen.poll() is not None:
            break
        zone = ("zone-a", "zone-b")[round_ % 2]
        victim = members[zone]
        assert victim.alive(), victim.proc.tail()
        kills += 1
        victim.proc.kill()
        # Restarted at once, as a new process of the zone (its old member key
        # expires with its lease, 2 s, and its shards move to the standbys).
        members[zone] = start_trio_summer(
            group,
            gazette,
            consumers,
            f"summer-{zone}-{round_}",
            zone,
            tmp_path / f"{zone}-{round_}",
        )

    code = chunker.wait(timeout=120)
    assert code == 0, chunker.tail()
    assert kills >= 2, f"the chunker finished after {kills} kill(s): too few to test hand-offs"

    counts = sums_by_stream(committed_sums(gazette.endpoint, head))
    assert len(counts) == workers * streams, "a stream's sum is missing, or a stranger's is there"
    repeated = {s.hex(): n for s, n in counts.items() if n != 1}
    assert not repeated, f"streams summed more than once: {repeated}"

    moved = takeovers(group)
    assert moved, "no shard changed hands: the kills tested nothing"
    assert {r["shard"] for r in moved} <= set(SHARDS)
    for member in members.values():
        assert member.alive(), member.proc.tail()
        assert member.proc.terminate(timeout=30) == 0, member.proc.tail()


def shards_yaml(group: Group, recovery_logs: str) -> str:
    """The example's shards as a gazctl shardspace, as upstream's
    generate-shards.sh writes them (SQLite store on each)."""
    return (
        f"common:\n  recovery_log_prefix: {recovery_logs}\n  hint_prefix: {group.hints}\n"
        "  hint_backups: 2\n  max_txn_duration: 1s\n  hot_standbys: 1\nshards:\n"
    ) + "".join(
        f"- id: {shard}\n  sources: [journal: examples/stream-sum/chunks/part-00{i}]\n"
        "  labels:\n    - name: store\n      value: sqlite\n"
        for i, shard in enumerate(SHARDS)
    )


async def _create_journals(endpoint: str, recovery_logs: str) -> None:
    """The example's declared journals, and recovery logs under `recovery_logs`."""
    specs = load_config(REPO / "examples" / "stream_sum" / "config.toml").declared_journals()
    specs += [
        new_journal_spec(f"{recovery_logs}/{shard}", content_type=CONTENT_TYPE_RECOVERY_LOG)
        for shard in SHARDS
    ]
    async with aio.asyncio_island(), aio.Channel(endpoint) as channel:
        client = GrpcJournalClient(channel, timeout=30)
        await apply_journals(client, [upsert(spec, -1) for spec in specs])


def test_gazette_trios_chunker_verifies_upstreams_go_summer_when_it_publishes_committed(
    gazette: GazetteCluster, group: ProcessGroup, gazctl: Gazctl, tmp_path: Path
) -> None:
    """examples/stream_sum/chunker.py against upstream's Go summer (alone in
    its group): with `--committed` (each chunk committed on its own, as
    upstream's chunker writes them) it verifies every sum. Without, its
    transactions put ACKs into the chunk journals, and upstream's summer,
    which folds every message it reads into a sum (Gazette hands ACKs to
    ConsumeMessage too), exits on the first one."""
    consumers = Group.fresh()
    recovery_logs = f"examples/stream-sum/recovery-logs-{consumers.prefix.rsplit('-', 1)[1]}"
    trio.run(_create_journals, gazette.endpoint, recovery_logs)
    go, endpoint = start_go_summer(group, gazette, consumers, "go-summer-0", "zone-b", tmp_path)
    shards = gazctl.at(broker=gazette.endpoint, consumer=endpoint)
    shards("shards", "apply", input=shards_yaml(consumers, recovery_logs)).ok()

    chunker = [PYTHON, CHUNKER, "-b", gazette.endpoint, "--chunks", "10", "--delay", "60"]
    code, out = group.run("chunker", [*chunker, "--streams", "40", "--committed"], clean_env(), 120)
    assert code == 0, out
    assert "40 streams, each sum arrived exactly once and matched" in out

    late = group.start("chunker-txn", [*chunker, "--streams", "5"], clean_env())
    assert go.wait(timeout=60) != 0
    assert "invalid chunk.SeqNo (0; sum.SeqNo 0; id 00000000000000000000000000000000)" in go.text()
    late.kill()
