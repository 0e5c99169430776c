"""A member's announcement: its key and value in etcd, under its lease.

`announce` writes the member key only if it does not exist (a previous
process of the same zone and suffix may still hold it until its lease
expires; then it waits and retries, as Gazette does). `Announcement.update`
rewrites the value guarded by the revision it last wrote, so an update never
overwrites someone else's key; the key keeps its lease.

This module owns the announcement protocol; the lease and its keep-alive
are the caller's (see `member`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from ..errors import AllocatorError
from ..etcd import Compare, Etcd, EtcdError, Put

log = logging.getLogger(__name__)


class AnnouncementLost(AllocatorError):
    """The announced key was changed or deleted by someone else."""


@dataclass
class Announcement:
    etcd: Etcd
    key: str
    revision: int

    async def update(self, value: bytes) -> int:
        """Rewrite the announced value; returns the new revision."""
        result = await self.etcd.txn(
            [Compare.mod_revision(self.key, "=", self.revision)],
            [Put(self.key, value, ignore_lease=True)],
        )
        if not result.succeeded:
            raise AnnouncementLost(
                f"{self.key} was modified or deleted (expected revision {self.revision})"
            )
        self.revision = result.revision
        return result.revision


async def announce(
    etcd: Etcd, key: str, value: bytes, lease_id: int, *, retry_interval: float = 10.0
) -> Announcement:
    """Create `key` with `value` under the lease, waiting while it exists."""
    while True:
        try:
            result = await etcd.txn(
                [Compare.version(key, "=", 0)], [Put(key, value, lease=lease_id)]
            )
        except EtcdError as exc:
            log.warning("failed to announce %s (will retry): %s", key, exc)
        else:
            if result.succeeded:
                return Announcement(etcd, key, result.revision)
            log.warning(
                "member key %s exists (a previous process?); retrying until it expires", key
            )
        await trio.sleep(retry_interval)
