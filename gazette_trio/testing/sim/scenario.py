"""What a simulated run looks like: the knobs, and the scenario a seed draws.

`SimConfig` holds what a caller chooses (how long the chaos phase lasts, how
long the group gets to converge afterwards, whether and how hard faults
strike). `Scenario.draw(rng, config)` is what the seed chooses within it: how
many members, input partitions, producers, streams and chunks; which shards
keep a recovery log; transaction durations, ring buffer sizes, hot
standbys, lease TTLs; and the fault plan. Varying the shape per seed is what
lets a few thousand seeds cover configurations no hand-written test would.

This module owns the shape of a run; the world builds it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .faults import FaultPlan


@dataclass(frozen=True)
class SimConfig:
    """A caller's choices for every seed of a run of the simulator."""

    chaos_seconds: float = 20.0
    """Simulated seconds during which faults strike (producers write meanwhile)."""
    converge_seconds: float = 120.0
    """Simulated seconds the group gets, once faults stop, to converge."""
    faults: bool = True
    fault_scale: float = 1.0
    """Multiplies every fault rate."""

    def argv(self) -> list[str]:
        """Command-line options reproducing this config (non-defaults only)."""
        default = SimConfig()
        out: list[str] = []
        if self.chaos_seconds != default.chaos_seconds:
            out += ["--chaos-seconds", repr(self.chaos_seconds)]
        if self.converge_seconds != default.converge_seconds:
            out += ["--converge-seconds", repr(self.converge_seconds)]
        if not self.faults:
            out += ["--no-faults"]
        if self.fault_scale != default.fault_scale:
            out += ["--fault-scale", repr(self.fault_scale)]
        return out


@dataclass(frozen=True)
class ShardShape:
    partition: int
    recorded: bool
    hot_standbys: int
    min_txn: float
    max_txn: float
    ring_buffer_size: int
    disable_wait_for_ack: bool


@dataclass(frozen=True)
class Scenario:
    """One seed's run: see the module docstring."""

    members: int
    shards: tuple[ShardShape, ...]
    producers: int
    streams_per_producer: int
    chunks_per_stream: int
    lease_ttl: int
    hints_interval: float
    apply_delay: float
    fragment_length: int
    plan: FaultPlan = field(repr=False)

    @property
    def partitions(self) -> int:
        return len(self.shards)

    @classmethod
    def draw(cls, rng: random.Random, faults: random.Random, config: SimConfig) -> Scenario:
        partitions = rng.randint(2, 4)
        shards = []
        for p in range(partitions):
            # The first two shards cover both stores; the rest are drawn.
            recorded = p == 0 or (p != 1 and rng.random() < 0.5)
            shards.append(
                ShardShape(
                    partition=p,
                    recorded=recorded,
                    hot_standbys=rng.choice((0, 1, 1)),
                    min_txn=rng.choice((0.0, 0.01, 0.05)),
                    max_txn=rng.choice((0.05, 0.2, 0.5, 1.0)),
                    ring_buffer_size=rng.choice((0, 0, 4, 32)),
                    disable_wait_for_ack=rng.random() < 0.2,
                )
            )
        plan = (
            FaultPlan.draw(faults, scale=config.fault_scale) if config.faults else FaultPlan.none()
        )
        return cls(
            members=rng.randint(2, 4),
            shards=tuple(shards),
            producers=rng.randint(2, 4),
            streams_per_producer=rng.randint(2, 3),
            chunks_per_stream=rng.randint(8, 20),
            lease_ttl=rng.choice((2, 3, 5)),
            hints_interval=rng.uniform(0.5, 3.0),
            apply_delay=rng.choice((0.0, 0.03)),
            fragment_length=rng.choice((1024, 4096, 1 << 20)),
            plan=plan,
        )

    def describe(self) -> str:
        kinds = ",".join("R" if s.recorded else "M" for s in self.shards)
        return (
            f"{self.members} members, shards [{kinds}], {self.producers} producers x "
            f"{self.streams_per_producer} streams x {self.chunks_per_stream} chunks, "
            f"lease ttl {self.lease_ttl}s"
        )
