"""Fixtures for the journal tests: a server core, and clients of it over both transports."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from gazette_trio import aio
from gazette_trio.broker.client import JournalClient
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.server import JournalServerCore, MemoryStorage, journal_service
from gazette_trio.protocol import protocol as pb


@dataclass
class Broker:
    """A journal server core and a client reaching it over one transport."""

    core: JournalServerCore
    client: JournalClient
    transport: str

    async def create(self, name: str, **kwargs: Any) -> pb.JournalSpec:
        spec = new_journal_spec(name, **kwargs)
        await apply_journals(self.client, [upsert(spec)])
        return spec


@contextlib.asynccontextmanager
async def served(core: JournalServerCore) -> AsyncIterator[GrpcJournalClient]:
    """`core` served over gRPC on loopback, and a client of it (needs the island)."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(aio.serve, [journal_service(core)], "127.0.0.1", 0)
        core.endpoint = f"http://127.0.0.1:{port}"
        async with aio.Channel(f"127.0.0.1:{port}") as channel:
            yield GrpcJournalClient(channel)
        nursery.cancel_scope.cancel()


@pytest.fixture
def core() -> JournalServerCore:
    return JournalServerCore(MemoryStorage())


@pytest.fixture(params=["local", "grpc"])
async def broker(request: pytest.FixtureRequest, core: JournalServerCore) -> AsyncIterator[Broker]:
    """The same core, reached in-process or over gRPC on loopback."""
    if request.param == "local":
        yield Broker(core, LocalJournalClient(core), "local")
        return
    async with aio.asyncio_island(), served(core) as client:
        yield Broker(core, client, "grpc")
