"""`KeySpace`: a watched, decoded, in-memory mirror of one etcd prefix.

A KeySpace loads every key under its root at a revision, decodes each value
with a user-supplied decoder, and then applies the prefix's watch events in
revision order, so that it always equals etcd's content at `revision`. Reads
are by key or by sub-prefix over the sorted keys (bisect), and never wait.
Observers (plain callables) run after each applied batch; tasks wait for a
revision with `wait_for_revision`. `header` is etcd's response header as of
the content (the cluster, member and raft term of the last response read,
at `revision`), which Gazette's APIs put in their own headers. If the watch reports that its history was
compacted away, the KeySpace reloads at a current revision and watches on.

A value that fails to decode does not stop the KeySpace: the error is logged
naming the key and kept in `decode_errors` (until the key is fixed or
deleted), and the key is skipped; a key that already had a good value keeps
it, as Gazette's KeySpace does, so that one bad write does not make an
entity vanish.

The module owns the mirror and its update rules. It does not know what the
keys mean (the allocator's decoder does) and does not own the etcd client.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from .etcd import (
    NO_HEADER,
    Compacted,
    Etcd,
    EtcdUnavailable,
    EventType,
    KeyValue,
    ResponseHeader,
    WatchBatch,
)

log = logging.getLogger(__name__)

Decoder = Callable[[str, KeyValue], Any]
"""Decodes one key's raw value; raises (any `Exception`) if it is invalid."""

_LOAD_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Entry:
    """One decoded key: its name, etcd's record of it, and the decoded value."""

    key: str
    kv: KeyValue
    value: Any


def str_prefix_end(prefix: str) -> str | None:
    """The least string above every string beginning with `prefix` (None: no
    bound). UTF-8 preserves code point order, so this matches etcd's bytes."""
    chars = list(prefix)
    while chars:
        if ord(chars[-1]) < 0x10FFFF:
            chars[-1] = chr(ord(chars[-1]) + 1)
            return "".join(chars)
        chars.pop()
    return None


