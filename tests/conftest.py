"""Fixtures shared by the whole suite.

Services the tests need are real: etcd and PostgreSQL are started (or found)
by fixtures in `tests/services.py`, on loopback. Only the deterministic
simulation uses the in-process etcd and journal server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gazette_trio.aio import asyncio_island

pytest_plugins = ["tests.services"]


@pytest.fixture
async def island() -> AsyncIterator[None]:
    """The asyncio loop grpclib runs on, for tests that make or serve RPCs."""
    async with asyncio_island():
        yield
