"""JSONFileStore keeps state and checkpoint in one JSON file, replaced
atomically at each commit.

These tests use a plain directory (a shard without a recovery log); the
recorded variant, played back on another "member", is in
`test_json_file_recorded.py`.
"""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest
import trio

from gazette_trio.consumer.stores.errors import (
    CommitDependencyError,
    StoreError,
    StoreStateError,
)
from gazette_trio.consumer.stores.json_file import JSONFileStore
from gazette_trio.opfuture import OpFuture
from gazette_trio.protocol import consumer as pc

from .shard import TestShard, checkpoint

FQN = "/gazette/consumers/test/items/counter"


async def test_a_new_store_starts_from_the_initial_state_and_an_empty_checkpoint(
    tmp_path: Path,
) -> None:
    store = await JSONFileStore.open(tmp_path, initial=lambda: {"count": 0})
    async with trio.open_nursery() as nursery:
        assert await store.restore_checkpoint(TestShard(nursery, FQN)) == pc.Checkpoint()
    assert store.state == {"count": 0}
    assert not store.path.exists()


async def test_committed_state_and_checkpoint_are_what_the_next_instance_opens(
    tmp_path: Path,
) -> None:
    store = await JSONFileStore.open(tmp_path)
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        store.state["words"] = {"apple": 2, "pear": 1}
        store.state["seen"] = [1.5, None, True, "x"]
        await store.start_commit(shard, checkpoint({"words/part-000": 4096}), set())

        reopened = await JSONFileStore.open(tmp_path)
        assert reopened.state == {"words": {"apple": 2, "pear": 1}, "seen": [1.5, None, True, "x"]}
        assert await reopened.restore_checkpoint(shard) == checkpoint({"words/part-000": 4096})
    assert not (tmp_path / "next.json").exists()


async def test_the_commit_snapshots_state_so_the_next_transaction_may_mutate_it(
    tmp_path: Path,
) -> None:
    """Pipelining: mutations made after `start_commit` (the next
    transaction's) are not part of the running commit."""
    store = await JSONFileStore.open(tmp_path)
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        store.state["n"] = 1
        release: OpFuture[None] = OpFuture()
        commit = store.start_commit(shard, checkpoint({"j": 1}), {release})
        store.state["n"] = 2  # the next transaction consumes meanwhile
        release.resolve()
        await commit
    assert (await JSONFileStore.open(tmp_path)).state == {"n": 1}


async def test_nothing_is_written_before_every_wait_for_future_resolved(tmp_path: Path) -> None:
    store = await JSONFileStore.open(tmp_path)
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        store.state["n"] = 1
        release: OpFuture[None] = OpFuture()
        commit = store.start_commit(shard, checkpoint({"j": 1}), {release})
        await trio.sleep(0.05)
        assert not store.path.exists()
        release.resolve()
        await commit
    assert store.path.exists()


async def test_a_failed_wait_for_future_fails_the_commit_and_leaves_the_file(
    tmp_path: Path,
) -> None:
    store = await JSONFileStore.open(tmp_path)
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, FQN)
        await store.restore_checkpoint(shard)
        store.state["n"] = 1
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        store.state["n"] = 2
        append: OpFuture[None] = OpFuture.failed(OSError("append to journal/x failed"))
        with pytest.raises(CommitDependencyError, match="append to journal/x failed"):
            await store.start_commit(shard, checkpoint({"j": 2}), {append})
        with pytest.raises(StoreStateError, match="failed commit"):
            await store.start_commit(shard, checkpoint({"j": 3}), set())
        reopened = await JSONFileStore.open(tmp_path)
        assert reopened.state == {"n": 1}
        assert await reopened.restore_checkpoint(shard) == checkpoint({"j": 1})


async def test_a_leftover_next_file_from_a_crash_is_ignored_then_overwritten(
    tmp_path: Path,
) -> None:
    """A crash between writing next.json and renaming it leaves the last
    committed state.json in force; the next commit replaces the leftover."""
    store = await JSONFileStore.open(tmp_path)
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, FQN)
        store.state["n"] = 1
        await store.start_commit(shard, checkpoint({"j": 1}), set())
        (tmp_path / "next.json").write_bytes(b'{"checkpoint": {}, "sta')  # torn write

        reopened = await JSONFileStore.open(tmp_path)
        assert reopened.state == {"n": 1}
        reopened.state["n"] = 5
        await reopened.start_commit(shard, checkpoint({"j": 2}), set())
    assert (await JSONFileStore.open(tmp_path)).state == {"n": 5}


