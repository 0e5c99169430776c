"""Running many seeds, and the summary of a run of the simulator.

`run_seeds(seeds, config, jobs=...)` runs each seed (in worker processes when
`jobs > 1`; every seed is its own Trio run either way, so the results do not
depend on how they are spread) and yields the `SeedResult`s in seed order.
A `Summary` accumulates them: how many ran and failed, the wall time, and
totals of faults by kind, invariant checks by kind and statistics, which
`Summary.render()` prints.

This module owns batching and summarizing; one seed is `run`'s.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .faults import FAULT_KINDS
from .run import SeedResult, run_seed
from .scenario import SimConfig


def _run(seed: int, config: SimConfig) -> SeedResult:
    return run_seed(seed, config)


def run_seeds(
    seeds: Iterable[int], config: SimConfig | None = None, *, jobs: int = 1
) -> Iterator[SeedResult]:
    """Run `seeds`, yielding results in seed order."""
    config = config or SimConfig()
    if jobs <= 1:
        for seed in seeds:
            yield run_seed(seed, config)
        return
    todo = list(seeds)
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_run, todo, [config] * len(todo), chunksize=4)


@dataclass
class Summary:
    """Totals over the seeds of one run of the simulator."""

    seeds: int = 0
    failed: list[SeedResult] = field(default_factory=list)
    anomalous: list[SeedResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    seed_wall_seconds: float = 0.0
    seed_cpu_seconds: float = 0.0
    sim_seconds: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)
    slowest: tuple[float, int] = (0.0, -1)
    _started: float = field(default_factory=time.perf_counter)

    def add(self, result: SeedResult) -> None:
        self.seeds += 1
        if not result.ok:
            self.failed.append(result)
        elif result.anomalies:
            self.anomalous.append(result)
        self.seed_wall_seconds += result.wall_seconds
        self.seed_cpu_seconds += result.cpu_seconds
        self.sim_seconds += result.sim_seconds
        self.faults.update(result.faults)
        self.checks.update(result.checks)
        self.stats.update(result.stats)
        self.slowest = max(self.slowest, (result.wall_seconds, result.seed))
        self.wall_seconds = time.perf_counter() - self._started

    def render(self) -> str:
        n = max(self.seeds, 1)
        lines = [
            f"seeds: {self.seeds} run, {len(self.failed)} failed"
            + (f" ({', '.join(str(r.seed) for r in self.failed[:20])})" if self.failed else ""),
            f"anomalies (passing seeds): {len(self.anomalous)}"
            + (
                f" ({', '.join(str(r.seed) for r in self.anomalous[:20])})"
                if self.anomalous
                else ""
            ),
            f"wall time: {self.wall_seconds:.1f}s; per seed on average "
            f"{self.seed_wall_seconds / n:.3f}s wall, {self.seed_cpu_seconds / n:.3f}s CPU "
            f"(slowest: seed {self.slowest[1]}, {self.slowest[0]:.2f}s); "
            f"simulated time {self.sim_seconds:.0f}s",
            f"faults injected: {sum(self.faults.values())}",
        ]
        lines += [f"  {kind:22} {self.faults[kind]}" for kind in FAULT_KINDS]
        lines.append(f"invariant checks made: {sum(self.checks.values())}")
        lines += [f"  {name:52} {count}" for name, count in sorted(self.checks.items())]
        lines.append("activity:")
        lines += [f"  {name:52} {count}" for name, count in sorted(self.stats.items())]
        return "\n".join(lines)
