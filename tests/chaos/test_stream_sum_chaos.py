"""Chaos: stream sum on real processes, members SIGKILLed at random.

The set-up a production group has, on one machine: a real etcd, a journal
server (`gazette-trio broker serve`), and three `gazette-trio serve`
members in three zones, each running examples/stream_sum/config.toml (four
summer shards, one hot standby each, SQLite stores in recovery logs). The
chunker (`examples/stream_sum/chunker.py`) writes streams for the whole run
and verifies every sum as it arrives.

A driver then, for each cycle, waits a few seconds, SIGKILLs a random member
(no drain, no lease revocation: its shards move when its lease expires) and
starts it again at once (it joins once its old member key expired, which it
polls for every 10 s, as Gazette does). Two kills in three pick among the
members that are primary of some shard, so that most kills cause failovers. After
the last cycle the chunker finishes its open streams and verifies them.

What is promised: the chunker exits 0: every stream's sum arrived exactly
once and was right, within its delay, through all the kills (it exits 1
naming the stream otherwise); every member exits 0 on SIGTERM at the end.

Failover times are reported (printed, and written to
test-artifacts/chaos-stream-sum.json): for each shard whose primary was
killed, from the last commit of the killed primary to the first commit of
its successor, as the summer logs them (it stores each transaction's wall
time and process in its store, so the successor reads the old primary's last
commit with the shard's state), and from the kill itself to that first commit.

`CHAOS_CYCLES` (default 8) and `CHAOS_SEED` choose the run:
`CHAOS_CYCLES=50 pytest -m slow tests/chaos -s`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..examples.processes import (
    PYTHON,
    REPO,
    SERVING,
    MemberPorts,
    Proc,
    ProcessGroup,
    broker_args,
    clean_env,
    member_env,
    serve_args,
    wait_port,
)

pytestmark = [pytest.mark.slow, pytest.mark.etcd]

CYCLES = int(os.environ.get("CHAOS_CYCLES", "8"))
SEED = int(os.environ.get("CHAOS_SEED", str(random.randrange(1 << 30))))
LEASE_TTL = "2s"
PAUSE = (1.5, 3.5)  # Seconds between a restarted member joining and the next kill.
SHARDS = [f"chunks-part-00{i}" for i in range(4)]
ARTIFACTS = REPO / "test-artifacts"


@dataclass
class Kill:
    member: str
    pid: int
    at_ns: int


@dataclass
class Member:
    name: str
    zone: str
    ports: MemberPorts
    env: dict[str, str]
    proc: Proc


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "min": round(ordered[0], 3),
        "median": round(statistics.median(ordered), 3),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
    }


def primary_holders(members: dict[str, Member]) -> set[str]:
    """Members that are primary of some shard, as a live member's /status.json shows."""
    for member in members.values():
        if member.proc.popen.poll() is not None:
            continue
        url = f"http://127.0.0.1:{member.ports.http}/status.json"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                doc = json.load(response)
        except OSError:
            continue
        return {
            r["suffix"]
            for shard in doc["shards"]
            for r in shard["replicas"]
            if r["primary"] and r["status"] == "PRIMARY"
        }
    return set()


def takeovers(members: dict[str, list[Proc]]) -> list[dict[str, Any]]:
    """The summer's takeover records ("first commit here ... after the last
    commit of ...") from every incarnation of every member."""
    out = []
    for procs in members.values():
        for proc in procs:
            out += [r for r in proc.json_lines() if "failover_s" in r]
    return out