class KeySpace:
    """The decoded content of the prefix `root` at `revision`."""

    def __init__(self, root: str, decode: Decoder, *, apply_delay: float = 0.0) -> None:
        self.root = root
        self.decode = decode
        # Batches arriving within this delay of the first are applied together
        # (observers then run once for all of them).
        self.apply_delay = apply_delay
        self.revision = 0
        self._server = NO_HEADER
        self.observers: list[Callable[[], None]] = []
        self.decode_errors: dict[str, str] = {}
        self._keys: list[str] = []
        self._entries: list[Entry] = []
        self._changed = trio.Event()

    # ------------------------------------------------------------------
    # Reads

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        i = bisect.bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            return self._entries[i]
        return None

    def range(self, start: str, end: str | None) -> Sequence[Entry]:
        """Entries with `start <= key < end` (to the last key if `end` is None)."""
        lo = bisect.bisect_left(self._keys, start)
        hi = len(self._keys) if end is None else bisect.bisect_left(self._keys, end)
        return self._entries[lo:hi]

    def prefixed(self, prefix: str) -> Sequence[Entry]:
        """Entries whose key begins with `prefix`, in key order."""
        return self.range(prefix, str_prefix_end(prefix))

    @property
    def entries(self) -> Sequence[Entry]:
        return self._entries

    @property
    def header(self) -> ResponseHeader:
        """etcd's header of the content: the last server seen, at `revision`."""
        return self._server.at(self.revision)

    # ------------------------------------------------------------------
    # Loading and applying

    def _decode(self, key: str, kv: KeyValue) -> tuple[bool, Any]:
        try:
            value = self.decode(key, kv)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            log.error(
                "keyspace %s: cannot decode %s (revision %d): %s",
                self.root,
                key,
                kv.mod_revision,
                message,
            )
            self.decode_errors[key] = message
            return False, None
        self.decode_errors.pop(key, None)
        return True, value

    async def load(self, etcd: Etcd, revision: int = 0) -> None:
        """Replace the content with etcd's at `revision` (0: the newest)."""
        kvs: list[KeyValue] = []
        server = self._server
        start = self.root
        end = str_prefix_end(self.root)
        while True:
            page = await etcd.range(
                start,
                range_end=end if end is not None else "\0",
                revision=revision,
                limit=_LOAD_PAGE,
            )
            if revision <= 0:
                # Read every later page at the first page's revision.
                revision = page.revision
            if page.header is not None:
                server = page.header
            kvs.extend(page.kvs)
            if not page.more or not page.kvs:
                break
            start = page.kvs[-1].key.decode() + "\0"
        self.decode_errors = {}
        keys: list[str] = []
        entries: list[Entry] = []
        for kv in kvs:
            key = kv.key.decode()
            ok, value = self._decode(key, kv)
            if ok:
                keys.append(key)
                entries.append(Entry(key, kv, value))
        self._keys, self._entries = keys, entries
        self.revision = revision
        self._server = server
        self._notify(True)

    def apply(self, *batches: WatchBatch) -> None:
        """Apply watch batches in order, then notify observers once."""
        changed = False
        for batch in batches:
            for event in batch.events:
                changed = self._apply_event(event.type, event.kv) or changed
            if batch.header is not None:
                self._server = batch.header
            if batch.revision > self.revision:
                self.revision = batch.revision
        self._notify(changed)

    def _apply_event(self, kind: EventType, kv: KeyValue) -> bool:
        key = kv.key.decode()
        i = bisect.bisect_left(self._keys, key)
        found = i < len(self._keys) and self._keys[i] == key
        current = self._entries[i] if found else None
        if current is not None and current.kv.mod_revision >= kv.mod_revision:
            log.error(
                "keyspace %s: ignoring a replayed event of %s at revision %d",
                self.root,
                key,
                kv.mod_revision,
            )
            return False
        if kind is EventType.DELETE:
            self.decode_errors.pop(key, None)
            if current is None:
                return False  # it never decoded, so it was never here
            del self._keys[i]
            del self._entries[i]
            return True
        ok, value = self._decode(key, kv)
        if not ok:
            return False  # keep the last good value, if any
        entry = Entry(key, kv, value)
        if current is None:
            self._keys.insert(i, key)
            self._entries.insert(i, entry)
        else:
            self._entries[i] = entry
        return True

    def _notify(self, changed: bool) -> None:
        if changed:
            for observer in self.observers:
                observer()
        event, self._changed = self._changed, trio.Event()
        event.set()

    # ------------------------------------------------------------------
    # Waiting and watching

    async def wait_for_revision(self, revision: int) -> None:
        """Return once the KeySpace reflects `revision` (or a later one)."""
        while self.revision < revision:
            await self._changed.wait()

    async def wait_for_change(self) -> None:
        """Return after the next load or applied batch."""
        await self._changed.wait()

    async def watch(
        self, etcd: Etcd, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Apply the prefix's changes until cancelled (load first)."""
        started = False
        while True:
            try:
                async with etcd.watch(
                    self.root, prefix=True, start_revision=self.revision + 1, progress_notify=True
                ) as stream:
                    if not started:
                        started = True
                        task_status.started()
                    while True:
                        batches = [await stream.receive()]
                        if self.apply_delay > 0:
                            await trio.sleep(self.apply_delay)
                        while True:
                            try:
                                batches.append(stream.receive_nowait())
                            except trio.WouldBlock:
                                break
                        self.apply(*batches)
            except Compacted as exc:
                log.warning(
                    "keyspace %s: history after revision %d was compacted (at %d); reloading",
                    self.root,
                    self.revision,
                    exc.compact_revision,
                )
                await self._reload(etcd)

    async def _reload(self, etcd: Etcd) -> None:
        attempt = 0
        while True:
            try:
                await self.load(etcd)
                return
            except Compacted:
                continue  # compacted again while paging: read a newer revision
            except EtcdUnavailable as exc:
                delay = min(0.05 * 2**attempt, 5.0)
                log.warning(
                    "keyspace %s: reload failed (%s); retrying in %.2fs", self.root, exc, delay
                )
                await trio.sleep(delay)
                attempt += 1

    async def run(
        self, etcd: Etcd, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Load at the newest revision, then watch (started once loaded)."""
        await self.load(etcd)
        await self.watch(etcd, task_status=task_status)
