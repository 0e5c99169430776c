"""Journals for message tests: an in-process journal server and its client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gazette_trio.broker import open_append_service
from gazette_trio.broker.append_service import AppendService
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.server import JournalServerCore, MemoryStorage
from gazette_trio.protocol import protocol as pb


@dataclass
class Journals:
    client: LocalJournalClient
    appends: AppendService

    async def create(
        self, name: str, content_type: str, labels: dict[str, str] | None = None, **kwargs: Any
    ) -> pb.JournalSpec:
        spec = new_journal_spec(name, content_type=content_type, labels=labels, **kwargs)
        await apply_journals(self.client, [upsert(spec)])
        return spec


@pytest.fixture
async def journals() -> AsyncIterator[Journals]:
    client = LocalJournalClient(JournalServerCore(MemoryStorage()))
    async with open_append_service(client) as appends:
        yield Journals(client, appends)
