"""The consumer side of the stream_sum workload: the Summer application.

Each shard `summer-NN` reads one input partition `chunks/part-NN` and keeps,
per stream, `[last seq, running sum, outputs published]`. At the end of each
transaction it publishes, uncommitted, one output per stream the
transaction touched to `sums/part-NN`: `{"stream", "out", "seq", "sum",
"by"}`, numbered by `out` so the verifier can tell a duplicate or a gap.

Two kinds of store, as Gazette applications use them:

- shards with a recovery log keep a `JSONFileStore` recorded through the
  shard's `Recorder` (the production store; opened here without a thread,
  reading its small file inline, so the run stays on one thread); the
  log's register fence stops a deposed primary;
- the others keep a `MemoryStore` in the simulation's shared, fenced
  `SimDatabase` (an external database whose commits the plan slows and
  fails).

Both are wrapped in a `CheckedStore`, which reports restores and durable
commits to the invariants, and hands the inner store one barrier future
standing for the driver's `wait_for` set (see `Barriers`), to which it may
add an injected delay or failure for the recorded stores.

This module owns the application and the store wrapper; the runtime that
drives them is the production consumer runtime.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...consumer.contracts import Shard
from ...consumer.stores.json_file import STATE_FILE, JSONFileStore, decode_document
from ...consumer.stores.memory import MemoryStore
from ...message import Envelope, Publisher, fixed_mapping
from ...opfuture import OpFuture, OpFutures
from ...protocol import consumer as pc
from ...protocol import protocol as pb
from ...recoverylog.recorder import Recorder
from .faults import InjectedFault
from .invariants import State
from .producers import NDJSON

if TYPE_CHECKING:
    from .world import World


def sums_journal(partition: int) -> str:
    return f"sums/part-{partition:02d}"


def open_recorded_json_store(recorder: Recorder) -> JSONFileStore:
    """`JSONFileStore.open(recorder=...)`, reading the state file inline
    rather than on a worker thread (it is small, and threads would break
    the run's determinism)."""
    path = Path(recorder.directory)
    try:
        data = (path / STATE_FILE).read_bytes()
    except FileNotFoundError:
        return JSONFileStore(path, {}, pc.Checkpoint(), recorder)
    state, checkpoint = decode_document(data, path / STATE_FILE)
    return JSONFileStore(path, state, checkpoint, recorder)


class CheckedStore:
    """A shard's store, observed by the invariants; see the module docstring."""

    def __init__(
        self,
        inner: JSONFileStore | MemoryStore,
        *,
        shard_id: str,
        instance: str,
        world: World,
    ) -> None:
        self.inner = inner
        self.shard_id = shard_id
        self.instance = instance
        self.world = world
        self.recorded = isinstance(inner, JSONFileStore)
        self.touched: set[str] = set()
        self.member = instance.split("/")[1]

    @property
    def state(self) -> State:
        return self.inner.state  # type: ignore[no-any-return]

    async def restore_checkpoint(self, shard: Shard) -> pc.Checkpoint:
        checkpoint = await self.inner.restore_checkpoint(shard)
        self.world.invariants.restored(
            self.shard_id, self.instance, checkpoint, copy.deepcopy(self.state)
        )
        return checkpoint

    def start_commit(
        self, shard: Shard, checkpoint: pc.Checkpoint, wait_for: OpFutures
    ) -> OpFuture[None]:
        world = self.world
        parts: list[OpFuture[Any]] = list(wait_for)
        if self.recorded:
            injector = world.injector
            if injector.strikes("commit_delay"):
                parts.append(world.barriers.after(injector.delay(0.005, 1.5)))
            if injector.strikes("commit_failure"):
                world.trace.event(f"fault commit_failure: {self.instance}")
                parts.append(OpFuture.failed(InjectedFault("simulated: the commit failed")))
        snapshot = copy.deepcopy(self.state)
        future = self.inner.start_commit(shard, checkpoint, {world.barriers.all_of(parts)})
        world.barriers.watch_commit(self, checkpoint, snapshot, future)
        if world.injector.strikes("crash_in_commit"):
            world.crash_member_of(self, "crash_in_commit")
        return future

    def destroy(self) -> None:
        self.inner.destroy()


class Summer:
    """The stream_sum Application, one instance per member incarnation."""

    def __init__(self, world: World, member: str) -> None:
        self.world = world
        self.member = member

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> CheckedStore:
        instance = self.world.invariants.new_instance(shard.id, self.member)
        inner: JSONFileStore | MemoryStore
        if recorder is not None:
            inner = open_recorded_json_store(recorder)
        else:
            inner = MemoryStore(self.world.database)
        return CheckedStore(inner, shard_id=shard.id, instance=instance, world=self.world)

    def new_message(self, spec: pb.JournalSpec) -> type[dict[str, Any]]:
        return dict

    async def consume_message(
        self,
        shard: Shard,
        store: CheckedStore,
        envelope: Envelope[dict[str, Any]],
        publisher: Publisher,
    ) -> None:
        checked = store
        message = envelope.message
        self.world.invariants.consumed(checked.instance, checked.state, message)
        checked.touched.add(message["stream"])

    async def finalize_txn(self, shard: Shard, store: CheckedStore, publisher: Publisher) -> None:
        checked = store
        partition = int(shard.id.rsplit("-", 1)[1])
        mapping = fixed_mapping(sums_journal(partition), NDJSON)
        state = checked.state
        for stream in sorted(checked.touched):
            entry = state[stream]
            entry[2] += 1
            publisher.publish_uncommitted(
                mapping,
                {
                    "stream": stream,
                    "out": entry[2],
                    "seq": entry[0],
                    "sum": entry[1],
                    "by": checked.instance,
                },
            )
        checked.touched.clear()
