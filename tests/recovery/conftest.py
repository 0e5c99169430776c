"""`group`: a recovery cluster per store kind that keeps a recovery log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .harness import RecoveryCluster, open_recovery_cluster


@pytest.fixture(params=["json", "sqlite"])
async def group(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RecoveryCluster]:
    async with open_recovery_cluster(request.param, tmp_path) as g:
        yield g
