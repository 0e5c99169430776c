"""What `MemoryEtcd` adds to the contract: durability in a file, and the hooks
a deterministic simulator steers it by."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from gazette_trio.etcd import (
    Compacted,
    Compare,
    CorruptLogError,
    EtcdHooks,
    EventType,
    MemoryEtcd,
    Op,
    Put,
    Unavailable,
)


async def test_a_persisted_store_survives_a_restart(tmp_path: Path) -> None:
    """Keys, revisions and leases written before a restart are there after it."""
    path = tmp_path / "etcd.db"
    async with MemoryEtcd.open(path) as etcd:
        await etcd.put("/a", "1")
        lease = await etcd.grant(30)
        await etcd.put("/leased", "x", lease=lease.id)
        await etcd.put("/a", "2")
        await etcd.put("/gone", "y")
        last = await etcd.delete("/gone")
    async with MemoryEtcd.open(path) as etcd:
        kvs = (await etcd.range("/", prefix=True)).kvs
        assert [(kv.key, kv.value, kv.version) for kv in kvs] == [
            (b"/a", b"2", 2),
            (b"/leased", b"x", 1),
        ]
        assert kvs[1].lease == lease.id
        assert (await etcd.time_to_live(lease.id)).granted_ttl == 30
        assert (await etcd.put("/b", "3")).revision == last.revision + 1
        # History before the restart is gone, as after a compaction.
        with pytest.raises(Compacted):
            await etcd.range("/a", revision=last.revision - 1)
        # New leases do not collide with restored ones.
        assert (await etcd.grant(5)).id != lease.id
    async with MemoryEtcd.open(path) as etcd:
        assert (await etcd.get("/b")) is not None


async def test_a_restored_lease_expires_unless_kept_alive(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    """After a restart a lease gets its full TTL again, and then expires."""
    path = tmp_path / "etcd.db"
    async with MemoryEtcd.open(path) as etcd:
        lease = await etcd.grant(10)
        await etcd.put("/leased", "x", lease=lease.id)
    # Only now let idle time jump ahead (waiting on fsync threads is idle too).
    mock_clock.autojump_threshold = 0
    async with MemoryEtcd.open(path) as etcd:
        await trio.sleep(9)
        assert await etcd.get("/leased") is not None
        await trio.sleep(2)
        assert await etcd.get("/leased") is None
    async with MemoryEtcd.open(path) as etcd:
        assert await etcd.get("/leased") is None
        assert (await etcd.time_to_live(lease.id)).ttl == -1


async def test_a_torn_last_write_is_dropped_but_corruption_is_an_error(tmp_path: Path) -> None:
    """A crash mid-append loses only that unacknowledged write; a damaged frame
    in the middle of the file is reported with its offset, not skipped."""
    path = tmp_path / "etcd.db"
    async with MemoryEtcd.open(path) as etcd:
        await etcd.put("/a", "1")
        await etcd.put("/b", "2")
    path.write_bytes(path.read_bytes()[:-3])
    async with MemoryEtcd.open(path) as etcd:
        assert [kv.key for kv in (await etcd.range("/", prefix=True)).kvs] == [b"/a"]
        await etcd.put("/c", "3")
        await etcd.put("/d", "4")
    data = bytearray(path.read_bytes())
    data[12] ^= 0xFF  # inside the first frame's payload
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError, match=r"offset 0"):
        async with MemoryEtcd.open(path):
            pass


class ScriptedHooks(EtcdHooks):
    """Fails chosen requests, delays others, and forces chosen txns to lose."""

    def __init__(self) -> None:
        self.fail_next: set[str] = set()
        self.delay: dict[str, float] = {}
        self.lose_txns_on: set[bytes] = set()
        self.seen: list[str] = []

    async def before(self, request: str) -> None:
        self.seen.append(request)
        if request in self.fail_next:
            self.fail_next.discard(request)
            raise Unavailable(f"injected failure of {request}")
        if request in self.delay:
            await trio.sleep(self.delay[request])

    def fail_txn(self, compare: Sequence[Compare], success: Sequence[Op]) -> bool:
        return any(isinstance(op, Put) and op.key in self.lose_txns_on for op in success)


async def test_hooks_inject_failures_delays_and_txn_conflicts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A simulator can fail a request, delay one on the Trio clock, and make a
    transaction lose as if raced."""
    hooks = ScriptedHooks()
    async with MemoryEtcd.open(hooks=hooks) as etcd:
        hooks.fail_next.add("put")
        with pytest.raises(Unavailable):
            await etcd.put("/k", "1")
        assert await etcd.get("/k") is None

        hooks.delay["put"] = 5.0
        start = trio.current_time()
        await etcd.put("/k", "1")
        assert trio.current_time() - start == pytest.approx(5.0)

        hooks.lose_txns_on.add(b"/k")
        result = await etcd.txn([Compare.version("/k", "=", 1)], [Put("/k", "2")])
        assert not result.succeeded
        assert (await etcd.get("/k")).value == b"1"  # type: ignore[union-attr]


async def test_expire_lease_loses_a_lease_now(autojump_clock: trio.testing.MockClock) -> None:
    """`expire_lease` deletes the lease's keys and its keep-alive reports loss."""
    async with MemoryEtcd.open() as etcd:
        lease = await etcd.grant(60)
        await etcd.put("/held", "1", lease=lease.id)
        async with etcd.watch("/", prefix=True) as stream:
            await etcd.expire_lease(lease.id)
            batch = await stream.receive()
        assert [(e.type, e.kv.key) for e in batch.events] == [(EventType.DELETE, b"/held")]


async def test_auto_compaction_bounds_retained_history() -> None:
    """With `retain_revisions`, old history is compacted away as writes go on."""
    async with MemoryEtcd.open(retain_revisions=10) as etcd:
        for i in range(100):
            await etcd.put("/k", str(i))
        assert etcd.store.revision - etcd.store.compact_revision <= 21
        with pytest.raises(Compacted):
            await etcd.range("/k", revision=5)


async def test_iteration_is_deterministic(autojump_clock: trio.testing.MockClock) -> None:
    """Two runs of the same script produce identical stores and events."""

    async def script() -> list[tuple[int, bytes, int]]:
        async with MemoryEtcd.open() as etcd:
            leases = [await etcd.grant(t) for t in (5, 3, 7)]
            for i, lease in enumerate(leases):
                await etcd.put(f"/l{i}", "x", lease=lease.id)
                await etcd.put(f"/p{i}", "y")
            async with etcd.watch("/", prefix=True, start_revision=1) as stream:
                await trio.sleep(10)
                out = []
                while True:
                    try:
                        batch = stream.receive_nowait()
                    except trio.WouldBlock:
                        break
                    out.extend((e.kv.mod_revision, e.kv.key, e.type.value) for e in batch.events)
            return out

    assert await script() == await script()