def test_stream_sums_stay_exactly_once_while_members_are_killed_and_restarted(
    tmp_path: Path, etcd_endpoint: str
) -> None:
    rng = random.Random(SEED)
    group = ProcessGroup(tmp_path / "logs")
    try:
        broker_port = MemberPorts().grpc
        group.start("broker", broker_args(tmp_path / "broker", broker_port), clean_env())
        wait_port(broker_port)
        broker = f"127.0.0.1:{broker_port}"
        prefix = f"/gazette/consumers/stream-sum-chaos-{uuid.uuid4().hex[:8]}"

        members: dict[str, Member] = {}
        incarnations: dict[str, list[Proc]] = {}
        for name, zone in (("alpha", "a"), ("beta", "b"), ("gamma", "c")):
            ports = MemberPorts()
            env = member_env(
                ports,
                tmp_path / name,
                suffix=name,
                zone=zone,
                etcd=etcd_endpoint,
                etcd_prefix=prefix,
                lease_ttl=LEASE_TTL,
                broker=broker,
                json_logs=True,
            )
            proc = group.start(name, serve_args("stream_sum"), env)
            proc.wait_for_log(SERVING, timeout=30)
            members[name] = Member(name, zone, ports, env, proc)
            incarnations[name] = [proc]

        chunker = group.start(
            "chunker",
            [
                PYTHON,
                "examples/stream_sum/chunker.py",
                "-b",
                broker,
                "--streams",
                "0",
                "--chunks",
                "10",
                "--concurrency",
                "40",
                "--rate",
                "250",
                "--delay",
                "60",
                "--seed",
                str(SEED),
            ],
            clean_env(),
        )

        kills: list[Kill] = []
        started = time.monotonic()
        for _ in range(CYCLES):
            time.sleep(rng.uniform(*PAUSE))
            assert chunker.popen.poll() is None, f"the chunker stopped:\n{chunker.tail()}"
            # Mostly a member that is primary somewhere (a failover follows),
            # sometimes any member (it may hold only standbys).
            holders = primary_holders(members) if rng.random() < 2 / 3 else set()
            victim = members[rng.choice(sorted(holders or members))]
            kills.append(Kill(victim.name, victim.proc.pid, time.time_ns()))
            victim.proc.kill()
            victim.proc = group.start(victim.name, serve_args("stream_sum"), victim.env)
            incarnations[victim.name].append(victim.proc)
            # It joins once the killed process's member key expired with its lease.
            victim.proc.wait_for_log(SERVING, timeout=60)
        chaos_seconds = time.monotonic() - started

        chunker.popen.send_signal(signal.SIGINT)
        code = chunker.wait(180)
        verdict = chunker.text()
        assert code == 0, f"chunker exit {code} (seed {SEED}):\n{chunker.tail(60)}"
        assert "each sum arrived exactly once and matched" in verdict

        for member in members.values():
            member.proc.popen.send_signal(signal.SIGTERM)
        for member in members.values():
            assert member.proc.wait(60) == 0, member.proc.tail()

        # Failover times: takeovers of a shard whose primary was killed
        # between its last commit and its successor's first. Other takeovers
        # are hand-offs between live members (the group rebalancing after a
        # member joined, or the drain at the end).
        killed = {f"pid {k.pid} on": k for k in kills}
        failovers, since_kill, hand_offs = [], [], []
        for record in takeovers(incarnations):
            previous = record["previous_process"]
            kill = next((k for p, k in killed.items() if previous.startswith(p)), None)
            if kill is not None and (
                record["previous_commit_ns"] <= kill.at_ns <= record["first_commit_ns"]
            ):
                failovers.append(record["failover_s"])
                since_kill.append((record["first_commit_ns"] - kill.at_ns) / 1e9)
            else:
                hand_offs.append(record["failover_s"])
        summary = verdict.strip().splitlines()[-1]
        report = {
            "seed": SEED,
            "cycles": CYCLES,
            "chaos_seconds": round(chaos_seconds, 1),
            "lease_ttl": LEASE_TTL,
            "kills": [k.member for k in kills],
            "chunker": summary,
            "failover_last_commit_to_first_commit_s": percentiles(failovers),
            "kill_to_first_commit_s": percentiles(since_kill),
            "live_hand_off_last_commit_to_first_commit_s": percentiles(hand_offs),
        }
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "chaos-stream-sum.json").write_text(json.dumps(report, indent=2) + "\n")
        print("\nchaos report:", json.dumps(report, indent=2))
        assert failovers, "no killed primary was taken over: the kills tested nothing"
    finally:
        group.close()
