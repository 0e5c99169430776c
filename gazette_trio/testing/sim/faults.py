"""Fault injection: which fault strikes when, drawn from the seed.

A `FaultPlan` is drawn once per seed: for every kind of fault, whether it is
enabled in this run and at what rate, so that across seeds each kind is seen
alone, together with others, and not at all. `FaultInjector` carries the
plan out through the seams the production code offers:

- the journal server core's `Faults` hooks (`JournalFaults`): appends that
  fail before writing, appends whose acknowledgement is lost after the
  content is durable (the client retries, so content lands twice), slow
  appends (the journal's lock is held), reads broken mid-stream, slow reads;
- `MemoryEtcd`'s `EtcdHooks` (`EtcdFaults`): delayed and failed requests,
  transactions whose comparisons fail as if raced, and a *partition* of one
  member from etcd (its requests stall, so its lease expires while its
  shards still run: a zombie primary the fences must stop), and a crashed
  member's lease revocation that never arrives;
- the external database's commits (`SimDatabase`): slow and failing;
- scheduled faults the world carries out (member crash with its local files
  lost, lease loss, clock jumps, a member's wall clock stepped, a recovery
  log fenced mid-transaction): the plan only says when (`next_delay`).

Faults are attributed to an *actor* (a member incarnation, a producer, the
verifier) through the `actor` context variable, which every task of the
actor inherits; the simulation's own machinery (setup, the janitor that
plays the operator, invariant checks) runs as no actor and is never faulted.
`FaultInjector.active` is cleared when the chaos phase ends, after which
nothing is injected, so the group must converge.

Every fault injected is counted by kind (`counts`) and traced.

This module owns fault policy; the seams belong to the production modules,
and scheduling the world's faults to `world`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

import trio

from ... import aio
from ...broker.server.faults import Faults
from ...consumer.stores.memory import MemoryDatabase
from ...etcd import EtcdHooks
from ...etcd.types import Compare, Op, Unavailable
from ...protocol import protocol as pb
from .trace import Trace

actor: ContextVar[str | None] = ContextVar("gazette_trio_sim_actor", default=None)
"""The simulated actor the current task works for (None: the simulation itself)."""

# Per-request probabilities (hooks) at rate 1.0.
REQUEST_FAULTS: dict[str, float] = {
    "etcd_delay": 0.04,
    "etcd_error": 0.02,
    "etcd_txn_conflict": 0.05,
    "append_error": 0.02,
    "append_ack_lost": 0.02,
    "append_delay": 0.05,
    "read_error": 0.02,
    "read_delay": 0.04,
    "commit_delay": 0.25,
    "commit_failure": 0.015,
    # Buggify: crash the committing member right as its commit starts, or
    # right as it becomes durable (its ACKs and outputs still in flight).
    "crash_in_commit": 0.01,
    "crash_after_commit": 0.012,
}

# Mean seconds between scheduled faults at rate 1.0.
SCHEDULED_FAULTS: dict[str, float] = {
    "member_crash": 7.0,
    "lease_loss": 12.0,
    "etcd_partition": 14.0,
    "clock_jump": 6.0,
    "wall_clock_step": 10.0,
    "log_fence": 12.0,
    "producer_abandon": 10.0,
}

FAULT_KINDS: tuple[str, ...] = (*REQUEST_FAULTS, *SCHEDULED_FAULTS)


class InjectedFault(Exception):
    """An error the simulation injected (a failing store commit)."""


@dataclass(frozen=True)
class FaultPlan:
    """Rates of each fault kind in one run (0: disabled)."""

    rates: dict[str, float]

    @classmethod
    def draw(cls, rng: random.Random, *, scale: float = 1.0) -> FaultPlan:
        """Each kind enabled with probability 0.75, at 0.3x to 2.5x its base rate."""
        rates = {}
        for kind in FAULT_KINDS:
            enabled = rng.random() < 0.75
            rates[kind] = rng.uniform(0.3, 2.5) * scale if enabled else 0.0
        return cls(rates)

    @classmethod
    def none(cls) -> FaultPlan:
        return cls({kind: 0.0 for kind in FAULT_KINDS})


@dataclass
class FaultInjector:
    """Draws faults from the plan and the seed's `faults` stream; counts them."""

    plan: FaultPlan
    rng: random.Random
    trace: Trace
    active: bool = True
    counts: Counter[str] = field(default_factory=Counter)
    # Actors partitioned from etcd, until a simulated time.
    partitioned: dict[str, float] = field(default_factory=dict)
    # Crashed member incarnations: their lease revocation never reaches etcd.
    crashed: set[str] = field(default_factory=set)

    def strikes(self, kind: str) -> bool:
        """Whether a request fault of `kind` strikes now (and counts it)."""
        if not self.active:
            return False
        rate = self.plan.rates[kind]
        if rate == 0.0 or self.rng.random() >= REQUEST_FAULTS[kind] * rate:
            return False
        self.counts[kind] += 1
        return True

    def next_delay(self, kind: str) -> float | None:
        """Seconds until the next scheduled fault of `kind`, or None if disabled."""
        rate = self.plan.rates[kind]
        if rate == 0.0:
            return None
        return self.rng.expovariate(rate / SCHEDULED_FAULTS[kind])

    def record(self, kind: str, text: str) -> None:
        """Count and trace a scheduled fault carried out by the world."""
        self.counts[kind] += 1
        self.trace.event(f"fault {kind}: {text}")

    def delay(self, low: float, high: float) -> float:
        # Log-uniform: mostly short, sometimes long.
        return float(low * (high / low) ** self.rng.random())

    def heal(self) -> None:
        """End the chaos phase: no more faults, partitions lifted."""
        self.active = False
        self.partitioned.clear()


