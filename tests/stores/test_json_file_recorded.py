"""A recorded JSONFileStore is rebuilt exactly on another member.

The state file is written through the shard's Recorder into a real recovery
log (an in-memory journal server); another member plays the log back with a
Player, takes it over, and opens the store in its own directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from gazette_trio.consumer.stores.errors import CommitDependencyError, FencedError
from gazette_trio.consumer.stores.json_file import JSONFileStore
from gazette_trio.opfuture import OpFuture

from .recovery import log_service
from .shard import TestShard, checkpoint

FQN = "/gazette/consumers/test/items/words"


async def test_commits_are_rebuilt_exactly_on_another_member(tmp_path: Path) -> None:
    async with log_service() as logs, trio.open_nursery() as nursery:
        recorder = await logs.become_primary(tmp_path / "a")
        store = await JSONFileStore.open(recorder=recorder, initial=lambda: {"counts": {}})
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        for i, word in enumerate(["apple", "pear", "apple", "fig"]):
            counts = store.state["counts"]
            counts[word] = counts.get(word, 0) + 1
            await store.start_commit(shard, checkpoint({"words": 10 * (i + 1)}), set())
        store.state["counts"]["uncommitted"] = 1  # the member stops here
        hints = await recorder.build_hints()

        other = await JSONFileStore.open(recorder=await logs.become_primary(tmp_path / "b", hints))
        assert other.state == {"counts": {"apple": 2, "pear": 1, "fig": 1}}
        assert await other.restore_checkpoint(shard) == checkpoint({"words": 40})
        assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["state.json"]
        other.destroy()
        assert not (tmp_path / "b" / "state.json").exists()
        nursery.cancel_scope.cancel()


async def test_a_deposed_primary_cannot_commit(tmp_path: Path) -> None:
    """Once another member took the log over, the old primary's commit fails
    with FencedError and what it tried to write is never played back."""
    async with log_service() as logs, trio.open_nursery() as nursery:
        old = await JSONFileStore.open(recorder=await logs.become_primary(tmp_path / "old"))
        shard = TestShard(nursery, FQN)
        old.state["n"] = 1
        await old.start_commit(shard, checkpoint({"j": 1}), set())

        new = await JSONFileStore.open(recorder=await logs.become_primary(tmp_path / "new"))
        assert new.state == {"n": 1}

        old.state["n"] = 666
        with pytest.raises(FencedError, match=f"of shard {FQN} was taken over"):
            await old.start_commit(shard, checkpoint({"j": 2}), set())
        third = await JSONFileStore.open(recorder=await logs.become_primary(tmp_path / "third"))
        assert third.state == {"n": 1}
        assert await third.restore_checkpoint(shard) == checkpoint({"j": 1})
        nursery.cancel_scope.cancel()


async def test_a_failed_wait_for_future_records_nothing(tmp_path: Path) -> None:
    async with log_service() as logs, trio.open_nursery() as nursery:
        store = await JSONFileStore.open(recorder=await logs.become_primary(tmp_path / "a"))
        shard = TestShard(nursery, FQN)
        store.state["n"] = 1
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        head = logs.write_head

        store.state["n"] = 2
        append: OpFuture[None] = OpFuture()
        commit = store.start_commit(shard, checkpoint({"j": 2}), {append})
        store.state["n"] = 3  # the next transaction goes on meanwhile
        append.fail(OSError("append to journal/out failed"))
        with pytest.raises(CommitDependencyError, match="append to journal/out failed"):
            await commit
        assert logs.write_head == head

        other = await JSONFileStore.open(recorder=await logs.become_primary(tmp_path / "b"))
        assert other.state == {"n": 1}
        nursery.cancel_scope.cancel()


async def test_a_recorded_store_lives_in_the_recorders_directory(tmp_path: Path) -> None:
    async with log_service() as logs:
        recorder = await logs.become_primary(tmp_path / "a")
        with pytest.raises(ValueError, match="a recorded store lives in the recorder's directory"):
            await JSONFileStore.open(tmp_path / "elsewhere", recorder=recorder)
        logs.nursery.cancel_scope.cancel()
