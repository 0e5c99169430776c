"""The rules of one convergence round, on hand-built group states.

Each test writes a group into a MemoryEtcd, builds its State, and checks the
operations `converge` plans toward a desired assignment: replicas are removed
only while enough consistent ones remain, a standby is promoted when the
primary is gone (a ready one first), additions respect member limits, and
every change is guarded by the revisions it was planned from.
"""

from __future__ import annotations

import trio

from gazette_trio.allocator import State, item_key, keyspace, member_key
from gazette_trio.allocator.converge import batch, converge
from gazette_trio.etcd import Compare, CompareTarget, Delete, MemoryEtcd, Put
from gazette_trio.protocol import consumer as pc

from .groups import consumer_spec, shard_spec

ROOT = "/group"
Code = pc.ReplicaStatusCode


async def build(
    etcd: MemoryEtcd,
    members: dict[str, int],
    shards: dict[str, int],
    assignments: list[tuple[str, str, int, pc.ReplicaStatusCode]],
) -> State:
    """members: suffix -> limit (zone = 'zone-' + suffix); shards: id ->
    hot standbys; assignments: (shard, member suffix, slot, status)."""
    leases = {}
    for suffix, limit in members.items():
        lease = await etcd.grant(60)
        leases[suffix] = lease.id
        await etcd.put(
            member_key(ROOT, "zone-" + suffix, suffix),
            bytes(consumer_spec("zone-" + suffix, suffix, limit)),
            lease=lease.id,
        )
    for shard, standbys in shards.items():
        await etcd.put(item_key(ROOT, shard), bytes(shard_spec(shard, hot_standbys=standbys)))
    for shard, suffix, slot, code in assignments:
        status = pc.ReplicaStatus(code=code, errors=["broken"] if code == Code.FAILED else [])
        await etcd.put(
            f"{ROOT}/assign/{shard}#zone-{suffix}#{suffix}#{slot}",
            bytes(status),
            lease=leases[suffix],
        )
    ks = keyspace(ROOT)
    await ks.load(etcd)
    first = sorted(members)[0]
    return State.build(ks, member_key(ROOT, "zone-" + first, first))


def deletes(checkpoints: list) -> list[str]:  # type: ignore[type-arg]
    return [op.key.decode() for cp in checkpoints for op in cp.ops if isinstance(op, Delete)]


def puts(checkpoints: list) -> list[str]:  # type: ignore[type-arg]
    return [op.key.decode() for cp in checkpoints for op in cp.ops if isinstance(op, Put)]