class JournalFaults(Faults):
    """The journal server core's hooks, driven by the injector."""

    def __init__(self, injector: FaultInjector) -> None:
        self.injector = injector

    async def before_append(self, journal: str, offset: int, size: int) -> None:
        who = actor.get()
        if who is not None:
            await self._delay_or_fail(
                "append",
                f"{who} {journal}@{offset}+{size}",
                f"append to {journal} lost before it was written",
            )

    async def after_append(self, journal: str, commit: pb.Fragment) -> None:
        who = actor.get()
        if who is None or commit.end == commit.begin:
            return
        if self.injector.strikes("append_ack_lost"):
            self.injector.trace.event(
                f"fault append_ack_lost: {who} {journal}@{commit.begin}:{commit.end}"
            )
            raise aio.Unavailable(f"simulated: acknowledgement of {journal} append lost")

    async def before_read(self, journal: str, offset: int, size: int) -> None:
        who = actor.get()
        if who is not None:
            await self._delay_or_fail(
                "read", f"{who} {journal}@{offset}", f"read of {journal} broken at {offset}"
            )

    async def _delay_or_fail(self, op: str, where: str, what: str) -> None:
        """Maybe delay `op` (`append` or `read`), then maybe fail it."""
        inj = self.injector
        if inj.strikes(f"{op}_delay"):
            await trio.sleep(inj.delay(0.001, 0.3))
        if inj.strikes(f"{op}_error"):
            inj.trace.event(f"fault {op}_error: {where}")
            raise aio.Unavailable(f"simulated: {what}")


class EtcdFaults(EtcdHooks):
    """MemoryEtcd's hooks, driven by the injector."""

    def __init__(self, injector: FaultInjector) -> None:
        self.injector = injector

    async def before(self, request: str) -> None:
        who = actor.get()
        if who is None:
            return
        inj = self.injector
        if request == "revoke" and who in inj.crashed:
            # A crashed process never says goodbye: its lease must expire.
            raise Unavailable(f"simulated: {who} crashed before revoking its lease")
        until = inj.partitioned.get(who)
        if until is not None:
            # Stall until the partition heals (or chaos ends), then fail.
            while inj.partitioned.get(who) == until and trio.current_time() < until:
                with trio.move_on_at(until):
                    await trio.sleep(0.25)
            raise Unavailable(f"simulated: {who} was partitioned from etcd")
        if inj.strikes("etcd_delay"):
            await trio.sleep(inj.delay(0.001, 0.5))
        if request not in ("watch", "watch.deliver") and inj.strikes("etcd_error"):
            inj.trace.event(f"fault etcd_error: {who} {request}")
            raise Unavailable(f"simulated: etcd {request} failed")

    def fail_txn(self, compare: Sequence[Compare], success: Sequence[Op]) -> bool:
        who = actor.get()
        if who is None or not compare:
            return False
        if self.injector.strikes("etcd_txn_conflict"):
            self.injector.trace.event(f"fault etcd_txn_conflict: {who}")
            return True
        return False


class SimDatabase(MemoryDatabase):
    """The external database of the `MemoryStore` shards, slow and failing
    as the plan says. `MemoryStore` reads both attributes at each commit."""

    def __init__(self, injector: FaultInjector) -> None:
        super().__init__()
        self._injector = injector
        self._delay = 0.0
        self._failure: BaseException | None = None

    @property  # type: ignore[override]
    def commit_delay(self) -> float:
        # Read twice per commit (test, then sleep): decide on the first read.
        if self._delay:
            delay, self._delay = self._delay, 0.0
            return delay
        inj = self._injector
        if inj.strikes("commit_delay"):
            self._delay = inj.delay(0.005, 1.5)
        return self._delay

    @commit_delay.setter
    def commit_delay(self, value: float) -> None:
        self._delay = value

    @property  # type: ignore[override]
    def fail_commits(self) -> BaseException | None:
        # Read twice when it fails (test, then raise): decide on the first read.
        if self._failure is not None:
            failure, self._failure = self._failure, None
            return failure
        if self._injector.strikes("commit_failure"):
            self._injector.trace.event("fault commit_failure: database")
            self._failure = InjectedFault("simulated: the database refused the commit")
        return self._failure

    @fail_commits.setter
    def fail_commits(self, value: BaseException | None) -> None:
        pass  # the plan decides
