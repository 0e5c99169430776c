"""`gazette-trio shards prune`: remove recovery-log fragments no hints need.

The planning is checked as pure functions over hints and fragment listings
(the open-ended tail, several shards sharing a log), then the command runs
over gRPC against the in-test Shard API, which also answers ListFragments as
an embedded member does, with fragments persisted to a real `file://` store
in a temporary directory. Promises: exactly the unneeded fragments' files
are removed; --dry-run removes nothing; a shard without backup hints stops
the prune before anything is removed.
"""

from __future__ import annotations

import contextvars
import datetime
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner, Result

from gazette_trio import aio
from gazette_trio.broker.fragments import content_name, sha1_sum
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.recoverylog import FnodeSegments, FsmHints, Segment
from gazette_trio.recoverylog.segment import SegmentSet
from gazette_trio.runtime.prune import (
    PruneError,
    fold_hints,
    fragment_file,
    oldest_backup_hints,
    unneeded_fragments,
)
from gazette_trio.runtime.shards_cli import shards

from .shard_server import ShardTable

AUTHOR = 0x1234


def _segment(
    log: str, seq: tuple[int, int], offsets: tuple[int, int], author: int = AUTHOR
) -> Segment:
    return Segment(
        author=author,
        first_seq_no=seq[0],
        last_seq_no=seq[1],
        first_offset=offsets[0],
        last_offset=offsets[1],
        log=log,
    )


def _hints(log: str, *nodes: tuple[int, list[Segment]]) -> FsmHints:
    return FsmHints(
        log=log, live_nodes=[FnodeSegments(fnode=fnode, segments=segs) for fnode, segs in nodes]
    )


def _fragments(
    log: str, *spans: tuple[int, int], store: str = "file:///stores/"
) -> list[pb.Fragment]:
    return [
        pb.Fragment(
            journal=log,
            begin=b,
            end=e,
            sum=sha1_sum(hashlib.sha1(f"{log}{b}".encode()).digest()),
            compression_codec=pb.CompressionCodec.NONE,
            backing_store=store,
        )
        for b, e in spans
    ]


def test_the_log_tail_after_the_last_hinted_segment_is_kept() -> None:
    """Only fragments before every hinted segment go; the tail is open-ended."""
    log = "rec/count-000"
    sets: dict[str, SegmentSet] = {}
    fold_hints("count-000", _hints(log, (5, [_segment(log, (5, 7), (150, 250))])), sets)
    frags = _fragments(log, (0, 100), (100, 200), (200, 300), (300, 400))
    assert [(f.begin, f.end) for f in unneeded_fragments(log, sets[log], frags)] == [(0, 100)]


def test_gaps_between_live_files_are_pruned() -> None:
    log = "rec/count-001"
    sets: dict[str, SegmentSet] = {}
    hints = _hints(
        log,
        (1, [_segment(log, (1, 2), (0, 50))]),
        (9, [_segment(log, (9, 12), (300, 350))]),
    )
    fold_hints("count-001", hints, sets)
    frags = _fragments(log, (0, 100), (100, 200), (200, 300), (300, 400), (400, 500))
    assert [(f.begin, f.end) for f in unneeded_fragments(log, sets[log], frags)] == [
        (100, 200),
        (200, 300),
    ]


def test_a_log_shared_by_shards_keeps_what_either_needs() -> None:
    """Hints of several shards fold into one set per log: a fragment needed by any stays."""
    log = "rec/shared"
    sets: dict[str, SegmentSet] = {}
    fold_hints(
        "a",
        _hints(
            log, (1, [_segment(log, (1, 1), (0, 40))]), (4, [_segment(log, (4, 4), (500, 520))])
        ),
        sets,
    )
    fold_hints("b", _hints(log, (2, [_segment(log, (2, 3), (210, 260), author=0x5678)])), sets)
    frags = _fragments(log, (0, 100), (100, 200), (200, 300), (300, 400), (400, 600))
    # b's last segment opens the tail at 210: everything from there is kept.
    assert [(f.begin, f.end) for f in unneeded_fragments(log, sets[log], frags)] == [(100, 200)]


def test_hints_that_cannot_justify_a_prune_are_refused() -> None:
    with pytest.raises(PruneError, match="has not written the backup hints"):
        oldest_backup_hints("s-1", pc.GetHintsResponse(status=pc.Status.OK))
    empty = pc.GetHintsResponse(
        status=pc.Status.OK,
        backup_hints=[pc.GetHintsResponseResponseHints(hints=FsmHints(log="rec/x"))],
    )
    with pytest.raises(PruneError, match="no live files"):
        oldest_backup_hints("s-1", empty)
    with pytest.raises(PruneError, match="SHARD_NOT_FOUND"):
        oldest_backup_hints("s-1", pc.GetHintsResponse(status=pc.Status.SHARD_NOT_FOUND))
    newer = _hints("rec/x", (1, [_segment("rec/x", (1, 1), (0, 10))]))
    older = _hints("rec/x", (1, [_segment("rec/x", (1, 1), (0, 5))]))
    response = pc.GetHintsResponse(
        status=pc.Status.OK,
        backup_hints=[
            pc.GetHintsResponseResponseHints(hints=newer),
            pc.GetHintsResponseResponseHints(hints=older),
            pc.GetHintsResponseResponseHints(),
        ],
    )
    assert oldest_backup_hints("s-1", response) == older


