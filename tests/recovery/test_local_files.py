"""A member keeps no local files of a shard it no longer serves.

A recorded store's files are a cache of the recovery log on the member's
disk; once the shard moves away (here: its primary drains, handing it to
the standby, a third member becoming the new standby) the member removes
the shard's directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from .harness import Code, open_recovery_cluster

TIMEOUT = 30


@pytest.mark.parametrize("store_kind", ["json", "sqlite"])
async def test_a_drained_primary_leaves_no_shard_directory_behind(
    store_kind: str, tmp_path: Path
) -> None:
    async with open_recovery_cluster(store_kind, tmp_path) as g:
        alpha = await g.add_member("alpha")
        with trio.fail_after(TIMEOUT):
            assert (await g.primary()) is alpha
            beta = await g.add_member("beta")
            await beta.statuses.wait_for(Code.STANDBY)
        shards = tmp_path / "alpha" / "shards"
        assert [p for p in shards.iterdir()], "the primary's files live here while it serves"

        # A third member to hold the standby the draining one gives up
        # (until one does, the allocator keeps alpha's replica).
        await g.add_member("gamma")
        assert alpha.consumer is not None
        with trio.fail_after(TIMEOUT):
            await alpha.consumer.drain()
            assert (await g.primary()) is beta
            while alpha.shard is not None and not alpha.shard.finished:
                await trio.sleep(0.01)
        left = [(d.name, sorted(f.name for f in d.rglob("*"))) for d in shards.iterdir()]
        assert left == []