@pytest.mark.parametrize(
    ("state", "where"),
    [
        ({"ratio": math.nan}, "state['ratio'] is NaN"),
        ({"ratio": math.inf}, "state['ratio'] is float, reads back as NoneType"),
        ({"pair": (1, 2)}, "state['pair'] is tuple, reads back as list"),
        ({"by_id": {1: "x"}}, "not JSON-serializable: Dict key must be str"),
        ({"tags": {"a"}}, "not JSON-serializable: Type is not JSON serializable: set"),
        ({"big": 2**70}, "not JSON-serializable"),
    ],
)
async def test_state_json_would_change_is_refused_with_where_it_is(
    tmp_path: Path, state: dict[str, object], where: str
) -> None:
    """Restoring must give back exactly what was committed, so values JSON
    cannot carry unchanged fail the commit, naming the offending value."""
    store = await JSONFileStore.open(tmp_path)
    store.state = state
    async with trio.open_nursery() as nursery:
        with pytest.raises(StoreError, match=f"state of shard {FQN}") as info:
            await store.start_commit(TestShard(nursery, FQN), checkpoint({"j": 1}), set())
    assert where in str(info.value)
    assert not store.path.exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "is not valid JSON"),
        (b"{}\n{}\n{} {", "is not valid JSON"),
        (b"[1, 2]", "holds 1 JSON documents; Gazette's layout has three"),
        (b'{"state": {}}', "holds 1 JSON documents; Gazette's layout has three"),
        (b"{}\n{}\n{}\n{}\n", "holds 4 JSON documents"),
        (b'{"j": 1.5}\n{}\n{}\n', "offsets['j'] is 1.5, not an integer"),
        (
            b'{}\n{}\n{"sources": {"j": {"read_through": "12"}}}\n',
            "checkpoint.sources['j'].read_through is '12', not an integer",
        ),
        (
            b'{}\n{}\n{"sources": {"j": {"producers": [{"id": "not base64!"}]}}}\n',
            "checkpoint.sources['j'].producers[0].id is not standard base64",
        ),
        (b'{}\n{}\n{"sources": []}\n', "checkpoint.sources is list, not an object"),
    ],
)
async def test_a_state_file_that_does_not_decode_is_an_error_naming_it(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(StoreError) as info:
        await JSONFileStore.open(tmp_path)
    assert f"state file {tmp_path / 'state.json'}" in str(info.value)
    assert problem in str(info.value)


async def test_the_file_is_laid_out_as_gazettes_json_file_store_lays_it_out(
    tmp_path: Path,
) -> None:
    """Offsets, state and checkpoint, one JSON document a line (the byte-level
    cases against upstream's format are tests/conformance/test_store_json_file.py)."""
    store = await JSONFileStore.open(tmp_path)
    store.state = {"n": 1}
    async with trio.open_nursery() as nursery:
        await store.start_commit(TestShard(nursery, FQN), checkpoint({"j": 12}), set())
    assert [orjson.loads(line) for line in store.path.read_bytes().splitlines()] == [
        {"j": 12},
        {"n": 1},
        {"sources": {"j": {"read_through": 12, "producers": None}}},
    ]


async def test_a_file_in_the_earlier_single_object_layout_loads_and_is_rewritten(
    tmp_path: Path,
) -> None:
    """State files this project wrote before it followed Gazette's layout
    still open; the next commit writes Gazette's layout."""
    (tmp_path / "state.json").write_bytes(
        b'{"checkpoint":{"sources":{"j":{"readThrough":"12"}}},"state":{"n":1}}\n'
    )
    store = await JSONFileStore.open(tmp_path)
    assert store.state == {"n": 1}
    async with trio.open_nursery() as nursery:
        shard = TestShard(nursery, FQN)
        assert await store.restore_checkpoint(shard) == checkpoint({"j": 12})
        store.state["n"] = 2
        await store.start_commit(shard, checkpoint({"j": 20}), set())
    assert store.path.read_bytes() == (
        b'{"j":20}\n{"n":2}\n{"sources":{"j":{"read_through":20,"producers":null}}}\n'
    )


async def test_a_directory_is_required_without_a_recorder() -> None:
    with pytest.raises(ValueError, match="needs a directory when the shard has no recorder"):
        await JSONFileStore.open()
    async with trio.open_nursery() as nursery:
        # A Shard that does not offer a durable store_directory (the runtime's do).
        with pytest.raises(ValueError, match=r"pass `shard` .* durable store_directory"):
            await JSONFileStore.open(shard=TestShard(nursery, FQN))


async def test_a_commit_still_waiting_when_the_store_is_destroyed_fails(tmp_path: Path) -> None:
    store = await JSONFileStore.open(tmp_path)
    async with trio.open_nursery() as nursery:
        store.state["n"] = 1
        append: OpFuture[None] = OpFuture()
        commit = store.start_commit(TestShard(nursery, FQN), checkpoint({"j": 1}), {append})
        store.destroy()
        append.resolve()
        with pytest.raises(StoreStateError, match="never written: the store was destroyed"):
            await commit
    assert not store.path.exists()