async def test_a_replica_is_not_removed_until_its_replacement_is_ready(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Moving a shard from member aaaa to cccc: the new replica is added, but
    the old one stays until the new one reports STANDBY."""
    async with MemoryEtcd.open() as etcd:
        members = {"aaaa": 5, "bbbb": 5, "cccc": 5}
        desired = {"shard-1": [("zone-bbbb", "bbbb"), ("zone-cccc", "cccc")]}
        state = await build(
            etcd,
            members,
            {"shard-1": 1},
            [("shard-1", "aaaa", 1, Code.STANDBY), ("shard-1", "bbbb", 0, Code.PRIMARY)],
        )
        checkpoints, stats = converge(state, desired)
        assert puts(checkpoints) == [f"{ROOT}/assign/shard-1#zone-cccc#cccc#2"]
        assert deletes(checkpoints) == []
        assert (stats.added, stats.removed) == (1, 0)

    async with MemoryEtcd.open() as etcd:
        state = await build(
            etcd,
            members,
            {"shard-1": 1},
            [
                ("shard-1", "aaaa", 1, Code.STANDBY),
                ("shard-1", "bbbb", 0, Code.PRIMARY),
                ("shard-1", "cccc", 2, Code.BACKFILL),
            ],
        )
        checkpoints, _ = converge(state, desired)
        assert deletes(checkpoints) == []  # cccc still backfilling

    async with MemoryEtcd.open() as etcd:
        state = await build(
            etcd,
            members,
            {"shard-1": 1},
            [
                ("shard-1", "aaaa", 1, Code.STANDBY),
                ("shard-1", "bbbb", 0, Code.PRIMARY),
                ("shard-1", "cccc", 2, Code.STANDBY),
            ],
        )
        checkpoints, stats = converge(state, desired)
        assert deletes(checkpoints) == [f"{ROOT}/assign/shard-1#zone-aaaa#aaaa#1"]
        # Guarded by the shard's and the assignment's revisions.
        guards = {(c.key.decode(), c.target) for c in checkpoints[0].compares}
        assert (item_key(ROOT, "shard-1"), CompareTarget.MOD) in guards
        assert (f"{ROOT}/assign/shard-1#zone-aaaa#aaaa#1", CompareTarget.MOD) in guards


async def test_a_ready_standby_is_promoted_when_the_primary_is_gone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With no replica in slot 0, a consistent standby moves to slot 0 (value
    and lease kept) in preference to one still backfilling."""
    async with MemoryEtcd.open() as etcd:
        state = await build(
            etcd,
            {"aaaa": 5, "bbbb": 5, "cccc": 5},
            {"shard-1": 2},
            [("shard-1", "aaaa", 1, Code.BACKFILL), ("shard-1", "bbbb", 2, Code.STANDBY)],
        )
        desired = {"shard-1": [("zone-aaaa", "aaaa"), ("zone-bbbb", "bbbb"), ("zone-cccc", "cccc")]}
        checkpoints, stats = converge(state, desired)
        assert stats.promoted == 1
        ops = checkpoints[0].ops
        moved_from = f"{ROOT}/assign/shard-1#zone-bbbb#bbbb#2"
        moved_to = f"{ROOT}/assign/shard-1#zone-bbbb#bbbb#0"
        assert any(isinstance(op, Delete) and op.key.decode() == moved_from for op in ops)
        promoted = next(op for op in ops if isinstance(op, Put) and op.key.decode() == moved_to)
        old = state.assignments_by_item["shard-1"][1]
        assert (promoted.value, promoted.lease) == (old.kv.value, old.kv.lease)


async def test_additions_respect_member_limits(autojump_clock: trio.testing.MockClock) -> None:
    """A member at its limit gets no new replica even if the solution says so
    (its limit may have dropped since the solve)."""
    async with MemoryEtcd.open() as etcd:
        state = await build(
            etcd,
            {"aaaa": 1, "bbbb": 5},
            {"shard-1": 0, "shard-2": 0},
            [("shard-1", "aaaa", 0, Code.PRIMARY)],
        )
        desired = {"shard-1": [("zone-aaaa", "aaaa")], "shard-2": [("zone-aaaa", "aaaa")]}
        checkpoints, stats = converge(state, desired)
        assert puts(checkpoints) == []
        assert stats.added == 0


async def test_transactions_stay_within_etcd_limits_and_are_guarded_by_the_leader_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Large rounds split into transactions of at most 128 operations and
    comparisons, each also checking the leader's own member key."""
    async with MemoryEtcd.open() as etcd:
        shards = {f"shard-{i:03d}": 0 for i in range(150)}
        state = await build(etcd, {"aaaa": 200}, shards, [])
        desired = {shard: [("zone-aaaa", "aaaa")] for shard in shards}
        checkpoints, stats = converge(state, desired)
        assert stats.added == 150
        leader = state.local_member
        assert leader is not None
        fixed = Compare.mod_revision(leader.key, "=", leader.kv.mod_revision)
        txns = batch(checkpoints, [fixed])
        assert len(txns) >= 2
        for txn in txns:
            assert txn.compares[0] == fixed
            assert len(txn.compares) <= 128 and len(txn.ops) <= 128
            result = await etcd.txn(txn.compares, txn.ops)
            assert result.succeeded
        assert len((await etcd.range(ROOT + "/assign/", prefix=True)).kvs) == 150
