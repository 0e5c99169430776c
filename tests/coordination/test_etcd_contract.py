"""The Etcd contract, shown on both implementations.

Every test here runs three times: against `MemoryEtcd` (on a mock clock),
and through `GrpcEtcd` against a real etcd 3.5 (the suite's) and Debian 12's
etcd 3.4, the oldest server gazette-trio supports. What they promise is what
the KeySpace, the allocator and the consumer runtime rely on: revisions,
versions, ranges at past revisions, transactions with guarded writes, watches
that replay history and report compaction, and leases whose keys go when they
do.
"""

from __future__ import annotations

import pytest
import trio

from gazette_trio.etcd import (
    Compacted,
    Compare,
    Delete,
    Etcd,
    EventType,
    FutureRevision,
    Get,
    InvalidRequest,
    LeaseLost,
    LeaseNotFound,
    Put,
    PutResult,
    RangeResult,
)


@pytest.fixture(params=["memory", "grpc", "grpc-etcd-3.4"])
def etcd_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_each_write_creates_one_revision_and_keys_carry_their_history(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """A put creates a revision; create/mod revisions and version follow it."""
    first = await etcd.put(prefix + "a", "1")
    second = await etcd.put(prefix + "a", "2")
    assert second.revision == first.revision + 1
    kv = await etcd.get(prefix + "a")
    assert kv is not None
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (
        b"2",
        first.revision,
        second.revision,
        2,
    )
    deleted = await etcd.delete(prefix + "a")
    assert (deleted.deleted, deleted.revision) == (1, second.revision + 1)
    again = await etcd.put(prefix + "a", "3")
    kv = await etcd.get(prefix + "a")
    assert kv is not None and (kv.create_revision, kv.version) == (again.revision, 1)


async def test_deleting_nothing_creates_no_revision(etcd: Etcd, prefix: str, clock: object) -> None:
    """Only writes that change something move the store's revision."""
    put = await etcd.put(prefix + "x", "1")
    deleted = await etcd.delete(prefix + "missing")
    assert deleted.deleted == 0 and deleted.revision == put.revision


async def test_ranges_read_prefixes_and_bounds_in_key_order(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """Prefix and [key, range_end) reads return keys in order; a limit sets `more`."""
    for name in ["b", "a", "c/1", "c/2", "d"]:
        await etcd.put(prefix + name, name)
    every = await etcd.range(prefix, prefix=True)
    assert [kv.value for kv in every.kvs] == [b"a", b"b", b"c/1", b"c/2", b"d"]
    assert every.count == 5 and not every.more
    bounded = await etcd.range(prefix + "b", range_end=prefix + "d")
    assert [kv.value for kv in bounded.kvs] == [b"b", b"c/1", b"c/2"]
    limited = await etcd.range(prefix, prefix=True, limit=2)
    assert [kv.value for kv in limited.kvs] == [b"a", b"b"]
    assert limited.more and limited.count == 5
    keys = await etcd.range(prefix + "c/", prefix=True, keys_only=True)
    assert [kv.key for kv in keys.kvs] == [(prefix + "c/1").encode(), (prefix + "c/2").encode()]
    assert all(kv.value == b"" for kv in keys.kvs)


async def test_ranges_read_past_revisions_until_compacted(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """A read at a past revision sees that revision; compaction ends that."""
    old = await etcd.put(prefix + "k", "old")
    await etcd.put(prefix + "k", "new")
    await etcd.put(prefix + "gone", "x")
    newest = await etcd.delete(prefix + "gone")
    past = await etcd.range(prefix, prefix=True, revision=old.revision)
    assert [(kv.key, kv.value) for kv in past.kvs] == [((prefix + "k").encode(), b"old")]
    with pytest.raises(FutureRevision):
        await etcd.range(prefix, prefix=True, revision=newest.revision + 1000)
    await etcd.compact(newest.revision)
    with pytest.raises(Compacted):
        await etcd.range(prefix, prefix=True, revision=old.revision)
    at_compaction = await etcd.range(prefix, prefix=True, revision=newest.revision)
    assert [kv.value for kv in at_compaction.kvs] == [b"new"]


async def test_txn_runs_success_or_failure_by_its_comparisons(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """Comparisons on value, version, create and mod revision pick the branch."""
    key = prefix + "k"
    created = await etcd.put(key, "v1")
    ok = await etcd.txn(
        [
            Compare.value(key, "=", "v1"),
            Compare.version(key, "=", 1),
            Compare.create_revision(key, "=", created.revision),
            Compare.mod_revision(key, "<", created.revision + 1),
            Compare.mod_revision(key, ">", created.revision - 1),
            Compare.value(key, "!=", "other"),
        ],
        [Put(key, "v2"), Get(key)],
        [Put(prefix + "failed", "1")],
    )
    assert ok.succeeded and ok.revision == created.revision + 1
    assert isinstance(ok.results[0], PutResult)
    read = ok.results[1]
    assert isinstance(read, RangeResult) and read.kvs[0].value == b"v2"

    failed = await etcd.txn([Compare.value(key, "=", "v1")], [Put(key, "v3")], [Get(key)])
    assert not failed.succeeded
    assert failed.revision == ok.revision  # a read-only branch writes nothing
    read = failed.results[0]
    assert isinstance(read, RangeResult) and read.kvs[0].value == b"v2"


async def test_txn_on_missing_key_compares_as_zero_and_value_never_matches(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """A missing key has version 0 ("create if absent"); value compares fail."""
    key = prefix + "new"
    created = await etcd.txn([Compare.version(key, "=", 0)], [Put(key, "1")])
    assert created.succeeded
    again = await etcd.txn([Compare.version(key, "=", 0)], [Put(key, "2")])
    assert not again.succeeded
    missing = prefix + "missing"
    assert not (await etcd.txn([Compare.value(missing, "=", "")], [Put(missing, "x")])).succeeded
    assert not (await etcd.txn([Compare.value(missing, "!=", "x")], [Put(missing, "x")])).succeeded
    assert (await etcd.txn([Compare.mod_revision(missing, "=", 0)], [])).succeeded


async def test_racing_guarded_writes_let_exactly_one_win(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """Writers guarding on the same mod revision conflict: one succeeds."""
    key = prefix + "contended"
    base = await etcd.put(key, "0")
    outcomes: list[bool] = []

    async def writer(value: str) -> None:
        result = await etcd.txn([Compare.mod_revision(key, "=", base.revision)], [Put(key, value)])
        outcomes.append(result.succeeded)

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(writer, f"w{i}")
    assert sorted(outcomes) == [False, False, False, False, True]
    kv = await etcd.get(key)
    assert kv is not None and kv.version == 2


async def test_txn_refuses_duplicate_keys_and_too_many_operations(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """As etcd does: no two writes to one key, at most 128 operations."""
    with pytest.raises(InvalidRequest, match="duplicate key"):
        await etcd.txn([], [Put(prefix + "a", "1"), Put(prefix + "a", "2")])
    with pytest.raises(InvalidRequest, match="duplicate key"):
        await etcd.txn([], [Delete(prefix, prefix=True), Put(prefix + "a", "2")])
    with pytest.raises(InvalidRequest, match="too many operations"):
        await etcd.txn([], [Put(f"{prefix}{i}", "x") for i in range(129)])
    assert (await etcd.range(prefix, prefix=True)).kvs == []


async def test_puts_check_their_lease(etcd: Etcd, prefix: str, clock: object) -> None:
    """A put under an unknown lease fails; `ignore_lease` needs an existing key
    and keeps its lease."""
    with pytest.raises(LeaseNotFound):
        await etcd.put(prefix + "k", "v", lease=0x7777_7777)
    with pytest.raises(InvalidRequest, match="key not found"):
        await etcd.put(prefix + "missing", "v", ignore_lease=True)
    lease = await etcd.grant(30)
    await etcd.put(prefix + "k", "v1", lease=lease.id)
    await etcd.put(prefix + "k", "v2", ignore_lease=True)
    kv = await etcd.get(prefix + "k")
    assert kv is not None and (kv.value, kv.lease) == (b"v2", lease.id)
    await etcd.revoke(lease.id)


async def test_watch_delivers_changes_in_revision_order(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """Changes under the watched prefix arrive in order; others do not."""
    async with etcd.watch(prefix + "w/", prefix=True, prev_kv=True) as stream:
        p1 = await etcd.put(prefix + "w/a", "1")
        await etcd.put(prefix + "other", "ignored")
        p2 = await etcd.put(prefix + "w/a", "2")
        d = await etcd.delete(prefix + "w/a")
        events = []
        while len(events) < 3:
            batch = await stream.receive()
            assert batch.revision == batch.events[-1].kv.mod_revision
            events.extend(batch.events)
    assert [(e.type, e.kv.value, e.kv.mod_revision) for e in events] == [
        (EventType.PUT, b"1", p1.revision),
        (EventType.PUT, b"2", p2.revision),
        (EventType.DELETE, b"", d.revision),
    ]
    assert events[2].prev_kv is not None and events[2].prev_kv.value == b"2"


async def test_watch_from_a_past_revision_replays_history(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """A watch started at revision R delivers every change since R."""
    first = await etcd.put(prefix + "a", "1")
    await etcd.put(prefix + "b", "2")
    await etcd.delete(prefix + "a")
    async with etcd.watch(prefix, prefix=True, start_revision=first.revision) as stream:
        events = []
        while len(events) < 3:
            events.extend((await stream.receive()).events)
    assert [(e.type, e.kv.key[len(prefix) :]) for e in events] == [
        (EventType.PUT, b"a"),
        (EventType.PUT, b"b"),
        (EventType.DELETE, b"a"),
    ]


async def test_watch_from_a_compacted_revision_raises_compacted(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """History gone to compaction cannot be replayed: the reader is told, with
    the compaction revision, so it can reload."""
    first = await etcd.put(prefix + "a", "1")
    last = await etcd.put(prefix + "a", "2")
    await etcd.compact(last.revision)
    async with etcd.watch(prefix, prefix=True, start_revision=first.revision) as stream:
        with pytest.raises(Compacted) as caught:
            await stream.receive()
    assert caught.value.compact_revision == last.revision
    async with etcd.watch(prefix, prefix=True, start_revision=last.revision) as stream:
        batch = await stream.receive()
    assert batch.events[0].kv.value == b"2"


async def test_revoking_a_lease_deletes_its_keys(etcd: Etcd, prefix: str, clock: object) -> None:
    """Keys attached to a lease are deleted together when it is revoked."""
    lease = await etcd.grant(60)
    await etcd.put(prefix + "a", "1", lease=lease.id)
    await etcd.put(prefix + "b", "2", lease=lease.id)
    await etcd.put(prefix + "c", "3")
    info = await etcd.time_to_live(lease.id, keys=True)
    assert info.granted_ttl == 60 and 0 < info.ttl <= 60
    assert sorted(info.keys) == [(prefix + "a").encode(), (prefix + "b").encode()]
    async with etcd.watch(prefix, prefix=True) as stream:
        await etcd.revoke(lease.id)
        batch = await stream.receive()
    assert sorted(e.kv.key[len(prefix) :] for e in batch.events) == [b"a", b"b"]
    assert {e.type for e in batch.events} == {EventType.DELETE}
    assert [kv.key for kv in (await etcd.range(prefix, prefix=True)).kvs] == [
        (prefix + "c").encode()
    ]
    assert (await etcd.time_to_live(lease.id)).ttl == -1
    with pytest.raises(LeaseNotFound):
        await etcd.revoke(lease.id)


async def test_an_unrenewed_lease_expires_and_a_kept_alive_one_does_not(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """A lease lives as long as it is kept alive; left alone it expires and
    its keys are deleted."""
    kept = await etcd.grant(2)
    left = await etcd.grant(2)
    await etcd.put(prefix + "kept", "1", lease=kept.id)
    await etcd.put(prefix + "left", "1", lease=left.id)
    async with trio.open_nursery() as nursery:
        await nursery.start(etcd.keep_alive, kept.id)
        async with etcd.watch(prefix, prefix=True) as stream:
            with trio.fail_after(15):
                batch = await stream.receive()
        assert [(e.type, e.kv.key) for e in batch.events] == [
            (EventType.DELETE, (prefix + "left").encode())
        ]
        await trio.sleep(3)
        assert await etcd.get(prefix + "kept") is not None
        nursery.cancel_scope.cancel()
    await etcd.revoke(kept.id)


async def test_keep_alive_reports_a_lease_revoked_elsewhere(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """`keep_alive` raises `LeaseLost` once its lease is gone, which ends the
    nursery that depends on it."""
    lease = await etcd.grant(3)
    lost: list[LeaseLost] = []
    with trio.fail_after(15):
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(etcd.keep_alive, lease.id)
                await etcd.revoke(lease.id)
                await trio.sleep_forever()
        except* LeaseLost as group:
            lost.extend(group.exceptions)  # type: ignore[arg-type]
    assert [e.lease_id for e in lost] == [lease.id]
