"""Per-transaction state (`PerTransaction`) lives exactly as long as one
transaction of one shard: the driver drops it when the transaction's commit
starts and when the transaction fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing

from gazette_trio import PerTransaction
from gazette_trio.consumer.stores.memory import MemoryStore

from .test_driver import App, Appender, Msg, Publisher, make, spec

__all__ = ["make"]  # the driver harness, a fixture


@dataclass
class GatheringApp(App):
    """Gathers each transaction's values in a PerTransaction list, and
    records what finalize_txn saw."""

    gathered: PerTransaction[list[int]] = field(default_factory=lambda: PerTransaction(list))
    flushed: list[list[int]] = field(default_factory=list)

    async def consume_message(
        self, shard: Any, store: MemoryStore, envelope: Msg, publisher: Publisher
    ) -> None:
        self.gathered.of(shard).append(envelope.value)
        await super().consume_message(shard, store, envelope, publisher)

    async def finalize_txn(self, shard: Any, store: MemoryStore, publisher: Publisher) -> None:
        self.flushed.append(list(self.gathered.of(shard)))
        await super().finalize_txn(shard, store, publisher)


def gathering(appender: Appender) -> GatheringApp:
    return GatheringApp(appender=appender)


async def test_each_transaction_starts_from_a_fresh_value(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=10), app_factory=gathering)
    await h.feed(1, 2)
    await trio.sleep(1)
    await h.feed(3)
    await trio.sleep(1)
    assert h.app.flushed == [[1, 2], [3]]
    # Between transactions the shard holds nothing.
    assert h.app.gathered.peek(h.shard) is None


async def test_a_failed_transaction_leaves_nothing_behind(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=10), app_factory=gathering)
    h.app.fail_on = 3
    await h.feed(1, 2, 3)
    await trio.sleep(1)
    assert [str(e) for e in h.error] == ["cannot consume 3"]
    assert h.app.flushed == []
    assert h.app.gathered.peek(h.shard) is None


async def test_values_of_two_shards_are_apart() -> None:
    scratch: PerTransaction[list[str]] = PerTransaction(list)
    one, two = object(), object()
    scratch.of(one).append("a")  # type: ignore[arg-type]
    scratch.of(two).append("b")  # type: ignore[arg-type]
    assert scratch.of(one) == ["a"]  # type: ignore[arg-type]
    assert scratch.of(two) == ["b"]  # type: ignore[arg-type]
