"""Where a store keeps its files when its shard has no recovery log.

`serve` gives the member `<data_dir>/member`; a shard with a recovery log
plays it into a fresh `<member>/shards/<id>-<n>`, which is deleted when the
assignment ends (the log is the durable copy). A shard without a recovery
log has only local files, so its store needs the opposite: a directory that
outlives assignments and restarts of the member, because it *is* the state.
That is `<member>/stores/<shard id>`, the id percent-encoded into one path
component (`/` as `%2F`), so that distinct shards never share it.

Such state lives on one machine. If the shard is assigned to another member
that member starts from its own directory (empty, or what it kept from an
earlier assignment), so shards without a recovery log belong on deployments
where assignments stay put (one member, or `shard_limit` and zones that pin
them); give the ShardSpec a `recovery_log_prefix` for state that follows the
shard.

This module owns that layout only; the runtime's shard exposes the result
as `Shard.store_directory`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

STORES = "stores"


def shard_store_directory(member_dir: Path, shard_id: str) -> Path:
    """The durable directory of shard `shard_id` under a member's data
    directory `member_dir`."""
    if not shard_id:
        raise ValueError("a shard's store directory needs its non-empty id")
    name = quote(shard_id, safe="")
    if name in (".", ".."):
        name = name.replace(".", "%2E")
    return member_dir / STORES / name
