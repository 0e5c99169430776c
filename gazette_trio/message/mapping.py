"""Mapping messages onto journals: partitions picked by a label selector,
and stable choices among them.

A *mapping* takes a message and names the journal to publish it to, with the
journal's content type (which picks the framing): `(journal, content_type)`.
Messages that share a key should land on the same journal (a "shuffle"), so
mappings hash the key, as Gazette does, with 32-bit FNV-1a:

- `modulo_mapping`: `hash % len(partitions)`; cheap, but most keys move
  when partitions are added or removed;
- `rendezvous_mapping`: highest random weight, `hash ^ fnv1a(journal name)`;
  adding or removing a journal moves only the keys that go to or come from it;
- `random_mapping` and `fixed_mapping` for unkeyed and single-journal cases.

These pick the same journal for the same key and partitions as Gazette's
ModuloMapping and RendezvousMapping. The key is `key(message)` (bytes, or a
str encoded as UTF-8); by default the message's own `mapping_key()`.

`Partitions` is the current list of journals matching a selector, listed
through the `JournalClient` and kept current by a List watch that the
caller's block owns (`open_partitions`).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import trio

from ..broker.client import JournalClient
from ..broker.list_apply import list_journals, selector_of
from ..broker.watch import WatchedList, open_watched_list
from ..protocol import protocol as pb
from ..protocol.labels import format_selector, value_of
from .framing import CONTENT_TYPE

__all__ = [
    "Mapping",
    "NoPartitions",
    "Partitions",
    "fixed_mapping",
    "fnv1a_32",
    "modulo_mapping",
    "open_partitions",
    "random_mapping",
    "rendezvous_mapping",
]

Mapping = Callable[[Any], tuple[str, str]]
"""message → (journal name, content type of the journal)."""

KeyFunc = Callable[[Any], bytes | str]

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a_32(data: bytes) -> int:
    """32-bit FNV-1a, as Go's hash/fnv New32a."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


class NoPartitions(LookupError):
    """No journal matches the mapping's selector (Gazette's ErrEmptyListResponse)."""


class Partitions:
    """The journals matching `selector`, as last listed (sorted by name).

    `refresh` lists once; `open_partitions` keeps them current with a List
    watch, as Gazette's publishers do, so journals created or deleted while
    publishing are taken up within moments.
    """

    def __init__(self, client: JournalClient, selector: pb.LabelSelector | str | None) -> None:
        self.client = client
        self.selector = selector_of(selector)
        self.journals: Sequence[pb.JournalSpec] = ()
        self.revision = 0
        """Bumped on every refresh that changed the list."""

    async def refresh(self) -> None:
        self._take(await list_journals(self.client, self.selector))

    def _take(self, listed: Sequence[pb.ListResponseJournal]) -> None:
        journals = tuple(j.spec for j in listed if j.spec is not None)
        if [j.name for j in journals] != [j.name for j in self.journals] or any(
            a != b for a, b in zip(journals, self.journals, strict=False)
        ):
            self.journals = journals
            self.revision += 1

    async def follow(self, watched: WatchedList) -> None:
        """Take each snapshot of `watched` until cancelled."""
        seen = watched.updates
        while True:
            await watched.wait_changed(seen)
            seen = watched.updates
            self._take(watched.journals)

    def _require(self) -> Sequence[pb.JournalSpec]:
        journals = self.journals
        if not journals:
            raise NoPartitions(f"no journals match {format_selector(self.selector)!r}")
        return journals


@contextlib.asynccontextmanager
async def open_partitions(
    client: JournalClient, selector: pb.LabelSelector | str | None
) -> AsyncIterator[Partitions]:
    """Partitions listed now and kept current by a List watch while the block
    runs (by tasks the block owns)."""
    partitions = Partitions(client, selector)
    async with open_watched_list(client, partitions.selector) as watched:
        partitions._take(watched.journals)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partitions.follow, watched)
            try:
                yield partitions
            finally:
                nursery.cancel_scope.cancel()


def _content_type(spec: pb.JournalSpec) -> str:
    return value_of(spec.labels, CONTENT_TYPE)


def _key_bytes(key: KeyFunc | None, message: Any) -> bytes:
    value = key(message) if key is not None else message.mapping_key()
    return value.encode() if isinstance(value, str) else bytes(value)


def modulo_mapping(partitions: Partitions, key: KeyFunc | None = None) -> Mapping:
    """FNV-1a of the key, modulo the number of partitions."""

    def mapping(message: Any) -> tuple[str, str]:
        journals = partitions._require()
        spec = journals[fnv1a_32(_key_bytes(key, message)) % len(journals)]
        return spec.name, _content_type(spec)

    return mapping


def rendezvous_mapping(partitions: Partitions, key: KeyFunc | None = None) -> Mapping:
    """Highest random weight: the journal maximizing `fnv1a(key) ^ fnv1a(name)`."""
    cache: dict[str, Any] = {"revision": -1, "hashes": []}

    def mapping(message: Any) -> tuple[str, str]:
        journals = partitions._require()
        if cache["revision"] != partitions.revision or len(cache["hashes"]) != len(journals):
            cache["hashes"] = [fnv1a_32(j.name.encode()) for j in journals]
            cache["revision"] = partitions.revision
        digest = fnv1a_32(_key_bytes(key, message))
        best, index = 0, 0
        for i, h in enumerate(cache["hashes"]):
            weight = digest ^ h
            if weight > best:
                best, index = weight, i
        spec = journals[index]
        return spec.name, _content_type(spec)

    return mapping


def random_mapping(partitions: Partitions, rng: random.Random | None = None) -> Mapping:
    """Any partition, at random."""
    choose = (rng or random.Random()).randrange

    def mapping(message: Any) -> tuple[str, str]:
        journals = partitions._require()
        spec = journals[choose(len(journals))]
        return spec.name, _content_type(spec)

    return mapping


def fixed_mapping(journal: str, content_type: str) -> Mapping:
    """Always `journal`."""

    def mapping(message: Any) -> tuple[str, str]:
        return journal, content_type

    return mapping
