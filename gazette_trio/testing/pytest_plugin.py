"""A pytest plugin: an application's consumer group, in process, in one line.

```python
# conftest.py
pytest_plugins = ["gazette_trio.testing.pytest_plugin"]

# test_counts.py  (async tests need pytest-trio, with trio_mode = true)
async def test_words_are_counted(consumer_group):
    async with consumer_group("config.toml") as group:
        await group.add_member()
        await group.publish("examples/word-count/lines", [{"text": "a b a"}])
        ...
```

`consumer_group(config, **options)` opens `testing.cluster.open_config_cluster`
for the config (a path, or a loaded `Config`): the application as `serve`
builds it, the declared journals and shards and their recovery logs, in a
fresh data directory under the test's `tmp_path`. Every part is the
production one; only the journal server and etcd are in process.

This module owns the fixture only.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .cluster import Cluster, open_config_cluster

OpenGroup = Callable[..., contextlib.AbstractAsyncContextManager[Cluster]]


@pytest.fixture
def consumer_group(tmp_path: Path) -> OpenGroup:
    """`consumer_group(config, **options)`: an async context manager of a
    `Cluster` built from a member config (see the module docstring)."""
    numbers = itertools.count()

    def open_group(config: Any, **options: Any) -> contextlib.AbstractAsyncContextManager[Cluster]:
        return open_config_cluster(
            config, data_dir=tmp_path / f"consumer-group-{next(numbers)}", **options
        )

    return open_group
