"""Determinism: every random choice of a simulated run, drawn from one seed.

A seed must replay exactly, so nothing on the simulated path may draw from a
source the seed does not control. `Entropy(seed)` hands out named, independent
`random.Random` streams (the workload's, the faults', the ids'), each seeded
from the seed and its name with SHA-512 (Python's own `str` seeding, which
does not depend on `PYTHONHASHSEED`), so a change in how much one part draws
does not shift the others.

`deterministic(entropy)` (a context manager around `trio.run`) takes over
what would otherwise vary from one run to the next:

- Trio's scheduler: it shuffles each batch of runnable tasks with the module
  random `trio._core._run._r`. Trio 0.35 sorts a batch by task creation
  order before shuffling when `_ALLOW_DETERMINISTIC_SCHEDULING` is set (the
  switch Hypothesis flips); we flip it and seed `_r`, and restore both
  afterwards. The batch order is then a function of the seed and of which
  tasks are runnable, never of memory addresses;
- the garbage collector: a cycle collected mid-run could finalize an async
  generator, which Trio does in a new task, at a moment set by allocation
  counts from earlier runs. Collection is paused for the run (reference
  counting still frees everything acyclic) and done once afterwards.

`seeded_ids(entropy)` (used inside the run, so the tasks of the run inherit
it) routes producer ids (`message.uuids.producer_id_entropy`) and recovery-log
authors (`recoverylog.author.author_entropy`) through a seeded stream. Wall
time is not read on the simulated path: the simulation passes every member a
`wall_clock_ns` derived from the mock clock.

This module owns the seeding; what the seeded streams decide belongs to the
workload and the faults.
"""

from __future__ import annotations

import contextlib
import gc
import random
from collections.abc import Iterator

from trio._core import _run as trio_run

from ...message.uuids import producer_id_entropy
from ...recoverylog.author import author_entropy


class Entropy:
    """Named random streams derived from one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, name: str) -> random.Random:
        """The stream called `name` (the same object on every call)."""
        found = self._streams.get(name)
        if found is None:
            found = self._streams[name] = random.Random(f"gazette-trio-sim:{self.seed}:{name}")
        return found


@contextlib.contextmanager
def deterministic(entropy: Entropy) -> Iterator[None]:
    """Seed Trio's scheduler and pause the cyclic garbage collector, for one run."""
    saved_state = trio_run._r.getstate()
    saved_switch = trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    trio_run._r.seed(entropy.stream("scheduler").getrandbits(64))
    trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    try:
        yield
    finally:
        trio_run._ALLOW_DETERMINISTIC_SCHEDULING = saved_switch  # type: ignore[misc]
        trio_run._r.setstate(saved_state)
        if gc_was_enabled:
            gc.enable()
        gc.collect()


@contextlib.contextmanager
def seeded_ids(entropy: Entropy) -> Iterator[None]:
    """Draw producer ids and recovery-log authors from the seed (call it
    inside the Trio run: the run's tasks inherit the context)."""
    ids = entropy.stream("ids")

    def random_bytes(n: int) -> bytes:
        return ids.getrandbits(8 * n).to_bytes(n, "big")

    producer_token = producer_id_entropy.set(random_bytes)
    author_token = author_entropy.set(ids.randrange)
    try:
        yield
    finally:
        author_entropy.reset(author_token)
        producer_id_entropy.reset(producer_token)
