"""Deterministic simulation of a consumer group under faults (see docs/simulation.md)."""

from .run import SeedResult, replay_command, run_seed
from .scenario import SimConfig

__all__ = ["SeedResult", "SimConfig", "replay_command", "run_seed"]
