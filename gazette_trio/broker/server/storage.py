"""Storage: where the journal server keeps specs, fragments and registers.

The server core (`core.py`) decides *what* is durable and when; a `Storage`
makes it so. Content of a journal lives in fragments: immutable, rolled
fragments named by their offsets and SHA-1 sum, and one open *spool* at the
write head that appends extend. Each append also records the journal's
registers when it changes them, so registers survive a restart together with
the content they were applied with.

Two implementations keep the same contract:

- `MemoryStorage` (here): everything in memory, durable for the life of the
  object. The deterministic simulation uses it, and may hand the same object
  to a new core to model a restart.
- `FileStorage` (`file_storage.py`): files in a data directory, fsynced before
  an append is acknowledged, recovered on restart with any torn tail cut off
  and any damage to acknowledged content reported (`JournalDamage`), never
  silently cut.

This module owns the contract and the in-memory implementation. It knows
nothing about requests, statuses or waiting readers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio

from ...protocol import protocol as pb


@dataclass(frozen=True, slots=True)
class FragmentFile:
    """A rolled (immutable) fragment: content [begin, end) with its SHA-1."""

    begin: int
    end: int
    sum: bytes
    mod_time: int = 0
    """Unix seconds at which it was persisted; 0 if it never was (memory)."""


@dataclass(slots=True)
class SpecRecord:
    """A stored JournalSpec and the revisions at which it was created and last changed."""

    spec: pb.JournalSpec
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class JournalDamage:
    """Acknowledged content of a journal that storage can no longer vouch for.

    Storage refuses reads at or past `offset` and all appends of the journal
    until an operator repairs it; `message` is what clients and logs see."""

    journal: str
    offset: int
    file: str
    """The damaged file, relative to the data directory (never absolute:
    clients see it)."""
    reason: str

    @property
    def message(self) -> str:
        return (
            f"journal {self.journal}: stored content is damaged at offset {self.offset} "
            f"({self.file}: {self.reason}); nothing at or past offset {self.offset} is served "
            "and appends are refused until an operator repairs it with "
            "`gazette-trio broker repair` (docs/journals.md)"
        )


@dataclass(slots=True)
class RecoveredJournal:
    """What storage holds for one journal after a (re)start."""

    fragments: list[FragmentFile] = field(default_factory=list)
    """Rolled fragments, sorted by begin."""
    spool_begin: int | None = None
    """Begin of the open spool, or None if a new spool must be started."""
    write_head: int = 0
    """The offset the next append takes: never below an offset any append
    was acknowledged at, even when the content before it is damaged."""
    registers: pb.LabelSet = field(default_factory=pb.LabelSet)
    damage: JournalDamage | None = None
    """Set if acknowledged content is damaged (see `JournalDamage`)."""


@dataclass(slots=True)
class Recovered:
    revision: int = 0
    specs: dict[str, SpecRecord] = field(default_factory=dict)
    journals: dict[str, RecoveredJournal] = field(default_factory=dict)


class Storage(Protocol):
    """Durable state of a journal server. Every async method returns only
    once its effect survives a crash of the process."""

    uses_threads: bool
    """Whether the storage waits on worker threads (files, fsync). The core
    then hashes an append's content in a thread of its own, while storage
    writes it; with in-memory storage it stays on the Trio thread, so a
    simulation on a mock clock remains deterministic."""

    def recover(self) -> Recovered:
        """The stored state, with anything not fully committed discarded."""
        ...

    def check_journal_name(self, journal: str) -> None:
        """Raise `ValidationError` if this storage cannot hold `journal`."""
        ...

    async def save_specs(self, revision: int, specs: Mapping[str, SpecRecord]) -> None:
        """Replace all specs and the revision counter, atomically."""
        ...

    async def start_spool(self, journal: str, begin: int, registers: pb.LabelSet) -> None:
        """Open an empty spool at `begin` (the write head) holding `registers`."""
        ...

    async def append(
        self,
        journal: str,
        spool_begin: int,
        offset: int,
        content: Sequence[bytes],
        registers: pb.LabelSet | None,
    ) -> None:
        """Extend the spool with `content` at `offset`, and set the journal's
        registers if `registers` is given; all of it, or (on error) none."""
        ...

    def begin_append(self, journal: str, spool_begin: int, offset: int) -> PendingAppend:
        """Start an append at `offset` whose content arrives in pieces (a
        large Append stream, written as it is received rather than held).
        Nothing of it is durable or visible until its `commit`."""
        ...

    async def roll(self, journal: str, fragment: FragmentFile) -> FragmentFile:
        """Seal the spool covering `fragment` into an immutable fragment;
        returns it with its `mod_time`."""
        ...

    async def remove(self, journal: str, fragment: FragmentFile) -> None:
        """Delete a rolled fragment."""
        ...

    def verify(
        self,
        journal: str,
        fragment: FragmentFile,
        write_head: int,
        registers: pb.LabelSet,
        max_rate: int,
    ) -> JournalDamage | None:
        """Check a rolled fragment's stored bytes against its SHA-1 again,
        reading at most `max_rate` bytes a second (0: no bound). If they no
        longer match, the journal is damaged from that fragment on, as if
        restart had found it (`write_head` and `registers` are the
        journal's now, for a later repair), and the damage is returned.
        Blocking: call it from a worker thread."""
        ...

    def read(self, journal: str, fragment_begin: int, offset: int, length: int) -> bytes:
        """`length` committed bytes at `offset` of the fragment (or spool)
        beginning at `fragment_begin`; fewer only if damaged content
        follows them (reading at the damage raises `aio.DataLoss`)."""
        ...

    def close(self) -> None:
        """Release open files. The storage is unusable afterwards."""
        ...


class PendingAppend(Protocol):
    """An append in progress, written piece by piece past the write head.

    Its bytes may already be in the spool, but no record vouches for them
    until `commit`, so a crash before then leaves a torn tail that recovery
    cuts: they were never acknowledged. The journal's lock is held by the
    caller for the whole life of the object.
    """

    async def write(self, content: Sequence[bytes]) -> None:
        """Write the next pieces of content after those written before."""
        ...

    async def commit(self, registers: pb.LabelSet | None) -> None:
        """Make everything written durable (and `registers`, if given), all
        of it or, on error, none of it (the append is then aborted)."""
        ...

    async def abort(self) -> None:
        """Discard everything written; the spool ends where it did before.
        Idempotent, and a no-op after a successful commit."""
        ...


@dataclass(slots=True)
class _MemoryJournal:
    fragments: dict[int, tuple[FragmentFile, bytes]] = field(default_factory=dict)
    spool_begin: int | None = None
    spool: bytearray = field(default_factory=bytearray)
    write_head: int = 0
    registers: pb.LabelSet = field(default_factory=pb.LabelSet)


class MemoryStorage:
    """Storage in memory: nothing survives the process, everything survives
    a new `JournalServerCore` built on the same object."""

    uses_threads = False

    def __init__(self) -> None:
        self._revision = 0
        self._specs: dict[str, SpecRecord] = {}
        self._journals: dict[str, _MemoryJournal] = {}

    def recover(self) -> Recovered:
        journals = {}
        for name in sorted(self._journals):
            j = self._journals[name]
            journals[name] = RecoveredJournal(
                fragments=[f for _, (f, _) in sorted(j.fragments.items())],
                spool_begin=j.spool_begin,
                write_head=j.write_head,
                registers=pb.LabelSet.parse(bytes(j.registers)),
            )
        specs = {
            name: SpecRecord(pb.JournalSpec.parse(bytes(r.spec)), r.create_revision, r.mod_revision)
            for name, r in sorted(self._specs.items())
        }
        return Recovered(revision=self._revision, specs=specs, journals=journals)

    def check_journal_name(self, journal: str) -> None:
        return None

    async def save_specs(self, revision: int, specs: Mapping[str, SpecRecord]) -> None:
        await trio.lowlevel.checkpoint()
        self._revision = revision
        self._specs = dict(specs)

    async def start_spool(self, journal: str, begin: int, registers: pb.LabelSet) -> None:
        await trio.lowlevel.checkpoint()
        j = self._journals.setdefault(journal, _MemoryJournal())
        j.spool_begin = begin
        j.spool = bytearray()
        j.write_head = begin
        j.registers = registers

    async def append(
        self,
        journal: str,
        spool_begin: int,
        offset: int,
        content: Sequence[bytes],
        registers: pb.LabelSet | None,
    ) -> None:
        await trio.lowlevel.checkpoint()
        j = self._journals[journal]
        if j.spool_begin != spool_begin or offset != spool_begin + len(j.spool):
            raise RuntimeError(
                f"journal {journal!r}: append at {offset} does not extend the spool "
                f"[{j.spool_begin}, {spool_begin + len(j.spool)})"
            )
        for chunk in content:
            j.spool += chunk
        j.write_head = spool_begin + len(j.spool)
        if registers is not None:
            j.registers = registers

    def begin_append(self, journal: str, spool_begin: int, offset: int) -> PendingAppend:
        return _MemoryPendingAppend(self, journal, spool_begin, offset)

    async def roll(self, journal: str, fragment: FragmentFile) -> FragmentFile:
        await trio.lowlevel.checkpoint()
        j = self._journals[journal]
        if j.spool_begin != fragment.begin or fragment.end != fragment.begin + len(j.spool):
            raise RuntimeError(f"journal {journal!r}: roll of {fragment} does not match the spool")
        j.fragments[fragment.begin] = (fragment, bytes(j.spool))
        j.spool_begin = None
        j.spool = bytearray()
        return fragment

    def verify(
        self,
        journal: str,
        fragment: FragmentFile,
        write_head: int,
        registers: pb.LabelSet,
        max_rate: int,
    ) -> JournalDamage | None:
        return None  # memory does not rot

    async def remove(self, journal: str, fragment: FragmentFile) -> None:
        await trio.lowlevel.checkpoint()
        self._journals[journal].fragments.pop(fragment.begin, None)

    def read(self, journal: str, fragment_begin: int, offset: int, length: int) -> bytes:
        j = self._journals[journal]
        start = offset - fragment_begin
        if fragment_begin == j.spool_begin:
            return bytes(j.spool[start : start + length])
        _, data = j.fragments[fragment_begin]
        return data[start : start + length]

    def close(self) -> None:
        return None


class _MemoryPendingAppend:
    """A streamed append to `MemoryStorage`: pieces are held aside and join
    the spool only at commit, exactly as a whole append would."""

    def __init__(self, storage: MemoryStorage, journal: str, spool_begin: int, offset: int):
        self._storage = storage
        self._journal = journal
        self._spool_begin = spool_begin
        self._offset = offset
        self._pieces: list[bytes] = []

    async def write(self, content: Sequence[bytes]) -> None:
        await trio.lowlevel.checkpoint()
        self._pieces.extend(content)

    async def commit(self, registers: pb.LabelSet | None) -> None:
        pieces, self._pieces = self._pieces, []
        await self._storage.append(
            self._journal, self._spool_begin, self._offset, pieces, registers
        )

    async def abort(self) -> None:
        self._pieces = []
