"""Recovery-log pruning: which fragments no shard's hints still need, and removing them.

A recovery log keeps every write a shard's store ever made, so it grows
without bound although a store only needs the parts of the log its live
files were written in. Each shard's hints (`FSMHints`) say exactly which
segments of which logs playback reads. Pruning, as gazctl does it:

1. take every selected shard's *oldest* backup hints (pruning to them keeps
   every newer hint valid too); a shard with no backup hints, or hints with
   no live files, stops the prune, since without proof that no shard needs a
   fragment nothing may be deleted;
2. fold the hinted segments of all shards into one `SegmentSet` per log,
   with the last segment open-ended: playback reads on past it, so nothing
   after its first offset is ever pruned;
3. a fragment of a log that intersects no segment of its set is unneeded.

Fragments live in fragment stores; this module removes them from `file://`
stores (Gazette's layout: `<root><store path>/<journal>/<postfix>/<content
name>`), the kind a single machine uses. Fragments in other stores (s3,
gcs, azure) or not yet persisted are reported, not removed.

This module owns the planning (pure functions over hints and fragment
listings) and file-store removal; the command that gathers the hints and
listings over the network is `shards_cli.prune`.
"""

from __future__ import annotations

import copy
import os
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..broker.fragments import content_name, sha1_digest
from ..errors import GazetteTrioError
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from ..protocol.recoverylog import FsmHints, Segment
from ..recoverylog.hints import HintsError, live_log_segments
from ..recoverylog.segment import SegmentError, SegmentSet

__all__ = [
    "PruneError",
    "PruneStats",
    "fold_hints",
    "fragment_file",
    "oldest_backup_hints",
    "unneeded_fragments",
]


class PruneError(GazetteTrioError):
    """Pruning cannot go on safely; the message says which shard or fragment and why."""


@dataclass
class PruneStats:
    """What a prune looked at and removed (or would remove)."""

    shards: int = 0
    fragments: int = 0
    fragments_pruned: int = 0
    bytes: int = 0
    bytes_pruned: int = 0

    @property
    def fragments_kept(self) -> int:
        return self.fragments - self.fragments_pruned

    @property
    def bytes_kept(self) -> int:
        return self.bytes - self.bytes_pruned

    def add(self, other: PruneStats) -> None:
        self.shards += other.shards
        self.fragments += other.fragments
        self.fragments_pruned += other.fragments_pruned
        self.bytes += other.bytes
        self.bytes_pruned += other.bytes_pruned


def oldest_backup_hints(shard: str, response: pc.GetHintsResponse) -> FsmHints:
    """The oldest backup hints of a GetHints response, checked usable for pruning."""
    if response.status != pc.Status.OK:
        raise PruneError(f"shard {shard}: GetHints answered {response.status.name}")
    for backup in reversed(response.backup_hints):
        if backup.hints is not None:
            hints = backup.hints
            break
    else:
        raise PruneError(
            f"shard {shard} has not written the backup hints pruning needs; cannot continue "
            "(hints are backed up when a shard finishes recovering its store)"
        )
    if not hints.live_nodes:
        raise PruneError(f"shard {shard}: its hints have no live files; cannot continue")
    return hints


def fold_hints(shard: str, hints: FsmHints, sets: dict[str, SegmentSet]) -> None:
    """Add the segments `hints` needs to `sets` (one SegmentSet per log).

    The last hinted segment is made open-ended (last offset 0): playback
    reads on past it, so the log's tail from there on is always kept; the
    *oldest* hints of all shards thus bound where each log's kept tail begins.
    """
    try:
        _, segments = live_log_segments(hints)
    except HintsError as exc:
        raise PruneError(f"shard {shard}: unusable hints: {exc}") from None
    found = [copy.copy(s) for s in segments]
    found[-1] = _open_ended(found[-1])
    for segment in found:
        current = sets.setdefault(segment.log, SegmentSet())
        if (
            current
            and current[-1].last_offset == 0
            and current[-1].first_seq_no <= segment.last_seq_no
        ):
            # Within an open-ended tail already: keep it open rather than close it.
            segment = _open_ended(segment)
        try:
            current.add(segment)
        except SegmentError as exc:
            raise PruneError(f"shard {shard}: hints conflict in log {segment.log}: {exc}") from None


def _open_ended(segment: Segment) -> Segment:
    out = copy.copy(segment)
    out.last_offset = 0
    return out


def unneeded_fragments(
    log: str, segments: SegmentSet, fragments: Iterable[pb.Fragment]
) -> list[pb.Fragment]:
    """Fragments of `log` that no segment of `segments` overlaps."""
    return [f for f in fragments if not segments.intersect(log, f.begin, f.end)]


def fragment_file(fragment: pb.Fragment, file_root: Path = Path("/")) -> Path:
    """Where a `file://` fragment store keeps `fragment`, under `file_root`.

    Raises `PruneError` for fragments not persisted to a store, persisted
    to a store that is not `file://`, or whose names would lead the path out
    of its store (`..` components, or a symbolic link out of it).
    """
    store = fragment.backing_store
    if not store:
        raise PruneError(
            f"fragment {fragment.journal}@{fragment.begin}-{fragment.end} is not in a fragment "
            "store (held by the broker only), so it cannot be removed"
        )
    url = urlsplit(store)
    if url.scheme != "file":
        raise PruneError(
            f"fragment {fragment.journal}@{fragment.begin}-{fragment.end} is in {store}: "
            "gazette-trio removes fragments from file:// stores only"
        )
    name = content_name(
        fragment.begin,
        fragment.end,
        sha1_digest(fragment.sum),
        pb.CompressionCodec(fragment.compression_codec or pb.CompressionCodec.NONE),
    )
    where = f"fragment {fragment.journal}@{fragment.begin}-{fragment.end}"
    store_path = url.path.lstrip("/")
    inside = posixpath.join(fragment.journal, fragment.path_postfix, name)
    for part, text in (("store path", store_path), ("journal and postfix", inside)):
        components = text.split("/")
        if "\0" in text or ".." in components or "." in components:
            # The names come from the broker's listing: they must not be
            # able to point a removal anywhere else.
            raise PruneError(
                f"{where}: its {part} {text!r} leaves the fragment store; refusing to remove it"
            )
    store_dir = file_root / posixpath.normpath(store_path) if store_path else file_root
    path = store_dir / posixpath.normpath(inside)
    real_store = os.path.realpath(store_dir)
    if os.path.commonpath([real_store, os.path.realpath(path)]) != real_store:
        raise PruneError(
            f"{where}: {path} resolves outside its fragment store {store_dir} (a symbolic "
            "link?); refusing to remove it"
        )
    return path


def summarize(stats: PruneStats) -> str:
    """One line, in the words of gazctl's prune log."""
    return (
        f"shards={stats.shards} fragments={stats.fragments} pruned={stats.fragments_pruned} "
        f"kept={stats.fragments_kept} bytes={stats.bytes} bytes_pruned={stats.bytes_pruned} "
        f"bytes_kept={stats.bytes_kept}"
    )


def fragment_stats(fragments: Sequence[pb.Fragment], pruned: Sequence[pb.Fragment]) -> PruneStats:
    return PruneStats(
        fragments=len(fragments),
        fragments_pruned=len(pruned),
        bytes=sum(f.end - f.begin for f in fragments),
        bytes_pruned=sum(f.end - f.begin for f in pruned),
    )
