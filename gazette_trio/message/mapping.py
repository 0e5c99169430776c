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

Each mapping is a callable object (`FixedMapping`, `ModuloMapping`, ...,
built by the functions above), generic in the message type it keys: unlike
a plain function, it can be kept as a class attribute of an application
without becoming a bound method.

`Partitions` is the current list of journals matching a selector, listed
through the `JournalClient` and kept current by a List watch that the
caller's block owns (`open_partitions`).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Generic, Protocol, overload

from typing_extensions import TypeVar

from .._scope import background_nursery
from ..broker.client import JournalClient
from ..broker.list_apply import list_journals, selector_of
from ..broker.watch import WatchedList, open_watched_list
from ..errors import MessageError
from ..protocol import protocol as pb
from ..protocol.labels import format_selector, value_of
from .framing import CONTENT_TYPE

__all__ = [
    "FixedMapping",
    "Keyed",
    "Mapping",
    "ModuloMapping",
    "NoPartitions",
    "Partitions",
    "RandomMapping",
    "RendezvousMapping",
    "fixed_mapping",
    "fnv1a_32",
    "modulo_mapping",
    "open_partitions",
    "random_mapping",
    "rendezvous_mapping",
]

M = TypeVar("M", default=Any)
M_contra = TypeVar("M_contra", contravariant=True, default=Any)


class Mapping(Protocol[M_contra]):
    """message → (journal name, content type of the journal)."""

    def __call__(self, message: M_contra, /) -> tuple[str, str]: ...


class Keyed(Protocol):
    """A message that names its own mapping key."""

    def mapping_key(self) -> bytes | str: ...


KeyFunc = Callable[[M], bytes | str]

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a_32(data: bytes) -> int:
    """32-bit FNV-1a, as Go's hash/fnv New32a."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


class NoPartitions(MessageError, LookupError):
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
    client: JournalClient,
    selector: pb.LabelSelector | str | None,
    *,
    ready_within: float = math.inf,
) -> AsyncIterator[Partitions]:
    """Partitions listed now and kept current by a List watch while the block
    runs (by tasks the block owns). Without a first listing within
    `ready_within` seconds, raises `aio.Unavailable` naming the last error."""
    partitions = Partitions(client, selector)
    async with (
        open_watched_list(client, partitions.selector, ready_within=ready_within) as watched,
        background_nursery() as nursery,
    ):
        partitions._take(watched.journals)
        nursery.start_soon(partitions.follow, watched)
        yield partitions


def _content_type(spec: pb.JournalSpec) -> str:
    return value_of(spec.labels, CONTENT_TYPE)


class _Keyed(Generic[M]):
    """A mapping over `partitions` keyed by `key(message)` (by default the
    message's own `mapping_key()`)."""

    __slots__ = ("key", "partitions")

    def __init__(self, partitions: Partitions, key: KeyFunc[M] | None) -> None:
        self.partitions = partitions
        self.key = key

    def _key_bytes(self, message: M) -> bytes:
        key = self.key
        value = key(message) if key is not None else message.mapping_key()  # type: ignore[attr-defined]
        return value.encode() if isinstance(value, str) else bytes(value)


class ModuloMapping(_Keyed[M]):
    """FNV-1a of the key, modulo the number of partitions."""

    __slots__ = ()

    def __call__(self, message: M, /) -> tuple[str, str]:
        journals = self.partitions._require()
        spec = journals[fnv1a_32(self._key_bytes(message)) % len(journals)]
        return spec.name, _content_type(spec)


class RendezvousMapping(_Keyed[M]):
    """Highest random weight: the journal maximizing `fnv1a(key) ^ fnv1a(name)`."""

    __slots__ = ("_hashes", "_revision")

    def __init__(self, partitions: Partitions, key: KeyFunc[M] | None) -> None:
        super().__init__(partitions, key)
        self._revision = -1
        self._hashes: list[int] = []

    def __call__(self, message: M, /) -> tuple[str, str]:
        journals = self.partitions._require()
        if self._revision != self.partitions.revision or len(self._hashes) != len(journals):
            self._hashes = [fnv1a_32(j.name.encode()) for j in journals]
            self._revision = self.partitions.revision
        digest = fnv1a_32(self._key_bytes(message))
        best, index = 0, 0
        for i, h in enumerate(self._hashes):
            weight = digest ^ h
            if weight > best:
                best, index = weight, i
        spec = journals[index]
        return spec.name, _content_type(spec)


class RandomMapping:
    """Any partition, at random."""

    __slots__ = ("_choose", "partitions")

    def __init__(self, partitions: Partitions, rng: random.Random | None = None) -> None:
        self.partitions = partitions
        self._choose = (rng or random.Random()).randrange

    def __call__(self, message: object, /) -> tuple[str, str]:
        journals = self.partitions._require()
        spec = journals[self._choose(len(journals))]
        return spec.name, _content_type(spec)


class FixedMapping:
    """Always `journal`, of `content_type`."""

    __slots__ = ("content_type", "journal")

    def __init__(self, journal: str, content_type: str) -> None:
        self.journal = journal
        self.content_type = content_type

    def __call__(self, message: object, /) -> tuple[str, str]:
        return self.journal, self.content_type

    def __repr__(self) -> str:
        return f"FixedMapping({self.journal!r}, {self.content_type!r})"


@overload
def modulo_mapping(partitions: Partitions, key: None = None) -> ModuloMapping[Keyed]: ...
@overload
def modulo_mapping(partitions: Partitions, key: KeyFunc[M]) -> ModuloMapping[M]: ...
def modulo_mapping(partitions: Partitions, key: KeyFunc[Any] | None = None) -> ModuloMapping[Any]:
    """FNV-1a of the key, modulo the number of partitions."""
    return ModuloMapping(partitions, key)


@overload
def rendezvous_mapping(partitions: Partitions, key: None = None) -> RendezvousMapping[Keyed]: ...
@overload
def rendezvous_mapping(partitions: Partitions, key: KeyFunc[M]) -> RendezvousMapping[M]: ...
def rendezvous_mapping(
    partitions: Partitions, key: KeyFunc[Any] | None = None
) -> RendezvousMapping[Any]:
    """Highest random weight: the journal maximizing `fnv1a(key) ^ fnv1a(name)`."""
    return RendezvousMapping(partitions, key)


def random_mapping(partitions: Partitions, rng: random.Random | None = None) -> RandomMapping:
    """Any partition, at random."""
    return RandomMapping(partitions, rng)


def fixed_mapping(journal: str, content_type: str) -> FixedMapping:
    """Always `journal`."""
    return FixedMapping(journal, content_type)
