"""Typed per-transaction state: what a shard's open transaction has gathered.

An application that aggregates in memory and flushes in `finalize_txn`
needs somewhere to keep that aggregate, per shard and per transaction. A
`PerTransaction[T]` is that place:

    class WordCount(BaseApplication[JSONFileStore[dict[str, int]], JSONMessage]):
        deltas = PerTransaction(collections.Counter[str])

        async def consume_message(self, shard, store, envelope, publisher):
            self.deltas.of(shard).update(envelope.message["text"].split())

        async def finalize_txn(self, shard, store, publisher):
            for word, n in self.deltas.of(shard).items():
                ...

`of(shard)` is the value of `shard`'s open transaction, built by the
factory on first use. The runtime drops every `PerTransaction` value of a
shard when its transaction ends (right after `finalize_txn` returned and
the commit started) and when it fails, so nothing gathered by a failed
transaction can be published by a later one, and the next transaction
starts from a fresh value. One instance serves every shard of the member.

This module owns the scratch space and its clearing; the driver decides
when a transaction ends (`end_transaction`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from .contracts import Shard

__all__ = ["PerTransaction", "end_transaction"]

T = TypeVar("T")

# id(shard) → the value dicts of the PerTransaction instances holding a
# value for that shard's open transaction. Keyed by identity, as a test
# shard need not be hashable and two members in one process may run shards
# of the same name; an entry lives no longer than a transaction, so an id
# is never reused while present.
_open: dict[int, list[dict[int, object]]] = {}


class PerTransaction(Generic[T]):
    """A value of type `T` per shard, for the length of one transaction."""

    __slots__ = ("_factory", "_values")

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._values: dict[int, T] = {}

    def of(self, shard: Shard) -> T:
        """`shard`'s value for its open transaction (built on first use)."""
        key = id(shard)
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = self._factory()
            _open.setdefault(key, []).append(self._values)  # type: ignore[arg-type]
            return value

    def peek(self, shard: Shard) -> T | None:
        """`shard`'s value if its transaction built one, without building it."""
        return self._values.get(id(shard))


def end_transaction(shard: Shard) -> None:
    """Drop every per-transaction value of `shard` (the runtime calls this
    when a transaction ends or fails)."""
    holders = _open.pop(id(shard), None)
    if holders:
        key = id(shard)
        for values in holders:
            values.pop(key, None)
