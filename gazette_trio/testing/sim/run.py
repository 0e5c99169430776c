"""Running one seed: a fresh Trio run on a mock clock, and its result.

`run_seed(seed, config)` draws the scenario from the seed, builds a `World`
in a temporary directory, and plays it in its own `trio.run` on
`MockClock(autojump_threshold=0)` (time jumps whenever every task waits, so
simulated minutes take milliseconds), inside `determinism.deterministic`.
It returns a `SeedResult`: the violations, the trace's hash, fault counts by
kind, invariant checks by kind, and statistics. An exception escaping the
world (a bug in the simulator, or an error the runtime should never raise
to its caller) is a failure too, with its traceback.

The runtime's log records are counted, not printed (pass `log_to` to see
them): a run under faults logs many retries and failed shards by design.

`replay_command(seed, config)` is the command line that replays a seed.

This module owns one seed's run; many seeds are `runner`'s.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import trio
import trio.testing

from .determinism import Entropy, deterministic, seeded_ids
from .scenario import Scenario, SimConfig
from .trace import Trace
from .world import World


@dataclass
class SeedResult:
    """The outcome of one seed."""

    seed: int
    config: SimConfig
    scenario: str
    violations: list[str]
    digest: str
    trace_lines: int
    faults: Counter[str]
    checks: Counter[str]
    stats: Counter[str]
    sim_seconds: float
    wall_seconds: float
    cpu_seconds: float
    tail: list[str]
    trace: list[str] | None = None
    error: str | None = None
    anomalies: list[str] = field(default_factory=list)
    logs: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.violations and self.error is None

    @property
    def command(self) -> str:
        return replay_command(self.seed, self.config)

    def report(self) -> str:
        """A failure report: seed, replay command, violations, trace tail."""
        lines = [
            f"seed {self.seed} {'ok' if self.ok else 'FAILED'} ({self.scenario})",
            f"  replay: {self.command}",
            f"  trace sha256 {self.digest} ({self.trace_lines} lines)",
        ]
        lines += [f"  violation: {v}" for v in self.violations[:10]]
        if len(self.violations) > 10:
            lines.append(f"  ... and {len(self.violations) - 10} more violations")
        lines += [f"  anomaly: {a}" for a in self.anomalies[:5]]
        if self.error:
            lines.append("  error:")
            lines += [f"    {line}" for line in self.error.rstrip().splitlines()]
        lines.append("  trace tail:")
        lines += [f"    {line}" for line in self.tail]
        return "\n".join(lines)


def replay_command(seed: int, config: SimConfig | None = None) -> str:
    options = " ".join((config or SimConfig()).argv())
    command = f"python -m gazette_trio.testing.sim --seed {seed}"
    return f"{command} {options}" if options else command


class _CountingHandler(logging.Handler):
    def __init__(self, counts: Counter[str], stream: TextIO | None) -> None:
        super().__init__(logging.DEBUG if stream else logging.WARNING)
        self.counts = counts
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        if self.stream is not None:
            self.stream.write(f"{trio.current_time():12.6f} {record.name}: {record.getMessage()}\n")
            if record.exc_info is not None:
                self.stream.write("".join(traceback.format_exception(*record.exc_info)))


@contextlib.contextmanager
def _captured_logs(counts: Counter[str], stream: TextIO | None) -> Iterator[None]:
    logger = logging.getLogger("gazette_trio")
    saved = logger.level, logger.propagate
    handler = _CountingHandler(counts, stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if stream else logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def run_seed(
    seed: int,
    config: SimConfig | None = None,
    *,
    keep_trace: bool = False,
    log_to: TextIO | None = None,
) -> SeedResult:
    """Run the simulation for `seed`; see the module docstring."""
    config = config or SimConfig()
    entropy = Entropy(seed)
    scenario = Scenario.draw(entropy.stream("scenario"), entropy.stream("plan"), config)
    trace = Trace(keep_all=keep_trace)
    logs: Counter[str] = Counter()
    clock = trio.testing.MockClock(autojump_threshold=0)
    error: str | None = None
    world: World | None = None
    started = time.perf_counter()
    started_cpu = time.process_time()
    with (
        tempfile.TemporaryDirectory(prefix=f"gazette-sim-{seed}-") as tmp,
        deterministic(entropy),
        _captured_logs(logs, log_to),
    ):

        async def main() -> None:
            nonlocal world
            with seeded_ids(entropy):
                world = World(scenario, config, entropy, trace, Path(tmp), clock)
                await world.run()

        try:
            trio.run(main, clock=clock)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise
            error = "".join(traceback.format_exception(exc))
    wall = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    assert world is not None
    return SeedResult(
        seed=seed,
        config=config,
        scenario=scenario.describe(),
        violations=list(world.invariants.violations),
        digest=trace.digest,
        trace_lines=trace.lines,
        faults=Counter(world.injector.counts),
        checks=Counter(world.invariants.checks),
        stats=Counter(world.stats),
        sim_seconds=clock.current_time(),
        wall_seconds=wall,
        cpu_seconds=cpu,
        tail=list(trace.tail),
        trace=trace.all,
        error=error,
        logs=logs,
        anomalies=list(world.invariants.anomalies),
    )


if __name__ == "__main__":  # pragma: no cover
    result = run_seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0, keep_trace=True)
    print(result.report() if not result.ok else f"seed {result.seed} ok {result.digest}")
