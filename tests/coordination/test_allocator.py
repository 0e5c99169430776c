"""Members of a consumer group sharing shards through etcd.

Three members run in one process, each with its own lease, announcement,
KeySpace and allocator, against a real etcd (and against `MemoryEtcd` on a
mock clock). They converge to a spread, fully replicated assignment; when one
member's lease expires its primaries move to the standbys that were caught
up; an exiting member drains before it leaves.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable, Sequence

import pytest
import trio

from gazette_trio.aio import asyncio_island
from gazette_trio.allocator import (
    AnnouncementLost,
    ApplyConflict,
    AssignmentChanged,
    NotAssigned,
    State,
    apply_shard_specs,
)
from gazette_trio.etcd import Compare, Etcd, EtcdHooks, GrpcEtcd, MemoryEtcd, Op, Unavailable
from gazette_trio.protocol import consumer as pc

from .conftest import CuttableProxy
from .groups import RunningMember, converged, run_member, shard_spec, wait_until


async def create_shards(etcd: Etcd, root: str, count: int, hot_standbys: int) -> None:
    await apply_shard_specs(
        etcd,
        root,
        [
            pc.ApplyRequestChange(upsert=shard_spec(f"shard-{i:03d}", hot_standbys=hot_standbys))
            for i in range(count)
        ],
    )


def primaries(state: State) -> dict[str, tuple[str, str]]:
    return {a.item_id: a.member for a in state.assignments if a.slot == 0}


async def test_three_members_converge(etcd: Etcd, prefix: str, clock: object) -> None:
    """Three members in three zones allocate 12 shards of 3 replicas: each
    shard gets one replica per zone, one primary, and all become ready; the
    primaries of shards created while all are up spread over the members."""
    root = prefix + "group"
    async with trio.open_nursery() as nursery:
        members: list[RunningMember] = [
            await nursery.start(run_member, etcd, root, zone, f"member-{zone}", 20)
            for zone in ("zone-a", "zone-b", "zone-c")
        ]
        await wait_until(members[2].session, lambda s: len(s.members) == 3)
        await create_shards(etcd, root, 12, hot_standbys=2)
        state = await wait_until(
            members[0].session, lambda s: len(s.items) == 12 and converged(s, members=3)
        )
        assert all(len(state.assignments_by_item[item.id]) == 3 for item in state.items)
        counts: dict[tuple[str, str], int] = {}
        for member in primaries(state).values():
            counts[member] = counts.get(member, 0) + 1
        assert sorted(counts.values()) == [4, 4, 4]
        for m in members:
            await wait_until(m.session, lambda s: converged(s, members=3))
            m.stop.set()


async def lease_expiry_scenario(
    etcd: Etcd, doomed_etcd: Etcd, root: str, crash: Callable[[RunningMember], Awaitable[None]]
) -> None:
    await create_shards(etcd, root, 9, hot_standbys=1)
    async with trio.open_nursery() as nursery:
        # The doomed member joins first: it is the leader, so the others must
        # also take over allocation.
        doomed: RunningMember = await nursery.start(
            functools.partial(run_member, lease_ttl=2),
            doomed_etcd,
            root,
            "zone-a",
            "member-doomed",
            10,
        )
        others: list[RunningMember] = [
            await nursery.start(run_member, etcd, root, zone, f"member-{zone}", 10)
            for zone in ("zone-b", "zone-c")
        ]
        before = await wait_until(others[0].session, lambda s: converged(s, members=3))
        assert before.leader_key == doomed.session.key
        lost = {
            item: next(a.member for a in before.assignments_by_item[item] if a.slot != 0)
            for item, member in primaries(before).items()
            if member == ("zone-a", "member-doomed")
        }
        assert lost

        await crash(doomed)
        after = await wait_until(others[0].session, lambda s: converged(s, members=2), timeout=60)
        with trio.fail_after(30):
            await doomed.done.wait()
        assert doomed.lost, "the crashed member must see its lease lost"
        assert after.leader_key == others[0].session.key
        # Each lost primary went to the standby it had, which was caught up.
        for item, standby in lost.items():
            assert primaries(after)[item] == standby
        for m in others:
            m.stop.set()


async def test_a_lost_lease_hands_primaries_to_standbys_in_memory(
    autojump_clock: trio.testing.MockClock, prefix: str
) -> None:
    """A member whose lease expires loses its assignments with it; its
    primaries are promoted from their standbys, and a new leader takes over."""
    async with MemoryEtcd.open() as etcd:

        async def crash(member: RunningMember) -> None:
            await etcd.expire_lease(member.session.lease_id)

        await lease_expiry_scenario(etcd, etcd, prefix + "group", crash)


async def test_a_lost_lease_hands_primaries_to_standbys_on_real_etcd(
    etcd_endpoint: str, etcd_proxy: CuttableProxy, prefix: str
) -> None:
    """The same on a real etcd, where the crashed member's connection is cut
    and its lease really expires on etcd's clock."""
    async with (
        asyncio_island(),
        GrpcEtcd.open(etcd_endpoint) as etcd,
        GrpcEtcd.open(f"http://127.0.0.1:{etcd_proxy.port}", timeout=2) as doomed_etcd,
    ):

        async def crash(member: RunningMember) -> None:
            etcd_proxy.accepting = False
            etcd_proxy.cut()

        await lease_expiry_scenario(etcd, doomed_etcd, prefix + "group", crash)


