"""Fixtures for the journal tests: a server core, and clients of it over both transports."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
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
from tests.services import _wait_port, free_port


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


class ServerProcess:
    """`python -m gazette_trio.broker.server` in a subprocess, to be killed and restarted."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port if port is not None else free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as log:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gazette_trio.broker.server",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        proc = self.proc = self._spawn()
        await trio.to_thread.run_sync(lambda: _wait_port(self.port, 30, proc))

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


@pytest.fixture
async def server_process(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A journal server process on a free port, stopped after the test."""
    server = ServerProcess(tmp_path / "data")
    try:
        await server.start()
        yield server
    finally:
        server.stop()
