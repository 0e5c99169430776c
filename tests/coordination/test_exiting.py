"""Exiting members, as Gazette's allocator treats them since v0.102.

A member leaving gracefully sets `ConsumerSpec.exiting` and keeps its
limit. The group's spare slots (member limits beyond the items' total
replication) are taken from exiting members, the oldest first, while enough
members to hold every replica of the most replicated shard keep their full
limit. The shed capacity lowers the member's effective limit, which the
solver and the convergence rounds honour: a member that sheds everything
loses its shards and its allocator returns; one that cannot shed keeps
them.

The capacity cases are Gazette's `alloc_state_test.go` (TestShedCapacity*,
TestLoadRatioWithShedding), each loaded from etcd into a KeySpace; the
group cases run members against etcd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from gazette_trio.allocator import (
    State,
    apply_shard_specs,
    assignment_key,
    keyspace,
    member_key,
    solve_state,
)
from gazette_trio.allocator.converge import _Counts, converge
from gazette_trio.etcd import Etcd
from gazette_trio.protocol import consumer as pc

from .groups import RunningMember, consumer_spec, converged, run_member, shard_spec, wait_until

READY = pc.ReplicaStatus(code=pc.ReplicaStatusCode.PRIMARY)


@dataclass(frozen=True)
class M:
    key: str  # "zone#suffix"
    limit: int
    exiting: bool = False


async def load_state(
    etcd: Etcd,
    root: str,
    items: dict[str, int],
    members: list[M],
    assignments: list[str],
    local: str,
) -> State:
    """Write a group (items by replication, members in age order,
    assignments as "item#zone#suffix#slot"), and load it as a member would."""
    await apply_shard_specs(
        etcd,
        root,
        [
            pc.ApplyRequestChange(upsert=shard_spec(item, hot_standbys=r - 1))
            for item, r in items.items()
        ],
    )
    for m in members:
        zone, suffix = m.key.split("#")
        spec = consumer_spec(zone, suffix, m.limit, exiting=m.exiting)
        await etcd.put(member_key(root, zone, suffix), bytes(spec))
    for a in assignments:
        item, zone, suffix, slot = a.split("#")
        await etcd.put(assignment_key(root, item, zone, suffix, int(slot)), bytes(READY))
    ks = keyspace(root)
    await ks.load(etcd)
    zone, suffix = local.split("#")
    return State.build(ks, member_key(root, zone, suffix))


def shed_of(state: State) -> list[int]:
    """Shed capacity per member, in member key order."""
    return [state.shed_capacity.get(m.key, 0) for m in state.members]


async def test_an_exiting_member_sheds_all_spare_capacity_and_its_load_ratio_is_infinite(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    root = prefix + "group"
    state = await load_state(
        etcd,
        root,
        {"item-a": 1, "item-b": 1},
        [M("zone-a#mem1", 5, exiting=True), M("zone-a#mem2", 5)],
        ["item-a#zone-a#mem1#0", "item-b#zone-a#mem2#0"],
        local="zone-a#mem1",
    )
    assert shed_of(state) == [5, 0]
    assert [state.limit_of(m) for m in state.members] == [0, 5]
    counts = _Counts(state)
    by_item = {a.item_id: a for a in state.assignments}
    assert counts.ratio(by_item["item-a"], counts.total) == math.inf
    assert counts.ratio(by_item["item-b"], counts.total) == pytest.approx(1 / 5)


async def test_every_exiting_member_sheds_when_spare_capacity_allows(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    state = await load_state(
        etcd,
        prefix + "group",
        {"item-a": 1, "item-b": 1},
        [
            M("zone-a#mem1", 5, exiting=True),
            M("zone-a#mem2", 5, exiting=True),
            M("zone-a#mem3", 5),
            M("zone-b#mem4", 5),
            M("zone-b#mem5", 5),
        ],
        ["item-a#zone-a#mem1#0", "item-b#zone-b#mem4#0"],
        local="zone-a#mem1",
    )
    assert shed_of(state) == [5, 5, 0, 0, 0]


async def test_members_enough_for_the_largest_replication_keep_their_limit(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """Four members, a shard of three replicas: only one member may shed,
    and it is the oldest exiting one."""
    state = await load_state(
        etcd,
        prefix + "group",
        {"item-a": 3, "item-b": 2, "item-c": 1},
        [
            M("zone-a#mem1", 10, exiting=True),
            M("zone-a#mem2", 10, exiting=True),
            M("zone-b#mem3", 10),
            M("zone-b#mem4", 10),
        ],
        [
            "item-a#zone-a#mem1#0",
            "item-a#zone-a#mem2#1",
            "item-a#zone-b#mem3#2",
            "item-b#zone-a#mem1#0",
            "item-b#zone-b#mem4#1",
            "item-c#zone-b#mem3#0",
        ],
        local="zone-a#mem1",
    )
    assert shed_of(state) == [10, 0, 0, 0]


async def test_shedding_stops_at_the_spare_capacity(etcd: Etcd, prefix: str, clock: object) -> None:
    """Three exiting members would shed 9 slots; 7 are spare: the third
    sheds what is left."""
    state = await load_state(
        etcd,
        prefix + "group",
        {f"item-{c}": 1 for c in "abcde"},
        [
            M("zone-a#mem1", 3, exiting=True),
            M("zone-a#mem2", 3, exiting=True),
            M("zone-b#mem3", 3, exiting=True),
            M("zone-b#mem4", 3),
        ],
        [
            "item-a#zone-a#mem1#0",
            "item-b#zone-a#mem1#0",
            "item-c#zone-a#mem2#0",
            "item-d#zone-b#mem3#0",
            "item-e#zone-b#mem4#0",
        ],
        local="zone-a#mem1",
    )
    assert shed_of(state) == [3, 3, 1, 0]


async def test_an_overloaded_group_sheds_nothing(etcd: Etcd, prefix: str, clock: object) -> None:
    state = await load_state(
        etcd,
        prefix + "group",
        {f"item-{c}": 1 for c in "abcde"},
        [M("zone-a#mem1", 2, exiting=True), M("zone-b#mem2", 2)],
        [
            "item-a#zone-a#mem1#0",
            "item-b#zone-a#mem1#0",
            "item-c#zone-b#mem2#0",
            "item-d#zone-b#mem2#0",
        ],
        local="zone-a#mem1",
    )
    assert shed_of(state) == [0, 0]
    # Nothing can go anywhere else: the round changes nothing.
    checkpoints, _ = converge(state, solve_state(state))
    assert checkpoints == []


async def test_without_exiting_members_nothing_is_shed(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    state = await load_state(
        etcd,
        prefix + "group",
        {"item-a": 2, "item-b": 1},
        [M("zone-a#mem1", 4), M("zone-b#mem2", 4)],
        ["item-a#zone-a#mem1#0", "item-a#zone-b#mem2#1", "item-b#zone-b#mem2#0"],
        local="zone-a#mem1",
    )
    assert state.shed_capacity == {}
    assert [state.limit_of(m) for m in state.members] == [4, 4]
    assert not state.should_exit


async def test_the_leader_moves_the_shards_of_a_member_that_sheds_everything(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """One round plans adds on the others and no add on the exiting member;
    it is not ready to exit while it holds shards, and is once it holds none."""
    state = await load_state(
        etcd,
        prefix + "group",
        {"item-a": 1, "item-b": 1},
        [M("zone-a#mem1", 5, exiting=True), M("zone-b#mem2", 5)],
        ["item-a#zone-a#mem1#0", "item-b#zone-b#mem2#0"],
        local="zone-a#mem1",
    )
    desired = solve_state(state)
    assert desired == {"item-a": [("zone-b", "mem2")], "item-b": [("zone-b", "mem2")]}
    assert not state.should_exit  # it still holds item-a


async def test_a_member_marked_exiting_by_another_process_loses_its_shards_and_exits(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """A Go member signals its exit by rewriting its own ConsumerSpec with
    `exiting` set. Our leader sheds its capacity: its shards move to the
    others without dropping below the ready replicas, and its allocator
    returns once it holds none."""
    root = prefix + "group"
    await apply_shard_specs(
        etcd,
        root,
        [pc.ApplyRequestChange(upsert=shard_spec(f"shard-{i}", hot_standbys=1)) for i in range(6)],
    )
    async with trio.open_nursery() as nursery:
        members: list[RunningMember] = [
            await nursery.start(run_member, etcd, root, zone, f"member-{zone}", 10)
            for zone in ("zone-a", "zone-b", "zone-c")
        ]
        leader = members[0].session
        await wait_until(leader, lambda s: converged(s, members=3))
        assert leader.state.is_leader
        leaving = members[2].session
        assert leaving.state.local_items, "the test needs shards on the leaving member"

        # As the Go member's Announcement.Update: same key, same lease.
        spec = consumer_spec("zone-c", "member-zone-c", 10, exiting=True)
        await etcd.put(leaving.key, bytes(spec), ignore_lease=True)

        with trio.fail_after(60):
            await leaving.exited.wait()
        final = await wait_until(
            leader, lambda s: converged(s) and all(a.zone != "zone-c" for a in s.assignments)
        )
        assert len(final.assignments) == 12
        assert final.member_by_key[leaving.key].limit == 10  # its limit stays
        for m in members:
            m.stop.set()


async def test_an_exiting_member_the_group_cannot_spare_keeps_its_shards(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """Two members and shards of two replicas: both members must keep their
    limits, so the exiting one sheds nothing and the leader plans no move."""
    root = prefix + "group"
    await apply_shard_specs(
        etcd,
        root,
        [pc.ApplyRequestChange(upsert=shard_spec(f"shard-{i}", hot_standbys=1)) for i in range(4)],
    )
    async with trio.open_nursery() as nursery:
        members: list[RunningMember] = [
            await nursery.start(run_member, etcd, root, zone, f"member-{zone}", 10)
            for zone in ("zone-a", "zone-b")
        ]
        leader = members[0].session
        await wait_until(leader, lambda s: converged(s, members=2))
        leaving = members[1].session
        await leaving.mark_exiting()
        state = await leader.wait_for_revision(leaving.state.revision)
        assert state.member_by_key[leaving.key].exiting
        assert state.shed_capacity == {}
        checkpoints, _ = converge(state, solve_state(state))
        assert checkpoints == []
        assert len(leaving.state.local_items) == 4
        assert not leaving.exited.is_set()
        for m in members:
            m.stop.set()


async def test_a_draining_consumer_announces_exiting_and_waits_for_its_shards_to_move(
    tmp_path: Path,
) -> None:
    """`Consumer.drain` (what SIGTERM runs) sets `exiting` on the member's
    own spec, keeps its limit, and returns once the other member holds every
    shard; a member with nobody to take its shards returns at once."""
    from tests.consumer.test_e2e import count_shards, open_word_count

    specs = count_shards(4)
    async with open_word_count(tmp_path, shards=specs) as (cluster, _):
        alpha = await cluster.add_member("alpha", shard_limit=8)
        for s in specs:
            await cluster.wait_for_primary(s.id)
        beta = await cluster.add_member("beta", shard_limit=8)
        assert alpha.consumer is not None and beta.consumer is not None
        with trio.fail_after(30):
            await alpha.consumer.drain()
        state = alpha.consumer.session.state
        me = state.local_member
        assert me is not None and me.exiting and me.limit == 8
        assert state.local_items == ()
        assert {a.suffix for a in state.assignments} == {"beta"}
        assert not alpha.consumer.service.shards

        # Beta is alone now: nothing can move, so its drain does not wait.
        with trio.fail_after(30):
            await beta.consumer.drain()
        assert len(beta.consumer.session.state.local_items) == 4
