"""Deterministic simulation: a consumer group under seeded faults, checked for exactly-once.

One seed is one Trio run on a mock clock holding everything Gazette's
promise depends on: 2-4 members running the production consumer runtime,
an in-memory journal server and MemoryEtcd, producers and a verifier of the
stream_sum workload, and a fault injector. Every random choice (the
scenario, the faults, the workload, producer ids, recovery-log authors,
Trio's scheduling order) is drawn from the seed, so a seed replays to the
same event trace, whose SHA-256 is its fingerprint. Invariants of
exactly-once processing are checked while it runs and after the group has
converged. See docs/simulation.md.

    from gazette_trio.testing.sim import run_seed
    result = run_seed(1234)      # a SeedResult
    assert result.ok, result.report()

`python -m gazette_trio.testing.sim --seeds N` runs many and summarizes.

This package owns the simulation; what it simulates is the production code.
"""

from .run import SeedResult, replay_command, run_seed
from .scenario import SimConfig

__all__ = ["SeedResult", "SimConfig", "replay_command", "run_seed"]
