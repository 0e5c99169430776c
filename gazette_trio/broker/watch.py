"""WatchedList: a journal listing kept current by a List watch.

Gazette's brokers answer `List` with `watch` set by sending a snapshot of the
matching journals, then a fresh snapshot every time the match changes (a
journal created, updated or deleted), for as long as the stream lasts. A
`WatchedList` holds such a stream open and keeps its latest snapshot, so
that publishers' partition mappings and the applications that look up
journals see new journals within moments, where a periodic listing would
leave them stale for its whole interval.

A broken stream is re-opened with a growing backoff and `watch_resume` set to
the last snapshot's header, so the broker sends nothing until the listing
moves past what we hold. Failures are logged and retried, never raised, except
a request the broker refuses as invalid (a malformed selector), which no retry
can fix.

This module owns the watch loop and its snapshot. Reading a List stream's
snapshots is `list_apply.read_snapshot`, shared with unary listings.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Sequence

import trio

from .. import aio
from .._scope import background_nursery
from ..protocol import protocol as pb
from ..protocol.labels import format_selector
from .client import JournalClient
from .errors import JournalError
from .list_apply import read_snapshot, selector_of

log = logging.getLogger(__name__)

BACKOFF = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
"""Seconds to wait before each retry of a failed watch; the last repeats."""


class WatchedList:
    """The latest snapshot of a watched listing of `selector`.

    `snapshot` is None until the first one arrives; `wait_ready` waits for
    it, and `wait_changed` for the next one. Run `run` in a task (or use
    `open_watched_list`, which does).
    """

    def __init__(self, client: JournalClient, selector: pb.LabelSelector | str | None) -> None:
        self.client = client
        self.selector = selector_of(selector)
        self.snapshot: pb.ListResponse | None = None
        self.updates = 0
        """How many snapshots have arrived; bumped by each one."""
        self._changed = trio.Event()
        self.last_error: BaseException | None = None
        """The error of the last failed attempt to watch, if any."""

    @property
    def journals(self) -> Sequence[pb.ListResponseJournal]:
        """The journals of the latest snapshot, in name order (empty before the first)."""
        return self.snapshot.journals if self.snapshot is not None else ()

    @property
    def revision(self) -> int:
        """The etcd revision of the latest snapshot (0 before the first)."""
        header = self.snapshot.header if self.snapshot is not None else None
        return header.etcd.revision if header is not None and header.etcd is not None else 0

    async def wait_ready(self) -> None:
        """Return once a first snapshot is held."""
        while self.snapshot is None:
            await self._changed.wait()

    async def wait_changed(self, after: int) -> None:
        """Return once more than `after` snapshots have arrived (`updates`)."""
        while self.updates <= after:
            await self._changed.wait()

    async def run(self) -> None:
        """Keep the snapshot current until cancelled."""
        attempt = 0
        while True:
            request = pb.ListRequest(
                selector=self.selector,
                watch=True,
                watch_resume=self.snapshot.header if self.snapshot is not None else None,
            )
            try:
                async with self.client.list(request) as responses:
                    while True:
                        snapshot = await read_snapshot(responses, watch=True)
                        assert snapshot is not None  # a watch raises instead
                        self._take(snapshot)
                        attempt = 0
            except aio.InvalidArgument:
                raise
            except (aio.RpcError, JournalError, OSError) as exc:
                self.last_error = exc
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                if attempt:
                    log.warning(
                        "watch of journals %r failed (attempt %d, retrying in %.2fs): %s",
                        format_selector(self.selector),
                        attempt,
                        delay,
                        exc,
                    )
                attempt += 1
                await trio.sleep(delay)

    def _take(self, snapshot: pb.ListResponse) -> None:
        held = self.revision
        new = snapshot.header.etcd.revision if snapshot.header and snapshot.header.etcd else 0
        if self.snapshot is not None and new <= held:
            # A resumed watch must move forward; an older snapshot (from a
            # broker that is behind) would take back journals we've seen.
            log.warning(
                "ignoring a journal listing at revision %d; already at %d", new, held
            )
            return
        self.snapshot = snapshot
        self.updates += 1
        self._changed.set()
        self._changed = trio.Event()


@contextlib.asynccontextmanager
async def open_watched_list(
    client: JournalClient,
    selector: pb.LabelSelector | str | None,
    *,
    ready_within: float = math.inf,
) -> AsyncIterator[WatchedList]:
    """A `WatchedList` of `selector`, ready (its first snapshot held) when the
    block starts, and watched by a task the block owns until it ends.

    Without a first snapshot within `ready_within` seconds (the brokers
    cannot be reached, say), raises `aio.Unavailable` with the last error;
    the watch retries for as long as it may."""
    watched = WatchedList(client, selector)
    async with background_nursery() as nursery:
        nursery.start_soon(watched.run)
        with trio.move_on_after(ready_within):
            await watched.wait_ready()
        if watched.snapshot is None:
            raise aio.Unavailable(
                f"no listing of journals {format_selector(watched.selector)!r} "
                f"after {ready_within:g} s: {watched.last_error or 'no answer'}"
            )
        yield watched
