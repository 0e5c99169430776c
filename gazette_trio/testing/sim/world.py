"""The simulated world: a consumer group, its journals and etcd, under faults.

`World.run()` plays one scenario in the current Trio run:

1. *setup*: an in-memory `JournalServerCore` (with `JournalFaults`) and a
   `MemoryEtcd` (with `EtcdFaults`); the input, output and recovery-log
   journals; one `summer-NN` ShardSpec per input partition;
2. *chaos*: member slots, each supervised: a member incarnation runs the
   production runtime (`consumer.member.open_consumer`) with the `Summer`
   application until it crashes, loses its lease or fails to start, and the
   supervisor starts the next one. Producers write, verifiers read, and
   the scheduled faults strike: member crashes (the incarnation's tasks
   cancelled, its lease left to expire, its local files deleted), lease
   losses, etcd partitions, clock jumps, wall-clock steps, recovery logs
   fenced mid-transaction, abandoned producer transactions. A *janitor*
   plays the operator Gazette expects: it unassigns FAILED shards
   (`gazctl shards unassign --failed`), so the group reassigns them;
3. *convergence*: faults stop and partitions heal; within `converge_seconds`
   every member must be up, every shard must have exactly one ready
   primary, and the durable states and the verifier's outputs must hold
   every committed chunk; then the final invariants are checked.

Member incarnations are actors named `mem<slot>.<incarnation>`; every slot
keeps one consumer suffix, so a restarted member announces under the key
its predecessor may still hold until its lease expires, as a restarted
Gazette process does. Each member's wall clock is the mock clock plus its
own skew (which `wall_clock_step` faults move, also backwards).

This module owns the assembly and the phases; the pieces (faults,
producers, application, verifier, invariants) are in their own modules.
"""

from __future__ import annotations

import datetime
import shutil
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio
import trio.testing

from ...allocator import apply_shard_specs
from ...broker import LocalJournalClient
from ...broker.append_service import AppendService
from ...broker.journal_spec import new_journal_spec
from ...broker.list_apply import apply_journals, upsert
from ...broker.server import JournalServerCore, MemoryStorage
from ...consumer.member import Consumer, open_consumer
from ...consumer.shard import LocalShard, ShardObserver
from ...consumer.shard_spec import recovery_log
from ...etcd import EtcdError, MemoryEtcd
from ...protocol import consumer as pc
from ...protocol import labels as L
from ...recoverylog import Player, fetch_hints, new_author
from .app import CheckedStore, Summer, sums_journal
from .barriers import Barriers
from .determinism import Entropy
from .faults import EtcdFaults, FaultInjector, JournalFaults, SimDatabase, actor
from .invariants import Invariants, scrub
from .producers import NDJSON, Ledger, Producer, StreamLedger, chunk_journal
from .scenario import Scenario, SimConfig
from .trace import Trace
from .verifier import verify_outputs

ROOT = "/gazette/consumers/sim"
WALL_BASE_NS = 1_700_000_000 * 10**9
"""The members' wall clocks start here (plus their skew)."""


@dataclass
class MemberSlot:
    """One member of the group, across its incarnations."""

    name: str
    incarnation: int = 0
    actor: str = ""
    scope: trio.CancelScope | None = None
    consumer: Consumer | None = None
    wall_skew_ns: int = 0

    def wall_clock_ns(self) -> int:
        return WALL_BASE_NS + int(trio.current_time() * 1e9) + self.wall_skew_ns


