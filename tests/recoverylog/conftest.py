"""A recovery-log journal on the embedded journal server, reached in-process,
with an append service: what recorders and players run against in these
tests (the same server core the single-process runtime uses)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gazette_trio.broker.append_service import AppendService, open_append_service
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.server import JournalServerCore, MemoryStorage
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG

LOG = "examples/integration-tests/recovery-log"


@dataclass
class Journals:
    core: JournalServerCore
    client: LocalJournalClient
    appender: AppendService

    async def create(self, name: str, *, fragment_length: int = 1 << 26) -> None:
        spec = new_journal_spec(
            name, content_type=CONTENT_TYPE_RECOVERY_LOG, fragment_length=fragment_length
        )
        await apply_journals(self.client, [upsert(spec)])


@pytest.fixture
async def journals() -> AsyncIterator[Journals]:
    core = JournalServerCore(MemoryStorage())
    client = LocalJournalClient(core)
    async with open_append_service(client) as appender:
        env = Journals(core, client, appender)
        await env.create(LOG)
        yield env


def tree(directory: Path) -> dict[str, bytes]:
    """Every regular file under `directory` by relative path, with contents."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = Path(root, name)
            out[str(path.relative_to(directory))] = path.read_bytes()
    return out
