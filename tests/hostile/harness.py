"""Shared pieces of the hostile suite: a journal server process, the
acknowledgements a test collected, and an independent read-back of them.

"Independent" means the check goes through the public Read RPC of a fresh
server process, never through the storage code under test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from gazette_trio import aio
from gazette_trio.broker.appender import append
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.broker.reader import open_reader
from tests.broker.conftest import ServerProcess
from tests.serve_member import gazette_trio as gazette_trio_cli

__all__ = [
    "Acked",
    "ServerProcess",
    "append_to",
    "connect",
    "flip",
    "gazette_trio_cli",
    "read_back",
    "served_range",
]


@dataclass
class Acked:
    """Appends the server acknowledged: (begin, end, content) each."""

    journal: str
    appends: list[tuple[int, int, bytes]] = field(default_factory=list)

    async def append(self, client: GrpcJournalClient, content: bytes) -> tuple[int, int]:
        response = await append(client, self.journal, content)
        assert response.commit is not None
        span = (response.commit.begin, response.commit.end)
        assert span[1] - span[0] == len(content)
        self.appends.append((span[0], span[1], content))
        return span

    @property
    def write_head(self) -> int:
        return max((end for _, end, _ in self.appends), default=0)


@contextlib.asynccontextmanager
async def connect(server: ServerProcess) -> AsyncIterator[GrpcJournalClient]:
    async with aio.Channel(server.endpoint) as channel:
        yield GrpcJournalClient(channel)


async def read_back(
    client: GrpcJournalClient, journal: str, offset: int = 0, end_offset: int = 0
) -> dict[int, bytes]:
    """Every byte the server serves for `journal` from `offset` (to
    `end_offset`, or its write head), by offset (offset jumps leave holes)."""
    out: dict[int, bytes] = {}
    async with open_reader(client, journal, offset, block=False, end_offset=end_offset) as reader:
        async for chunk in reader:
            out[chunk.offset] = chunk.content
    return out


def served_range(served: dict[int, bytes], begin: int, end: int) -> bytes | None:
    """The served bytes [begin, end), or None if any of them was not served."""
    data = bytearray()
    position = begin
    for offset in sorted(served):
        content = served[offset]
        if offset + len(content) <= position or offset >= end:
            continue
        if offset > position:
            return None
        data += content[position - offset : end - offset]
        position = min(end, offset + len(content))
    return bytes(data) if position == end else None


def flip(path: Path, position: int) -> None:
    """Invert one byte of `path` at `position`, as bit rot or a stray write would."""
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        assert byte, f"{path} has no byte at {position}"
        f.seek(position)
        f.write(bytes([byte[0] ^ 0xFF]))


def append_to(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)
