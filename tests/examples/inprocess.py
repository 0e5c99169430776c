"""An example's own config.toml, run in the in-process harness.

`open_example_cluster` reads an example's config (so the tests run the
journals and shards a user runs), creates them in a `testing.cluster`
consumer group and yields it; members are added by the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import trio

from gazette_trio.protocol import consumer as pc
from gazette_trio.runtime.config import Config, load_config
from gazette_trio.testing.cluster import Cluster, open_config_cluster

from .conftest import EXAMPLES


def example_config(example: str) -> Config:
    return load_config(EXAMPLES / example / "config.toml")


@contextlib.asynccontextmanager
async def open_example_cluster(
    example: str,
    app_factory: Callable[[], Any],
    data_dir: Path,
    *,
    adjust_shard: Callable[[pc.ShardSpec], None] | None = None,
) -> AsyncIterator[Cluster]:
    """The example's declared journals and shards in an in-process group."""
    async with open_config_cluster(
        example_config(example),
        data_dir=data_dir,
        app_factory=app_factory,
        adjust_shard=adjust_shard,
    ) as cluster:
        yield cluster


async def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 20.0, poll: float = 0.05
) -> Any:
    """Poll the async `predicate` until it returns something true; return it."""
    with trio.fail_after(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await trio.sleep(poll)
