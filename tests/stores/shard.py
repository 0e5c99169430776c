"""A minimal `Shard` for driving stores directly, without the runtime.

Stores use only a shard's identity and its nursery (background commits run
there); the rest of the protocol is present so the object is a complete
`Shard`, and fails loudly if a store reaches for what a unit test lacks.
"""

from __future__ import annotations

from typing import Any

import trio

from gazette_trio.protocol import consumer as pc


class TestShard:
    """A shard named `fqn` whose background work runs in `nursery`."""

    __test__ = False  # not a pytest test class

    def __init__(self, nursery: trio.Nursery, fqn: str, spec: pc.ShardSpec | None = None) -> None:
        self._nursery = nursery
        self._fqn = fqn
        self._spec = spec or pc.ShardSpec(id=fqn.rsplit("/", 1)[-1])
        self._scope = trio.CancelScope()

    @property
    def id(self) -> str:
        return self._spec.id

    @property
    def fqn(self) -> str:
        return self._fqn

    @property
    def spec(self) -> pc.ShardSpec:
        return self._spec

    @property
    def cancel_scope(self) -> trio.CancelScope:
        return self._scope

    @property
    def nursery(self) -> trio.Nursery:
        return self._nursery

    @property
    def journal_client(self) -> Any:
        raise AssertionError("a store unit test has no journal client")

    @property
    def append_service(self) -> Any:
        raise AssertionError("a store unit test has no append service")

    def progress(self) -> tuple[dict[str, int], dict[str, int]]:
        return {}, {}


def checkpoint(read_through: dict[str, int]) -> pc.Checkpoint:
    """A checkpoint that read each journal through the given offset."""
    return pc.Checkpoint(
        sources={j: pc.CheckpointSource(read_through=o) for j, o in read_through.items()}
    )
