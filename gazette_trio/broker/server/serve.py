"""Run the journal server standalone: storage, core and gRPC service together.

`serve_journals` is what `gazette-trio broker serve` and
`python -m gazette_trio.broker.server` run; tests and the single-process
consumer runtime can start it in a nursery too. It owns the lifetime of the
storage (closed when the server stops) and the periodic scrub of stored
fragments (`scrub_periodically`, which a member's embedded server runs too),
and nothing else.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
from pathlib import Path

import trio

from ... import aio
from ...auth.verifier import OPEN, Verifier
from .core import JournalServerCore
from .file_storage import FileStorage
from .service import journal_service
from .storage import MemoryStorage, Storage

log = logging.getLogger(__name__)

SCRUB_INTERVAL = 3600.0
"""Seconds between passes of the scrub, which re-verifies rolled fragments
against their SHA-1 sums (restart verifies them too)."""

SCRUB_RATE = 32 << 20
"""Bytes a second a scrub pass reads at most, so that it never competes
with readers for the disk."""


async def scrub_periodically(
    core: JournalServerCore, interval: float = SCRUB_INTERVAL, max_rate: int = SCRUB_RATE
) -> None:
    """Scrub `core`'s fragments every `interval` seconds (0: never), until
    cancelled. The first pass waits an interval: restart just verified all."""
    if not interval:
        return
    while True:
        await trio.sleep(interval)
        started = trio.current_time()
        damaged = await core.scrub(max_rate)
        log.info(
            "scrub: verified the stored fragments in %.1f s; %s",
            trio.current_time() - started,
            f"{len(damaged)} newly damaged (see above)" if damaged else "all intact",
        )


def open_storage(data_dir: str | os.PathLike[str] | None, *, sync: bool = True) -> Storage:
    """`FileStorage` in `data_dir`, or `MemoryStorage` if it is None.

    File storage holds the directory's lock until it is closed: if another
    process (or storage) holds it, this raises `DataDirLocked` naming the
    holder (`gazette_trio.runtime.datadir`)."""
    if data_dir is None:
        return MemoryStorage()
    return FileStorage(Path(data_dir), sync=sync)


async def serve_journals(
    data_dir: str | os.PathLike[str] | None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    sync: bool = True,
    verifier: Verifier = OPEN,
    tls: ssl.SSLContext | None = None,
    scrub_interval: float = SCRUB_INTERVAL,
    task_status: trio.TaskStatus[tuple[JournalServerCore, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the Journal API from `data_dir` (None: in memory) until cancelled.

    Reports `(core, bound_port)` through `task_status`. Needs the asyncio
    island (`gazette_trio.aio.asyncio_island`) to be open. Calls are verified
    by `verifier` and, with `tls`, served over TLS (docs/security.md).
    Stored fragments are scrubbed every `scrub_interval` seconds (0: never).
    """
    storage = open_storage(data_dir, sync=sync)
    try:
        core = JournalServerCore(storage)
        async with trio.open_nursery() as nursery:
            bound: int = await nursery.start(
                functools.partial(aio.serve, [journal_service(core, verifier)], host, port, tls=tls)
            )
            core.endpoint = f"{'https' if tls is not None else 'http'}://{host}:{bound}"
            log.info(
                "journal server listening on %s (data: %s)", core.endpoint, data_dir or "memory"
            )
            if data_dir is not None:
                nursery.start_soon(scrub_periodically, core, scrub_interval)
            task_status.started((core, bound))
    finally:
        storage.close()