async def test_an_exiting_member_drains_before_it_leaves(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """`exit` marks the member exiting (its limit stays, as Gazette's); the
    group sheds its capacity and moves its shards away (promoting ready
    standbys, never dropping below the ready replicas) and `exit` returns
    once it holds none."""
    root = prefix + "group"
    await create_shards(etcd, root, 8, hot_standbys=1)
    async with trio.open_nursery() as nursery:
        members: list[RunningMember] = [
            await nursery.start(run_member, etcd, root, zone, f"member-{zone}", 20)
            for zone in ("zone-a", "zone-b", "zone-c")
        ]
        await wait_until(members[0].session, lambda s: converged(s, members=3))
        leaving = members[1]
        worst_ready: list[int] = []

        def watch_readiness(state: State) -> None:
            for item in state.items:
                ready = sum(
                    1
                    for a in state.assignments_by_item.get(item.id, ())
                    if a.status.code in (pc.ReplicaStatusCode.PRIMARY, pc.ReplicaStatusCode.STANDBY)
                )
                worst_ready.append(ready)

        members[0].session.observers.append(watch_readiness)
        with trio.fail_after(60):
            await leaving.session.exit()
        state = leaving.session.state
        assert state.local_items == ()
        leaver = state.member_by_key[leaving.session.key]
        assert leaver.exiting and leaver.limit == 20
        assert state.effective_limit[leaver.key] == 0
        # Shards with a replica on the leaving member never lost readiness:
        # a new replica became ready before the old one was removed.
        assert min(worst_ready) >= 1
        final = await wait_until(
            members[0].session,
            lambda s: converged(s) and all(a.zone != "zone-b" for a in s.assignments),
        )
        assert len(final.assignments) == 16
        for m in members:
            m.stop.set()


class ChaosHooks(EtcdHooks):
    """Seeded faults: a third of transactions lose as if raced, some requests
    are delayed, some fail as if the network dropped them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lost_txns = 0

    async def before(self, request: str) -> None:
        roll = self.rng.random()
        if roll < 0.05 and request in ("txn", "range", "watch.deliver"):
            raise Unavailable(f"injected: {request} dropped")
        if roll < 0.25:
            await trio.sleep(self.rng.random() * 0.5)

    def fail_txn(self, compare: Sequence[Compare], success: Sequence[Op]) -> bool:
        if self.rng.random() < 0.33:
            self.lost_txns += 1
            return True
        return False


async def test_members_converge_despite_raced_and_dropped_requests(
    autojump_clock: trio.testing.MockClock, prefix: str
) -> None:
    """Under injected txn conflicts, delays and dropped requests (the hooks a
    simulator drives), the group still converges and an exiting member still
    drains: failed rounds are retried from fresh state."""
    hooks = ChaosHooks(seed=7)
    root = prefix + "group"
    async with MemoryEtcd.open(hooks=hooks) as etcd:
        for _ in range(20):
            try:
                await create_shards(etcd, root, 10, hot_standbys=1)
                break
            except (Unavailable, ApplyConflict):
                continue
        async with trio.open_nursery() as nursery:
            members: list[RunningMember] = []
            for zone in ("zone-a", "zone-b", "zone-c"):
                while True:
                    try:
                        members.append(
                            await nursery.start(run_member, etcd, root, zone, f"member-{zone}", 10)
                        )
                        break
                    except Unavailable:
                        continue
            await wait_until(members[0].session, lambda s: converged(s, members=3), timeout=600)
            with trio.fail_after(600):
                while True:
                    try:
                        await members[2].session.exit()
                        break
                    except (Unavailable, AnnouncementLost):
                        continue  # an injected fault, not a real loss: retry
            await wait_until(
                members[0].session,
                lambda s: converged(s) and all(a.zone != "zone-c" for a in s.assignments),
                timeout=600,
            )
            assert hooks.lost_txns > 0
            for m in members:
                m.stop.set()


async def test_status_updates_are_guarded_by_the_assignment_revision(
    autojump_clock: trio.testing.MockClock, prefix: str
) -> None:
    """A member writes its ReplicaStatus only over the assignment it last saw:
    a write racing another change fails with `AssignmentChanged`, and a shard
    not assigned here with `NotAssigned`."""
    root = prefix + "group"
    async with MemoryEtcd.open() as etcd:
        await create_shards(etcd, root, 1, hot_standbys=0)
        async with trio.open_nursery() as nursery:
            member: RunningMember = await nursery.start(
                functools.partial(run_member, serve=False), etcd, root, "zone-a", "member-a", 5
            )
            session = member.session
            state = await wait_until(session, lambda s: len(s.local_items) == 1)
            local = state.local_items[0]
            assert local.is_primary and local.assignment.status.code == pc.ReplicaStatusCode.IDLE
            revision = await session.update_status(
                "shard-000", pc.ReplicaStatus(code=pc.ReplicaStatusCode.BACKFILL)
            )
            assert session.state.local_items[0].assignment.kv.mod_revision == revision

            # Someone else rewrites the assignment; our next write, planned
            # from what we saw before, must not clobber it.
            await etcd.put(local.assignment.key, b"", ignore_lease=True)
            with pytest.raises(AssignmentChanged):
                await session.update_status(
                    "shard-000", pc.ReplicaStatus(code=pc.ReplicaStatusCode.PRIMARY)
                )
            with pytest.raises(NotAssigned):
                await session.update_status(
                    "shard-999", pc.ReplicaStatus(code=pc.ReplicaStatusCode.PRIMARY)
                )
            member.stop.set()
