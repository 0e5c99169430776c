"""What `GrpcEtcd` adds to the contract: surviving a broken transport.

A loopback proxy between the client and the real etcd cuts the client's
connections on demand. A watch reconnects and resumes right after the last
revision it delivered, so nothing is lost or repeated; if that revision was
compacted while it was away, its reader gets `Compacted`.
"""

from __future__ import annotations

import trio

from gazette_trio.aio import asyncio_island
from gazette_trio.etcd import Compacted, GrpcEtcd

from .conftest import CuttableProxy


async def test_watch_resumes_after_the_transport_breaks(
    etcd_endpoint: str, etcd_proxy: CuttableProxy, prefix: str
) -> None:
    """Events written while the connection is down arrive once, in order."""
    async with (
        asyncio_island(),
        GrpcEtcd.open(etcd_endpoint) as direct,
        GrpcEtcd.open(f"http://127.0.0.1:{etcd_proxy.port}") as proxied,
        proxied.watch(prefix, prefix=True) as stream,
    ):
        await direct.put(prefix + "a", "1")
        with trio.fail_after(10):
            first = await stream.receive()
        assert [e.kv.value for e in first.events] == [b"1"]

        etcd_proxy.cut()
        await direct.put(prefix + "b", "2")
        await direct.put(prefix + "c", "3")
        values = []
        with trio.fail_after(10):
            while len(values) < 2:
                values.extend(e.kv.value for e in (await stream.receive()).events)
        assert values == [b"2", b"3"]
        assert etcd_proxy.connections >= 2  # it did reconnect


async def test_watch_reports_compaction_that_happened_while_disconnected(
    etcd_endpoint: str, etcd_proxy: CuttableProxy, prefix: str
) -> None:
    """If the revision to resume from is gone, the reader must reload."""
    async with (
        asyncio_island(),
        GrpcEtcd.open(etcd_endpoint) as direct,
        GrpcEtcd.open(f"http://127.0.0.1:{etcd_proxy.port}") as proxied,
        proxied.watch(prefix, prefix=True) as stream,
    ):
        await direct.put(prefix + "a", "1")
        with trio.fail_after(10):
            await stream.receive()
        etcd_proxy.accepting = False
        etcd_proxy.cut()
        await direct.put(prefix + "b", "2")
        last = await direct.put(prefix + "c", "3")
        await direct.compact(last.revision)
        etcd_proxy.accepting = True
        with trio.fail_after(20):
            try:
                await stream.receive()
            except Compacted as exc:
                assert exc.compact_revision == last.revision
            else:
                raise AssertionError("expected Compacted")


async def test_keep_alive_rides_out_a_broken_connection(
    etcd_endpoint: str, etcd_proxy: CuttableProxy, prefix: str
) -> None:
    """A keep-alive whose stream breaks reconnects before the lease's deadline."""
    async with (
        asyncio_island(),
        GrpcEtcd.open(etcd_endpoint) as direct,
        GrpcEtcd.open(f"http://127.0.0.1:{etcd_proxy.port}") as proxied,
    ):
        lease = await direct.grant(3)
        await direct.put(prefix + "held", "1", lease=lease.id)
        async with trio.open_nursery() as nursery:
            await nursery.start(proxied.keep_alive, lease.id)
            for _ in range(3):
                await trio.sleep(1.5)
                etcd_proxy.cut()
            await trio.sleep(1.5)
            assert (await direct.time_to_live(lease.id)).ttl > 0
            assert await direct.get(prefix + "held") is not None
            nursery.cancel_scope.cancel()
        await direct.revoke(lease.id)
