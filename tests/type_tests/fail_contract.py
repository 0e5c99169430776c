"""What the typed contract refuses: every line marked with an E comment must be an error."""

from __future__ import annotations

from gazette_trio import (
    Application,
    BaseApplication,
    Envelope,
    JSONMessage,
    MemoryStore,
    PerTransaction,
    Publisher,
    Recorder,
    Shard,
)


class ReadsIntegers(BaseApplication[MemoryStore, int]):
    message_type = int

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> MemoryStore:
        raise NotImplementedError

    async def consume_message(
        self, shard: Shard, store: MemoryStore, envelope: Envelope[int], publisher: Publisher
    ) -> None:
        store.state["last"] = envelope.message.upper()  # E: "int" has no attribute "upper"


# An application of integers is not one of JSON messages.
Wrong = Application[MemoryStore, JSONMessage]
wrong: Wrong = ReadsIntegers()  # E: Incompatible types in assignment


def gather(shard: Shard) -> None:
    seen: PerTransaction[list[int]] = PerTransaction(list)
    seen.of(shard).append("one")  # E: Argument 1 to "append" of "list" has incompatible type "str"