@dataclass
class World:
    """See the module docstring."""

    scenario: Scenario
    config: SimConfig
    entropy: Entropy
    trace: Trace
    data_dir: Path
    clock: trio.testing.MockClock
    stats: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = self.entropy.stream("world")
        self.injector = FaultInjector(self.scenario.plan, self.entropy.stream("faults"), self.trace)
        self.ledger = Ledger()
        self.invariants = Invariants(self.ledger, self.trace)
        self.database = SimDatabase(self.injector)
        self.core = JournalServerCore(MemoryStorage(), faults=JournalFaults(self.injector))
        self.journals = LocalJournalClient(self.core)
        self.slots = [MemberSlot(f"mem{i}") for i in range(self.scenario.members)]
        self.producers: list[Producer] = []
        self.shard_ids = [f"summer-{s.partition:02d}" for s in self.scenario.shards]
        self.shard_streams: dict[str, list[str]] = {sid: [] for sid in self.shard_ids}
        self.specs: dict[str, pc.ShardSpec] = {}
        self.healed = False
        self.converged_at: float | None = None
        self._fencers = 0

    # ------------------------------------------------------------------

    async def run(self) -> None:
        async with MemoryEtcd.open(hooks=EtcdFaults(self.injector)) as etcd:
            self.etcd = etcd
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.barriers = Barriers(self, nursery)
                await self._setup()
                for slot in self.slots:
                    nursery.start_soon(self._supervise, slot)
                for producer in self.producers:
                    nursery.start_soon(producer.run)
                for shape in self.scenario.shards:
                    nursery.start_soon(
                        verify_outputs,
                        self.journals,
                        sums_journal(shape.partition),
                        self.invariants,
                    )
                nursery.start_soon(self._janitor)
                async with trio.open_nursery() as chaos:
                    for kind, action in self._scheduled_faults().items():
                        chaos.start_soon(self._strike_repeatedly, kind, action)
                    await trio.sleep(self.config.chaos_seconds)
                    chaos.cancel_scope.cancel()
                self._heal()
                await self._converge()
                nursery.cancel_scope.cancel()

    # -- setup -----------------------------------------------------------

    async def _setup(self) -> None:
        sc = self.scenario
        journals = []
        for shape in sc.shards:
            journals.append(
                new_journal_spec(
                    chunk_journal(shape.partition),
                    content_type=NDJSON,
                    fragment_length=sc.fragment_length,
                )
            )
            journals.append(
                new_journal_spec(
                    sums_journal(shape.partition),
                    content_type=NDJSON,
                    fragment_length=sc.fragment_length,
                )
            )
        specs = []
        for shape in sc.shards:
            shard_id = f"summer-{shape.partition:02d}"
            spec = pc.ShardSpec(
                id=shard_id,
                sources=[pc.ShardSpecSource(journal=chunk_journal(shape.partition))],
                min_txn_duration=datetime.timedelta(seconds=shape.min_txn),
                max_txn_duration=datetime.timedelta(seconds=shape.max_txn),
                hot_standbys=shape.hot_standbys,
                ring_buffer_size=shape.ring_buffer_size,
                disable_wait_for_ack=shape.disable_wait_for_ack,
            )
            if shape.recorded:
                spec.recovery_log_prefix = "recovery/sim"
                spec.hint_prefix = "/gazette/hints/sim"
                spec.hint_backups = 2
                journals.append(
                    new_journal_spec(
                        recovery_log(spec),
                        content_type=L.CONTENT_TYPE_RECOVERY_LOG,
                        fragment_length=sc.fragment_length,
                    )
                )
            self.specs[shard_id] = spec
            specs.append(spec)
        await apply_journals(self.journals, [upsert(j, expect_mod_revision=-1) for j in journals])
        await apply_shard_specs(
            self.etcd,
            ROOT,
            [pc.ApplyRequestChange(upsert=s, expect_mod_revision=-1) for s in specs],
        )

        workload = self.entropy.stream("workload")
        # Spread each producer's transactions over most of the chaos phase.
        transactions = sc.streams_per_producer * sc.chunks_per_stream / 3.5
        pace = 0.6 * self.config.chaos_seconds / transactions
        index = 0
        for p in range(sc.producers):
            streams = []
            for k in range(sc.streams_per_producer):
                partition = index % sc.partitions
                index += 1
                stream = StreamLedger(
                    name=f"s{p}-{k}", journal=chunk_journal(partition), total=sc.chunks_per_stream
                )
                self.ledger.add(stream)
                self.shard_streams[f"summer-{partition:02d}"].append(stream.name)
                streams.append(stream)
            self.producers.append(
                Producer(
                    name=f"p{p}",
                    streams=streams,
                    ledger=self.ledger,
                    journals=self.journals,
                    rng=workload,
                    injector=self.injector,
                    trace=self.trace,
                    wall_clock_ns=lambda: WALL_BASE_NS + int(trio.current_time() * 1e9),
                    pace=pace,
                )
            )
        self.trace.event(f"setup: {sc.describe()}")

    # -- members ---------------------------------------------------------

    async def _supervise(self, slot: MemberSlot) -> None:
        while True:
            await self._incarnate(slot)
            if self.healed:
                await trio.sleep(0.1)
            else:
                await trio.sleep(self.injector.delay(0.1, 4.0))

    async def _incarnate(self, slot: MemberSlot) -> None:
        slot.incarnation += 1
        who = slot.actor = f"{slot.name}.{slot.incarnation}"
        actor.set(who)
        data_dir = self.data_dir / who
        scope = slot.scope = trio.CancelScope()
        sc = self.scenario
        self.trace.event(f"member {who} starting")
        self.stats["member incarnations"] += 1
        reason = "stopped"
        try:
            with scope:
                async with open_consumer(
                    Summer(self, who),
                    etcd=self.etcd,
                    journals=self.journals,
                    root=ROOT,
                    zone="sim",
                    suffix=slot.name,
                    endpoint=f"http://{slot.name}.sim.invalid:8080",
                    data_dir=data_dir,
                    lease_ttl=sc.lease_ttl,
                    wall_clock_ns=slot.wall_clock_ns,
                    hints_interval=sc.hints_interval,
                    apply_delay=sc.apply_delay,
                    observer=_StatusTracer(self.trace, who),
                ) as consumer:
                    slot.consumer = consumer
                    self.trace.event(f"member {who} joined")
                    await trio.sleep_forever()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {scrub(str(exc))}"
        finally:
            slot.consumer = None
            slot.scope = None
            # Whatever ended it, the next incarnation starts on an empty disk.
            shutil.rmtree(data_dir, ignore_errors=True)
        if scope.cancelled_caught:
            reason = "crashed"
        self.trace.event(f"member {who} ended: {reason}")

    def _running(self) -> list[MemberSlot]:
        return [s for s in self.slots if s.consumer is not None]

    # -- scheduled faults --------------------------------------------------

    def _scheduled_faults(self) -> dict[str, Callable[[], Awaitable[None]]]:
        return {
            "member_crash": self._crash_member,
            "lease_loss": self._lose_lease,
            "etcd_partition": self._partition_member,
            "clock_jump": self._jump_clock,
            "wall_clock_step": self._step_wall_clock,
            "log_fence": self._fence_log,
            "producer_abandon": self._abandon_producer,
        }

    async def _strike_repeatedly(self, kind: str, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            delay = self.injector.next_delay(kind)
            if delay is None:
                return
            await trio.sleep(delay)
            await action()

    async def _crash_member(self) -> None:
        running = [s for s in self._running() if s.scope is not None]
        if not running:
            return
        slot = self.rng.choice(running)
        self.injector.crashed.add(slot.actor)
        self.injector.record("member_crash", slot.actor)
        assert slot.scope is not None
        slot.scope.cancel()

    def crash_member_of(self, store: CheckedStore, kind: str) -> None:
        """Crash the member incarnation running `store`, now (buggify)."""
        for slot in self.slots:
            if slot.actor == store.member and slot.scope is not None:
                self.injector.crashed.add(slot.actor)
                self.injector.record(kind, f"{slot.actor} at a commit of {store.instance}")
                slot.scope.cancel()

    async def _lose_lease(self) -> None:
        running = self._running()
        if not running:
            return
        slot = self.rng.choice(running)
        assert slot.consumer is not None
        self.injector.record("lease_loss", slot.actor)
        try:
            await self.etcd.expire_lease(slot.consumer.session.lease_id)
        except EtcdError:
            pass  # already gone

    async def _partition_member(self) -> None:
        running = self._running()
        if not running:
            return
        slot = self.rng.choice(running)
        length = self.rng.uniform(1.2, 3.0) * self.scenario.lease_ttl
        self.injector.partitioned[slot.actor] = trio.current_time() + length
        self.injector.record("etcd_partition", f"{slot.actor} for {length:.3f}s")

    async def _jump_clock(self) -> None:
        jump = self.injector.delay(0.05, 1.5 * self.scenario.lease_ttl)
        self.injector.record("clock_jump", f"{jump:.3f}s")
        self.clock.jump(jump)

    async def _step_wall_clock(self) -> None:
        slot = self.rng.choice(self.slots)
        step = int(self.rng.uniform(-10.0, 10.0) * 1e9)
        slot.wall_skew_ns += step
        self.injector.record("wall_clock_step", f"{slot.name} by {step / 1e9:+.3f}s")

    async def _fence_log(self) -> None:
        recorded = [sid for sid, spec in self.specs.items() if spec.recovery_log_prefix]
        shard_id = self.rng.choice(recorded)
        self._fencers += 1
        self.injector.record("log_fence", shard_id)
        self._nursery.start_soon(self._run_fencer, self.specs[shard_id], self._fencers)

    async def _run_fencer(self, spec: pc.ShardSpec, n: int) -> None:
        """Take the shard's recovery log over, as a newly promoted member
        would, and walk away: the primary's next commit must fail."""
        who = f"fencer.{n}"
        actor.set(who)
        directory = self.data_dir / who
        outcome = "fenced"
        try:
            with trio.move_on_after(10) as timeout:
                hints = (await fetch_hints(self.etcd, spec)).first()
                appends = AppendService(self.journals)
                async with trio.open_nursery() as nursery:
                    await nursery.start(appends.run)
                    player = Player()
                    nursery.start_soon(player.play, hints, directory, self.journals, appends)
                    player.inject_handoff(new_author())
                    await player.wait_done()
                    nursery.cancel_scope.cancel()
            if timeout.cancelled_caught:
                outcome = "gave up"
        except Exception as exc:
            outcome = f"failed: {type(exc).__name__}: {scrub(str(exc))}"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        self.trace.event(f"{who} {spec.id}: {outcome}")

    async def _abandon_producer(self) -> None:
        writing = [p for p in self.producers if not p.finished.is_set()]
        if not writing:
            return
        producer = self.rng.choice(writing)
        producer.abandon = True
        self.injector.record("producer_abandon", producer.name)

    # -- the operator ------------------------------------------------------

    async def _janitor(self) -> None:
        while True:
            await trio.sleep(0.5)
            running = self._running()
            if not running:
                continue
            consumer = running[0].consumer
            assert consumer is not None
            state = consumer.session.state
            failed = []
            for shard_id in self.shard_ids:
                for a in state.assignments_by_item.get(shard_id, ()):
                    if a.status.code == pc.ReplicaStatusCode.FAILED:
                        error = scrub(a.status.errors[0] if a.status.errors else "")
                        self.stats[f"shard failure: {_error_kind(error)}"] += 1
                        self.trace.event(f"janitor: {shard_id} failed on {a.suffix}: {error}")
                        if shard_id not in failed:
                            failed.append(shard_id)
            if failed:
                # The call waits until that member sees its own write; if the
                # member dies meanwhile, try again through another.
                with trio.move_on_after(5) as timeout:
                    try:
                        await consumer.api.unassign(
                            pc.UnassignRequest(shards=failed, only_failed=True)
                        )
                    except Exception as exc:
                        self.trace.event(f"janitor: unassign failed: {type(exc).__name__}")
                if timeout.cancelled_caught:
                    self.trace.event("janitor: unassign timed out")

    # -- the end -----------------------------------------------------------

    def _heal(self) -> None:
        self.healed = True
        self.injector.heal()
        self.trace.event("chaos over: faults stop, partitions heal")

    def _not_converged(self) -> str | None:
        """Why the group has not converged yet (None once it has)."""
        if not self.ledger.done:
            return "producers are still writing"
        for slot in self.slots:
            if slot.consumer is None:
                return f"member {slot.name} is down"
        for shard_id in self.shard_ids:
            primaries = []
            for slot in self.slots:
                assert slot.consumer is not None
                shard = slot.consumer.service.shards.get(shard_id)
                if shard is not None and shard.is_primary and shard.ready and not shard.finished:
                    primaries.append(slot.name)
            if len(primaries) != 1:
                return f"{shard_id} has ready primaries {primaries}; {self._assignments(shard_id)}"
        return self.invariants.incomplete(self.shard_streams)

    def _assignments(self, shard_id: str) -> str:
        """The shard's assignments in etcd and each replica's local phase."""
        running = self._running()
        if not running:
            return "no member running"
        assert running[0].consumer is not None
        state = running[0].consumer.session.state
        parts = []
        for a in sorted(state.assignments_by_item.get(shard_id, ()), key=lambda a: a.slot):
            local = "not running"
            for slot in self.slots:
                if slot.name == a.suffix and slot.consumer is not None:
                    shard = slot.consumer.service.shards.get(shard_id)
                    if shard is not None:
                        local = (
                            "finished" if shard.finished else "ready" if shard.ready else "starting"
                        )
            parts.append(f"slot {a.slot} {a.suffix} {a.status.code.name} ({local} there)")
        return "assignments: " + (", ".join(parts) or "none")

    async def _converge(self) -> None:
        deadline = trio.current_time() + self.config.converge_seconds
        while True:
            reason = self._not_converged()
            if reason is None:
                break
            if trio.current_time() >= deadline:
                self.invariants.violate(
                    "no convergence",
                    f"{self.config.converge_seconds:g}s after faults stopped: {reason}",
                )
                return
            await trio.sleep(0.25)
        self.converged_at = trio.current_time()
        self.trace.event("converged")
        for shard_id in self.shard_ids:
            for slot in self.slots:
                assert slot.consumer is not None
                shard = slot.consumer.service.shards.get(shard_id)
                if shard is not None and shard.is_primary and shard.ready and not shard.finished:
                    store = shard.store
                    assert isinstance(store, CheckedStore)
                    self.invariants.serving(shard_id, store.instance, store.state)
        self.invariants.final(self.shard_streams)


class _StatusTracer(ShardObserver):
    """Traces the status changes of one member incarnation's shards."""

    def __init__(self, trace: Trace, member: str) -> None:
        self.trace = trace
        self.member = member

    def status_changed(self, shard: LocalShard, status: pc.ReplicaStatus) -> None:
        self.trace.event(f"status {shard.id} on {self.member}: {status.code.name}")


def _error_kind(error: str) -> str:
    return error.split(":", 1)[0] if error else "unknown"
