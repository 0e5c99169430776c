"""Bad input under a consumer root: clear errors, and the group goes on.

Invalid ShardSpecs are refused by Apply naming the field; conflicting
expected revisions fail the whole Apply; values that cannot be decoded (a
ShardSpec with an invalid id written behind Apply's back, garbage bytes, keys
of unknown shape) are logged naming their key and skipped, while the
allocator keeps allocating everything else.
"""

from __future__ import annotations

import logging

import pytest
import trio

from gazette_trio.allocator import (
    ApplyConflict,
    State,
    ValidationError,
    apply_shard_specs,
    item_key,
    keyspace,
    member_key,
)
from gazette_trio.allocator.converge import converge
from gazette_trio.etcd import Etcd, MemoryEtcd
from gazette_trio.protocol import consumer as pc

from .groups import RunningMember, converged, run_member, shard_spec, wait_until


async def test_apply_refuses_an_invalid_shard_id_naming_the_field(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """Nothing is written when any change is invalid; the error names it."""
    root = prefix + "group"
    with pytest.raises(
        ValidationError, match=r"Changes\[1\]\.Upsert\.Id: not a valid token \(bad id!\)"
    ):
        await apply_shard_specs(
            etcd,
            root,
            [
                pc.ApplyRequestChange(upsert=shard_spec("good-shard")),
                pc.ApplyRequestChange(upsert=shard_spec("bad id!")),
            ],
        )
    with pytest.raises(
        ValidationError, match=r"Changes\[0\]\.Upsert\.Id: invalid length \(2; expected 4"
    ):
        await apply_shard_specs(etcd, root, [pc.ApplyRequestChange(upsert=shard_spec("ab"))])
    with pytest.raises(ValidationError, match=r"MaxTxnDuration"):
        spec = shard_spec("no-duration")
        spec.max_txn_duration = None
        await apply_shard_specs(etcd, root, [pc.ApplyRequestChange(upsert=spec)])
    assert (await etcd.range(root, prefix=True)).kvs == []


async def test_apply_with_conflicting_revisions_changes_nothing(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """Each change names the revision it expects; one stale expectation fails
    the whole request, so concurrent editors cannot overwrite each other."""
    root = prefix + "group"
    created = await apply_shard_specs(
        etcd, root, [pc.ApplyRequestChange(upsert=shard_spec("shard-a"))]
    )
    # Creating again "expecting absence" conflicts.
    with pytest.raises(ApplyConflict):
        await apply_shard_specs(
            etcd, root, [pc.ApplyRequestChange(upsert=shard_spec("shard-a"), expect_mod_revision=0)]
        )
    updated = await apply_shard_specs(
        etcd,
        root,
        [
            pc.ApplyRequestChange(
                upsert=shard_spec("shard-a", hot_standbys=1), expect_mod_revision=created
            )
        ],
    )
    # A second editor still holding the first revision loses, and its other
    # change (creating shard-b) is not applied either.
    with pytest.raises(ApplyConflict):
        await apply_shard_specs(
            etcd,
            root,
            [
                pc.ApplyRequestChange(upsert=shard_spec("shard-b"), expect_mod_revision=0),
                pc.ApplyRequestChange(delete="shard-a", expect_mod_revision=created),
            ],
        )
    kvs = (await etcd.range(root, prefix=True)).kvs
    assert [kv.key.decode() for kv in kvs] == [item_key(root, "shard-a")]
    assert kvs[0].mod_revision == updated
    assert pc.ShardSpec.parse(kvs[0].value).hot_standbys == 1
    # -1 skips the check.
    await apply_shard_specs(
        etcd, root, [pc.ApplyRequestChange(delete="shard-a", expect_mod_revision=-1)]
    )
    assert (await etcd.range(root, prefix=True)).kvs == []


async def test_undecodable_values_are_skipped_and_allocation_goes_on(
    etcd: Etcd, prefix: str, clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A ShardSpec whose id is invalid, one whose id does not match its key,
    garbage bytes as a member and as an assignment, and a key of unknown
    shape are each logged naming the key; every valid shard is allocated."""
    root = prefix + "group"
    bad = {
        item_key(root, "ab"): bytes(shard_spec("ab")),
        item_key(root, "shard-x"): bytes(shard_spec("shard-y")),
        item_key(root, "shard-z"): b"\xff\xff\xff not protobuf",
        member_key(root, "zone-q", "member-q"): b"\x0a\x03garbage",
        root + "/assign/shard-0#zone-q#member-q#zero": b"",
        root + "/elsewhere/thing": b"x",
    }
    for key, value in bad.items():
        await etcd.put(key, value)
    # A sibling group's root is none of this group's business.
    await etcd.put(root + "2/items/shard-0", bytes(shard_spec("shard-0")))
    await apply_shard_specs(
        etcd,
        root,
        [pc.ApplyRequestChange(upsert=shard_spec(f"shard-{i}", hot_standbys=1)) for i in range(4)],
    )
    with caplog.at_level(logging.ERROR, logger="gazette_trio.keyspace"):
        async with trio.open_nursery() as nursery:
            members: list[RunningMember] = [
                await nursery.start(run_member, etcd, root, zone, f"member-{zone}", 10)
                for zone in ("zone-a", "zone-b")
            ]
            state = await wait_until(
                members[0].session, lambda s: converged(s, members=2) and len(s.items) == 4
            )
            assert sorted(item.id for item in state.items) == [f"shard-{i}" for i in range(4)]
            assert set(members[0].session.keyspace.decode_errors) == set(bad)
            errors = members[0].session.keyspace.decode_errors
            assert "Id: invalid length" in errors[item_key(root, "ab")]
            assert "doesn't match" in errors[item_key(root, "shard-x")]
            for m in members:
                m.stop.set()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for key in bad:
        assert key in logged


async def test_a_corrupted_spec_keeps_its_last_good_value(
    autojump_clock: trio.testing.MockClock, prefix: str
) -> None:
    """A shard whose spec is overwritten with garbage keeps being served with
    its last good spec (its replicas stay), and new shards are still
    allocated."""
    root = prefix + "group"
    async with MemoryEtcd.open() as etcd:
        await apply_shard_specs(
            etcd, root, [pc.ApplyRequestChange(upsert=shard_spec("shard-a", hot_standbys=1))]
        )
        async with trio.open_nursery() as nursery:
            members: list[RunningMember] = [
                await nursery.start(run_member, etcd, root, zone, f"member-{zone}", 10)
                for zone in ("zone-a", "zone-b")
            ]
            session = members[0].session
            await wait_until(session, lambda s: converged(s, members=2) and len(s.items) == 1)
            await etcd.put(item_key(root, "shard-a"), b"\x0a\x01!")
            await apply_shard_specs(
                etcd, root, [pc.ApplyRequestChange(upsert=shard_spec("shard-b", hot_standbys=1))]
            )
            state = await wait_until(session, lambda s: len(s.items) == 2 and converged(s))
            assert len(state.assignments_by_item["shard-a"]) == 2
            assert item_key(root, "shard-a") in session.keyspace.decode_errors
            for m in members:
                m.stop.set()


async def test_assignments_of_an_undecodable_shard_are_left_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Assignments whose shard key exists but does not decode are not treated
    as dead: deleting them would need the shard key to be absent, a guard that
    would fail every round and stall the allocator."""
    root = "/group"
    async with MemoryEtcd.open() as etcd:
        await etcd.put(item_key(root, "shard-a"), b"\xff garbage")
        await apply_shard_specs(etcd, root, [pc.ApplyRequestChange(upsert=shard_spec("shard-b"))])
        await etcd.put(root + "/assign/shard-a#zone-a#member-a#0", b"")
        await etcd.put(root + "/assign/shard-gone#zone-a#member-a#0", b"")
        ks = keyspace(root)
        await ks.load(etcd)
        state = State.build(ks, member_key(root, "zone-a", "member-a"))
        assert state.undecodable_items == frozenset({"shard-a"})
        checkpoints, stats = converge(state, {})
        deleted = [op.key.decode() for cp in checkpoints for op in cp.ops]
        assert deleted == [root + "/assign/shard-gone#zone-a#member-a#0"]
        assert stats.dead == 1
