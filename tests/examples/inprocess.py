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

from gazette_trio.consumer.contracts import Application
from gazette_trio.protocol import consumer as pc
from gazette_trio.runtime.config import Config, load_config
from gazette_trio.testing.cluster import Cluster, open_cluster

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
    cfg = example_config(example)
    shards = cfg.declared_shards()
    if adjust_shard is not None:
        for spec in shards:
            adjust_shard(spec)
    factory: Callable[[], Application] = app_factory
    async with open_cluster(
        factory, data_dir=data_dir, journals=cfg.declared_journals(), shards=shards
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
