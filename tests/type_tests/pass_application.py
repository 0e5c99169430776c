"""Applications annotated as users naturally write them type-check as
`Application`s, with no cast and no ignore."""

from __future__ import annotations

import collections
from collections.abc import Sequence

from gazette_trio import (
    Aggregation,
    Application,
    BaseApplication,
    BatchConsumer,
    BeginFinisher,
    Envelope,
    JSONFileStore,
    JSONMessage,
    MemoryStore,
    OpFuture,
    PerTransaction,
    Publisher,
    Recorder,
    Shard,
    fixed_mapping,
)
from gazette_trio.protocol import protocol as pb


class Counter:
    """Every parameter annotated, without subclassing anything."""

    out = fixed_mapping("counts", "application/x-ndjson")  # a mapping, not a method

    def __init__(self) -> None:
        self.deltas = PerTransaction(collections.Counter[str])

    async def new_store(
        self, shard: Shard, recorder: Recorder | None
    ) -> JSONFileStore[dict[str, int]]:
        return await JSONFileStore.open(recorder=recorder, shard=shard)

    def new_message(self, spec: pb.JournalSpec) -> type[JSONMessage]:
        return JSONMessage

    async def consume_message(
        self,
        shard: Shard,
        store: JSONFileStore[dict[str, int]],
        envelope: Envelope[JSONMessage],
        publisher: Publisher,
    ) -> None:
        word = str(envelope.message["word"])
        store.state[word] = store.state.get(word, 0) + 1
        self.deltas.of(shard)[word] += 1

    async def finalize_txn(
        self, shard: Shard, store: JSONFileStore[dict[str, int]], publisher: Publisher
    ) -> None:
        for word, n in self.deltas.of(shard).items():
            publisher.publish_uncommitted(self.out, {"word": word, "delta": n})


typed: Application[JSONFileStore[dict[str, int]], JSONMessage] = Counter()
anything: Application = Counter()


class Bare:
    """Store and envelope annotated without type parameters."""

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> JSONFileStore:
        return await JSONFileStore.open(recorder=recorder, shard=shard)

    def new_message(self, spec: pb.JournalSpec) -> type[dict[str, object]]:
        return dict

    async def consume_message(
        self, shard: Shard, store: JSONFileStore, envelope: Envelope, publisher: Publisher
    ) -> None:
        store.state[str(envelope.message["key"])] = envelope.end

    async def finalize_txn(self, shard: Shard, store: JSONFileStore, publisher: Publisher) -> None:
        pass


bare: Application = Bare()


class Batched(BaseApplication[MemoryStore, JSONMessage]):
    """The base class's defaults, and the optional roles."""

    message_type = JSONMessage

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> MemoryStore:
        raise NotImplementedError

    async def consume_messages(
        self,
        shard: Shard,
        store: MemoryStore,
        envelopes: Sequence[Envelope[JSONMessage]],
        publisher: Publisher,
    ) -> None:
        store.state["seen"] = store.state.get("seen", 0) + len(envelopes)

    async def begin_txn(self, shard: Shard, store: MemoryStore) -> None:
        pass

    def finished_txn(self, shard: Shard, store: MemoryStore, future: OpFuture[None]) -> None:
        pass


batched: Application[MemoryStore, JSONMessage] = Batched()
batch_consumer: BatchConsumer[MemoryStore, JSONMessage] = Batched()
begin_finisher: BeginFinisher[MemoryStore] = Batched()


class Sums(Aggregation[JSONMessage, float]):
    """The short form, with a value type of its own."""

    message_type = JSONMessage

    def keys(self, reading: JSONMessage) -> tuple[str]:
        return (str(reading["sensor"]),)

    def reduce(self, total: float | None, reading: JSONMessage) -> float:
        return (total or 0.0) + float(reading["value"])


sums: Application = Sums()