def test_fragment_files_follow_gazettes_file_store_layout(tmp_path: Path) -> None:
    [frag] = _fragments("rec/count-000", (0, 1024), store="file:///stores/base/")
    frag.path_postfix = "date=2024-05-01"
    digest = hashlib.sha1(b"rec/count-0000").digest()
    assert fragment_file(frag, tmp_path) == (
        tmp_path / "stores/base/rec/count-000/date=2024-05-01" / content_name(0, 1024, digest)
    )
    [s3] = _fragments("rec/count-000", (0, 1), store="s3://bucket/")
    with pytest.raises(PruneError, match="file:// stores only"):
        fragment_file(s3, tmp_path)
    [local] = _fragments("rec/count-000", (0, 1), store="")
    with pytest.raises(PruneError, match="not in a fragment store"):
        fragment_file(local, tmp_path)


@dataclass
class Member:
    table: ShardTable
    endpoint: str
    root: Path

    async def prune(self, *args: str) -> Result:
        argv = ["prune", "-e", self.endpoint, "--file-root", str(self.root), *args]
        return await trio.to_thread.run_sync(
            contextvars.Context().run, lambda: CliRunner().invoke(shards, argv)
        )

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*.raw"))


@pytest.fixture
async def member(island: None, nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Member]:
    table = ShardTable()
    for n in range(2):
        shard_id, log = f"count-00{n}", f"rec/count-00{n}"
        table.put(
            pc.ShardSpec(
                id=shard_id,
                sources=[pc.ShardSpecSource(journal=f"lines/part-00{n}")],
                recovery_log_prefix="rec",
                hint_prefix="/hints",
                max_txn_duration=datetime.timedelta(seconds=1),
            )
        )
        table.fragments[log] = _fragments(log, (0, 100), (100, 200), (200, 300), (300, 400))
        for frag in table.fragments[log]:
            path = fragment_file(frag, tmp_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * (frag.end - frag.begin))
    hints = {
        "count-000": _hints("rec/count-000", (5, [_segment("rec/count-000", (5, 7), (150, 250))])),
        "count-001": _hints(
            "rec/count-001",
            (1, [_segment("rec/count-001", (1, 2), (0, 50))]),
            (9, [_segment("rec/count-001", (9, 12), (300, 350))]),
        ),
    }
    for shard_id, h in hints.items():
        table.hints[shard_id] = pc.GetHintsResponse(
            status=pc.Status.OK, backup_hints=[pc.GetHintsResponseResponseHints(hints=h)]
        )
    port = await nursery.start(aio.serve, [table.service()], "127.0.0.1", 0)
    yield Member(table, f"http://127.0.0.1:{port}", tmp_path)


ALL_FILES = [
    f"stores/rec/count-00{n}/{b:016x}-{b + 100:016x}-{hashlib.sha1(f'rec/count-00{n}{b}'.encode()).hexdigest()}.raw"
    for n in range(2)
    for b in (0, 100, 200, 300)
]


async def test_dry_run_reports_and_removes_nothing(member: Member) -> None:
    result = await member.prune("-l", "id in (count-000, count-001)", "--dry-run")
    assert result.exit_code == 0, result.output
    assert member.files() == ALL_FILES
    out = result.stdout
    assert out.count("would remove ") == 3
    assert (
        "log rec/count-000: shards=0 fragments=4 pruned=1 kept=3 bytes=400 bytes_pruned=100" in out
    )
    assert "log rec/count-001: shards=0 fragments=4 pruned=2 kept=2" in out
    assert out.strip().endswith(
        "dry run: shards=2 fragments=8 pruned=3 kept=5 bytes=800 bytes_pruned=300 bytes_kept=500"
    )


async def test_prune_removes_exactly_the_unneeded_fragments(member: Member) -> None:
    result = await member.prune("-l", "id in (count-000, count-001)")
    assert result.exit_code == 0, result.output
    gone = {ALL_FILES[0], ALL_FILES[5], ALL_FILES[6]}
    assert member.files() == [f for f in ALL_FILES if f not in gone]
    assert "pruned: shards=2 fragments=8 pruned=3" in result.stdout


async def test_a_shard_without_backup_hints_stops_the_prune(member: Member) -> None:
    member.table.hints["count-001"] = pc.GetHintsResponse(status=pc.Status.OK)
    result = await member.prune("-l", "id in (count-000, count-001)")
    assert result.exit_code == 1
    assert "shard count-001 has not written the backup hints pruning needs" in result.stderr
    assert "nothing removed" in result.stderr
    assert member.files() == ALL_FILES


async def test_prune_with_no_matching_shards_exits_2(member: Member) -> None:
    result = await member.prune("-l", "id=nope-000")
    assert result.exit_code == 2
    assert "no shards match selector 'id=nope-000'; nothing pruned" in result.stderr
