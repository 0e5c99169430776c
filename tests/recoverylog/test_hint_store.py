"""Hints in etcd under a shard's `hint_prefix`, as Gazette's consumer keeps
them: the primary key the recorder updates, and backups rotated at each
recovery, every write guarded by the shard's assignment."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gazette_trio.etcd.memory import MemoryEtcd
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol.recoverylog import FnodeSegments, FsmHints, Segment
from gazette_trio.recoverylog.hint_store import (
    HintsStoreError,
    assignment_guard,
    fetch_hints,
    hint_backup_keys,
    hint_primary_key,
    recovery_log,
    store_recorded_hints,
    store_recovered_hints,
)
from gazette_trio.recoverylog.hints import HintsError, hints_to_proto

SPEC = pc.ShardSpec(
    id="shard-000",
    recovery_log_prefix="recovery/logs",
    hint_prefix="/gazette/hints",
    hint_backups=2,
)
LOG = "recovery/logs/shard-000"
ASSIGNMENT = "/consumer/assign/shard-000#member#0"


def hints(last_seq_no: int) -> FsmHints:
    segment = Segment(author=1, first_seq_no=1, last_seq_no=last_seq_no)
    return FsmHints(log=LOG, live_nodes=[FnodeSegments(fnode=1, segments=[segment])])


@pytest.fixture
async def etcd() -> AsyncIterator[MemoryEtcd]:
    async with MemoryEtcd.open() as etcd:
        yield etcd


def test_keys_follow_gazettes_layout() -> None:
    assert recovery_log(SPEC) == LOG
    assert recovery_log(pc.ShardSpec(id="x")) == ""
    assert hint_primary_key(SPEC) == "/gazette/hints/shard-000.primary"
    assert hint_backup_keys(SPEC) == [
        "/gazette/hints/shard-000.backup.0",
        "/gazette/hints/shard-000.backup.1",
    ]


async def test_without_stored_hints_playback_starts_from_empty_hints_of_the_log(
    etcd: MemoryEtcd,
) -> None:
    fetched = await fetch_hints(etcd, SPEC)
    assert fetched.hints == [None, None, None]
    assert fetched.first() == FsmHints(log=LOG)


async def test_primary_hints_are_preferred_then_the_newest_backup(etcd: MemoryEtcd) -> None:
    await etcd.put(hint_backup_keys(SPEC)[1], hints_to_proto(hints(1)))  # Protobuf is read too.
    assert (await fetch_hints(etcd, SPEC)).first() == hints(1)
    await etcd.put(hint_backup_keys(SPEC)[0], b"")
    with pytest.raises(HintsError, match=r"hints at /gazette/hints/shard-000.backup.0"):
        await fetch_hints(etcd, SPEC)
    assert await store_recorded_hints(etcd, SPEC, hints(2))
    await etcd.delete(hint_backup_keys(SPEC)[0])
    assert (await fetch_hints(etcd, SPEC)).first() == hints(2)


async def test_recovered_hints_rotate_through_the_backups(etcd: MemoryEtcd) -> None:
    for n in (1, 2, 3):
        await store_recovered_hints(etcd, SPEC, hints(n))
    fetched = await fetch_hints(etcd, SPEC)
    assert fetched.hints == [None, hints(3), hints(2)]  # hints(1) fell off the end.


async def test_writes_are_guarded_by_the_assignment(etcd: MemoryEtcd) -> None:
    put = await etcd.put(ASSIGNMENT, b"")
    guard = [assignment_guard(ASSIGNMENT, put.revision)]
    assert await store_recorded_hints(etcd, SPEC, hints(1), guard=guard)
    await store_recovered_hints(etcd, SPEC, hints(1), guard=guard)

    # The assignment is re-created (another member became primary).
    await etcd.delete(ASSIGNMENT)
    await etcd.put(ASSIGNMENT, b"")
    assert not await store_recorded_hints(etcd, SPEC, hints(9), guard=guard)
    with pytest.raises(HintsStoreError, match="changed concurrently"):
        await store_recovered_hints(etcd, SPEC, hints(9), guard=guard)
    assert (await fetch_hints(etcd, SPEC)).hints == [hints(1), hints(1), None]


async def test_hints_of_another_log_or_impossible_hints_are_refused(etcd: MemoryEtcd) -> None:
    await etcd.put(hint_primary_key(SPEC), b'{"log":"some/other/log"}')
    with pytest.raises(HintsError, match=r"!= ShardSpec\.RecoveryLog recovery/logs/shard-000"):
        await fetch_hints(etcd, SPEC)
    bad = hints(1)
    bad.live_nodes[0].fnode = 2  # Fnode must equal the first segment's seq_no.
    await etcd.put(hint_primary_key(SPEC), hints_to_proto(bad))
    with pytest.raises(HintsError, match="expected Fnode to match Segment FirstSeqNo"):
        await fetch_hints(etcd, SPEC)
