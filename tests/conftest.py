"""Fixtures shared by the whole suite.

Services the tests need are real: etcd and PostgreSQL are started (or found)
by fixtures in `tests/services.py`, on loopback. The in-process etcd and
journal server (`MemoryEtcd`, `JournalServerCore`) serve the in-process
consumer groups of `gazette_trio.testing.cluster` and the simulation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import settings

from gazette_trio.aio import asyncio_island

pytest_plugins = ["tests.services"]

# Property tests check behaviour, never speed: hypothesis's per-example
# deadline is a timing assertion, and fails on a loaded machine.
settings.register_profile("gazette-trio", deadline=None)
settings.load_profile("gazette-trio")


@pytest.fixture
async def island() -> AsyncIterator[None]:
    """The asyncio loop grpclib runs on, for tests that make or serve RPCs."""
    async with asyncio_island():
        yield
