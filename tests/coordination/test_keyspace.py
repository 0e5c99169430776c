"""The KeySpace mirrors an etcd prefix: loaded at a revision, then kept equal
to etcd by applying watch events in order, decoding every value, surviving
bad values and compaction. Runs against both Etcd implementations."""

from __future__ import annotations

import logging

import pytest
import trio

from gazette_trio.etcd import Etcd, KeyValue
from gazette_trio.keyspace import KeySpace


def decode_int(key: str, kv: KeyValue) -> int:
    return int(kv.value)


async def test_load_reads_the_prefix_at_a_revision(etcd: Etcd, prefix: str, clock: object) -> None:
    """Loading at revision R shows exactly what the prefix held at R."""
    await etcd.put(prefix + "a", "1")
    at = await etcd.put(prefix + "b", "2")
    await etcd.put(prefix + "a", "10")
    await etcd.put(prefix[:-1] + "-sibling", "99")  # outside the root
    ks = KeySpace(prefix, decode_int)
    await ks.load(etcd, at.revision)
    assert ks.revision == at.revision
    assert [(e.key[len(prefix) :], e.value) for e in ks.entries] == [("a", 1), ("b", 2)]
    await ks.load(etcd)
    assert ks.get(prefix + "a").value == 10  # type: ignore[union-attr]


async def test_load_pages_through_large_prefixes(etcd: Etcd, prefix: str, clock: object) -> None:
    """More keys than one page still load completely and in order."""
    for i in range(0, 2500, 100):
        from gazette_trio.etcd import Put

        await etcd.txn([], [Put(f"{prefix}{j:05d}", str(j)) for j in range(i, i + 100)])
    ks = KeySpace(prefix, decode_int)
    await ks.load(etcd)
    assert [e.value for e in ks.entries] == list(range(2500))


async def test_watch_applies_changes_in_order_and_notifies(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """After each applied batch observers run; `wait_for_revision` returns
    once the KeySpace has caught up with a write."""
    ks = KeySpace(prefix, decode_int)
    seen: list[dict[str, int]] = []
    ks.observers.append(lambda: seen.append({e.key[len(prefix) :]: e.value for e in ks.entries}))
    await ks.load(etcd)
    async with trio.open_nursery() as nursery:
        await nursery.start(ks.watch, etcd)
        await etcd.put(prefix + "x/1", "1")
        await etcd.put(prefix + "x/2", "2")
        await etcd.put(prefix + "y", "3")
        last = await etcd.delete(prefix + "x/1")
        with trio.fail_after(10):
            await ks.wait_for_revision(last.revision)
        assert [e.key[len(prefix) :] for e in ks.prefixed(prefix + "x/")] == ["x/2"]
        assert [e.value for e in ks.prefixed(prefix)] == [2, 3]
        assert seen[-1] == {"x/2": 2, "y": 3}
        nursery.cancel_scope.cancel()


async def test_bad_values_are_skipped_with_an_error_naming_the_key(
    etcd: Etcd, prefix: str, clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A value that fails to decode is logged with its key and skipped; a key
    that had a good value keeps it until a good one replaces it."""
    await etcd.put(prefix + "good", "1")
    await etcd.put(prefix + "bad", "not a number")
    ks = KeySpace(prefix, decode_int)
    with caplog.at_level(logging.ERROR, logger="gazette_trio.keyspace"):
        await ks.load(etcd)
    assert [e.key for e in ks.entries] == [prefix + "good"]
    assert prefix + "bad" in ks.decode_errors
    assert any(prefix + "bad" in r.getMessage() for r in caplog.records)

    async with trio.open_nursery() as nursery:
        await nursery.start(ks.watch, etcd)
        await etcd.put(prefix + "good", "garbage")
        fixed = await etcd.put(prefix + "bad", "7")
        with trio.fail_after(10):
            await ks.wait_for_revision(fixed.revision)
        assert {e.key[len(prefix) :]: e.value for e in ks.entries} == {"good": 1, "bad": 7}
        assert list(ks.decode_errors) == [prefix + "good"]
        gone = await etcd.delete(prefix + "good")
        with trio.fail_after(10):
            await ks.wait_for_revision(gone.revision)
        assert ks.decode_errors == {}
        assert [e.key for e in ks.entries] == [prefix + "bad"]
        nursery.cancel_scope.cancel()


async def test_compaction_under_a_watch_reloads_cleanly(
    etcd: Etcd, prefix: str, clock: object
) -> None:
    """If the history a KeySpace must replay was compacted, it reloads at a
    current revision and watches on from there."""
    await etcd.put(prefix + "a", "1")
    ks = KeySpace(prefix, decode_int)
    await ks.load(etcd)
    await etcd.put(prefix + "a", "2")
    await etcd.put(prefix + "b", "3")
    last = await etcd.put(prefix + "c", "4")
    await etcd.compact(last.revision)
    reloaded: list[int] = []
    ks.observers.append(lambda: reloaded.append(ks.revision))
    async with trio.open_nursery() as nursery:
        await nursery.start(ks.watch, etcd)
        with trio.fail_after(10):
            await ks.wait_for_revision(last.revision)
        assert {e.key[len(prefix) :]: e.value for e in ks.entries} == {"a": 2, "b": 3, "c": 4}
        after = await etcd.put(prefix + "d", "5")
        with trio.fail_after(10):
            await ks.wait_for_revision(after.revision)
        assert ks.get(prefix + "d").value == 5  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()
    assert reloaded


async def test_the_header_names_etcds_cluster_member_and_term_at_the_keyspace_revision(
    etcd: Etcd, etcd_kind: str, prefix: str, clock: object
) -> None:
    """Gazette puts etcd's response header in its API headers: the KeySpace
    keeps the last one read (load, then watch), at its own revision. A real
    etcd's ids are its own; MemoryEtcd answers as one stable cluster."""
    from gazette_trio.etcd import MEMORY_CLUSTER_ID, NO_HEADER

    ks = KeySpace(prefix, decode_int)
    assert ks.header == NO_HEADER
    await etcd.put(prefix + "a", "1")
    await ks.load(etcd)
    loaded = ks.header
    assert loaded.revision == ks.revision > 0
    assert loaded.cluster_id and loaded.member_id and loaded.raft_term
    if etcd_kind == "memory":
        assert (loaded.cluster_id, loaded.member_id, loaded.raft_term) == (MEMORY_CLUSTER_ID, 1, 1)
    else:
        txn = await etcd.txn([], [])
        assert txn.header is not None
        assert (txn.header.cluster_id, txn.header.member_id) == (
            loaded.cluster_id,
            loaded.member_id,
        )
    async with trio.open_nursery() as nursery:
        await nursery.start(ks.watch, etcd)
        written = await etcd.put(prefix + "b", "2")
        with trio.fail_after(10):
            await ks.wait_for_revision(written.revision)
        assert ks.header == loaded.at(ks.revision)
        assert ks.header.revision >= written.revision
        nursery.cancel_scope.cancel()
