"""Fixtures of the coordination tests: both Etcd implementations behind one
parametrized `etcd` fixture, the clock that suits each, and a TCP proxy that
can cut a client's connections to the real etcd.

The in-process `MemoryEtcd` runs on Trio's `MockClock` (lease TTLs pass in no
time); `GrpcEtcd` talks to the session's real etcd on the real clock. Tests
sharing the real etcd work under a fresh key prefix each.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from gazette_trio.aio import asyncio_island
from gazette_trio.etcd import Etcd, GrpcEtcd, MemoryEtcd


@pytest.fixture(params=["memory", "grpc"])
def etcd_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock(etcd_kind: str) -> trio.testing.MockClock | None:
    """The clock the test runs on: mock for the in-process store (lease
    expiry happens instantly), the real one with a real etcd."""
    return trio.testing.MockClock(autojump_threshold=0) if etcd_kind == "memory" else None


@pytest.fixture
async def etcd(etcd_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Etcd]:
    if etcd_kind == "memory":
        async with MemoryEtcd.open() as memory:
            yield memory
    else:
        # "grpc-etcd-3.4": Debian 12's etcd, the oldest supported (see services.py).
        legacy = etcd_kind == "grpc-etcd-3.4"
        endpoint = request.getfixturevalue("etcd_legacy_endpoint" if legacy else "etcd_endpoint")
        async with asyncio_island(), GrpcEtcd.open(endpoint) as grpc:
            yield grpc


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own on the shared etcd."""
    return f"/test-{uuid.uuid4().hex[:12]}/"


class CuttableProxy:
    """A loopback TCP proxy to a server whose live connections can be cut,
    to show what a client does when its transport breaks."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._scopes: set[trio.CancelScope] = set()
        self.connections = 0
        self.accepting = True

    async def _handle(self, client: trio.SocketStream) -> None:
        if not self.accepting:
            await client.aclose()
            return
        self.connections += 1
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
                async with server, client, trio.open_nursery() as nursery:

                    async def pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
                        try:
                            async for chunk in src:
                                await dst.send_all(chunk)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            pass
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(pump, client, server)
                    nursery.start_soon(pump, server, client)
            except OSError:
                pass
            finally:
                self._scopes.discard(scope)

    def cut(self) -> None:
        """Break every connection now open."""
        for scope in list(self._scopes):
            scope.cancel()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)


@pytest.fixture
async def etcd_proxy(etcd_endpoint: str) -> AsyncIterator[CuttableProxy]:
    port = int(etcd_endpoint.rsplit(":", 1)[1])
    proxy = CuttableProxy(port)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        yield proxy
        nursery.cancel_scope.cancel()
