"""The deterministic simulation, run over many seeds: exactly-once holds.

Each seed is a consumer group (2-4 members running the production runtime),
an in-memory journal server and MemoryEtcd in one Trio run on a mock clock,
under the faults its plan draws, with the stream_sum workload and the
invariants of `gazette_trio.testing.sim.invariants` checked throughout.
A seed replays exactly: same trace, same hash, in this process or another.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from gazette_trio.testing.sim import SimConfig, run_seed
from gazette_trio.testing.sim.__main__ import main
from gazette_trio.testing.sim.faults import FAULT_KINDS
from gazette_trio.testing.sim.runner import Summary, run_seeds

SEEDS = range(200)


@pytest.mark.slow
def test_two_hundred_seeds_keep_every_invariant_under_every_kind_of_fault() -> None:
    """200 seeds, each a different scenario and fault plan: no invariant is
    violated, every group converges once faults stop, and across the seeds
    every kind of fault was injected and every invariant was checked."""
    summary = Summary()
    for result in run_seeds(SEEDS, jobs=2):
        summary.add(result)
    reports = "\n\n".join(r.report() for r in summary.failed)
    assert not summary.failed, f"{len(summary.failed)} seeds failed:\n{reports}"
    assert summary.seeds == len(SEEDS)
    missing = [kind for kind in FAULT_KINDS if summary.faults[kind] == 0]
    assert not missing, f"fault kinds never injected: {missing}\n{summary.render()}"
    for check in (
        "chunk consumed in order",
        "chunk consumed was committed",
        "state holds each committed input once",
        "durable checkpoints move forward",
        "restore covers every durable commit",
        "output read exactly once",
        "output sums committed inputs",
        "final state is exact",
        "final output is exact",
    ):
        assert summary.checks[check] > 0, check
    # Fences were put to work: deposed primaries tried to commit, and failed.
    assert summary.stats["commits refused to a superseded instance"] > 0


def test_a_seed_replays_to_the_same_event_trace() -> None:
    """Everything random in a run comes from the seed, Trio's scheduler
    included: two runs of one seed in one process trace the same events."""
    first = run_seed(3, keep_trace=True)
    second = run_seed(3, keep_trace=True)
    assert first.ok and second.ok
    assert first.trace == second.trace
    assert first.digest == second.digest
    assert first.trace_lines > 50
    assert run_seed(4).digest != first.digest


def test_a_seed_replays_identically_in_another_process() -> None:
    """The printed replay command reproduces the trace hash, whatever the
    other process's string hash seed."""
    result = run_seed(5)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    completed = subprocess.run(
        [sys.executable, "-m", "gazette_trio.testing.sim", "--seed", "5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    found = re.search(r"trace sha256 ([0-9a-f]{64})", completed.stdout)
    assert found is not None, completed.stdout
    assert found.group(1) == result.digest


def test_without_faults_a_seed_converges_with_nothing_injected() -> None:
    result = run_seed(7, SimConfig(faults=False, chaos_seconds=10.0))
    assert result.ok, result.report()
    assert sum(result.faults.values()) == 0
    assert result.checks["final state is exact"] > 0
    assert result.command == (
        "python -m gazette_trio.testing.sim --seed 7 --chaos-seconds 10.0 --no-faults"
    )


def test_the_command_line_summarizes_a_run_of_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "3", "--start", "20"]) == 0
    out = capsys.readouterr().out
    assert "seeds: 3 run, 0 failed" in out
    assert "wall time:" in out
    assert "faults injected:" in out
    assert "invariant checks made:" in out
    for kind in FAULT_KINDS:
        assert kind in out


def test_the_command_line_runs_one_seed_with_its_trace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "20", "--trace"]) == 0
    out = capsys.readouterr().out
    assert "setup:" in out and "converged" in out
    assert re.search(r"trace sha256 [0-9a-f]{64}", out)
    assert out.rstrip().endswith("ok")
