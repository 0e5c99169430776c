"""Recorder durability and ordering: barriers, dependencies, buffering and
the write head, on the embedded journal server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from gazette_trio.broker.append_service import DependencyFailed
from gazette_trio.broker.appender import append
from gazette_trio.broker.reader import read_journal
from gazette_trio.opfuture import OpFuture
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.codec import decode_op
from gazette_trio.recoverylog.fsm import FSM
from gazette_trio.recoverylog.player import Player
from gazette_trio.recoverylog.recorder import Recorder, RecorderError, open_recorder
from gazette_trio.recoverylog.stream import LogDecoder, OpRead

from .conftest import LOG, Journals, tree


def mkdir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def recorder(journals: Journals, directory: Path, **kwargs: int) -> Recorder:
    return await open_recorder(
        log=LOG,
        fsm=FSM(FsmHints(log=LOG)),
        author=0xABC,
        directory=mkdir(directory),
        appender=journals.appender,
        **kwargs,
    )


async def test_ops_stay_buffered_until_a_barrier_or_the_flush_size(
    journals: Journals, tmp_path: Path
) -> None:
    """Recording never waits; bytes reach the log at a barrier, or on their
    own once `flush_bytes` accumulate."""
    rec = await recorder(journals, tmp_path / "a", flush_bytes=1000)
    with rec.create("f") as f:
        f.write(b"small")
        await trio.testing.wait_all_tasks_blocked()
        assert journals.core.write_head(LOG) == 0
        f.write(bytes(2000))
        with trio.fail_after(5):
            while journals.core.write_head(LOG) == 0:
                await trio.sleep(0.001)
    head = journals.core.write_head(LOG)
    with rec.create("g"):
        pass
    response = await rec.barrier()
    assert response.commit is not None and response.commit.end > head
    assert journals.core.write_head(LOG) == response.commit.end


async def test_recorded_ops_carry_the_write_head_as_a_lower_bound_offset(
    journals: Journals, tmp_path: Path
) -> None:
    rec = await recorder(journals, tmp_path / "a")
    with rec.create("one") as f:
        f.write(b"1" * 100)
    await rec.barrier()
    with rec.create("two") as f:
        f.write(b"2")
    hints = await rec.build_hints()
    first, second = (n.segments[0] for n in hints.live_nodes)
    assert first.first_offset == 0
    # Ops recorded after a completed append start no earlier than its end,
    # and the recorded bound is exact here: nothing else wrote in between.
    assert 0 < second.first_offset == await exact_offset(journals, second.first_seq_no)


async def exact_offset(journals: Journals, seq_no: int) -> int:
    decoder = LogDecoder(LOG, 0)
    decoder.feed(await read_journal(journals.client, LOG))
    while (event := decoder.next_event()) is not None:
        if isinstance(event, OpRead) and event.op.seq_no == seq_no:
            return event.op.first_offset
    raise AssertionError(f"seq_no {seq_no} not in the log")


async def test_a_barrier_with_dependencies_holds_back_later_ops(
    journals: Journals, tmp_path: Path
) -> None:
    """`barrier(wait_for)` (how a store commit orders its writes after the
    transaction's other appends): ops recorded after it reach the log only
    once every dependency resolved."""
    rec = await recorder(journals, tmp_path / "a")
    first, second = OpFuture[None](), OpFuture[None]()
    gate = rec.barrier([first, second])
    with rec.create("after") as f:
        f.write(b"held back")
    later = rec.barrier()
    await trio.testing.wait_all_tasks_blocked()
    head = journals.core.write_head(LOG)
    first.resolve(None)
    await trio.testing.wait_all_tasks_blocked()
    assert not gate.done() and journals.core.write_head(LOG) == head
    second.resolve(None)
    await gate
    await later
    assert journals.core.write_head(LOG) > head


async def test_a_failed_dependency_fails_the_barrier(journals: Journals, tmp_path: Path) -> None:
    rec = await recorder(journals, tmp_path / "a")
    dependency = OpFuture[None]()
    gate = rec.barrier([dependency])
    dependency.fail(ValueError("transaction write failed"))
    with pytest.raises(DependencyFailed, match="transaction write failed"):
        await gate
    with pytest.raises(RecorderError, match="failed"):
        rec.create("x")


async def test_a_recorder_on_a_new_log_starts_it_with_a_fencing_no_op(
    journals: Journals, tmp_path: Path
) -> None:
    """Recording into a log other than the one the FSM was played from first
    appends a no-op that continues the sequence and fences the new log."""
    await journals.create("second/log")
    first = await recorder(journals, tmp_path / "a")
    with first.create("f") as f:
        f.write(b"x")
    await first.barrier()
    moved = await open_recorder(
        log="second/log",
        fsm=first.fsm,
        author=0xDEF,
        directory=tmp_path / "a",
        appender=journals.appender,
    )
    content = await read_journal(journals.client, "second/log")
    noop = decode_op(content[8:])
    assert (noop.seq_no, noop.author, noop.create, noop.write) == (3, 0xDEF, None, None)
    assert journals.core.registers("second/log").labels[0].value == "3ff"
    assert moved.fsm.last_log == "second/log"


async def test_truncation_is_recorded_as_a_new_file_with_the_kept_bytes(
    journals: Journals, tmp_path: Path
) -> None:
    """The log has no truncate op: a truncated file becomes a new Fnode
    holding what is kept, so playback reproduces the shorter file and old
    handles of the file are refused."""
    rec = await recorder(journals, tmp_path / "a")
    f = rec.create("db")
    stale = rec.open("db")
    f.write(b"0123456789" * 10)
    old_fnode = f.fnode
    f.truncate(15)
    assert f.fnode != old_fnode and f.offset == 15
    f.write(b"+tail")
    with pytest.raises(RecorderError, match="not a live file"):
        stale.write(b"lost")
    with pytest.raises(RecorderError, match="stale handle"):
        stale.truncate(0)
    rec.link("db", "db-link")
    with pytest.raises(RecorderError, match="which has 2 paths"):
        f.truncate(0)
    f.close()
    stale.close()

    player = Player()
    player.finish_at_write_head()
    await player.play(
        await rec.build_hints(), tmp_path / "replica", journals.client, journals.appender
    )
    assert (tmp_path / "replica" / "db").read_bytes() == b"012345678901234+tail"
    assert (tmp_path / "a" / "db").read_bytes() == b"012345678901234+tail"


class AppendLog:
    """The recorder's appender, noting the future of every append it makes."""

    def __init__(self, journals: Journals) -> None:
        self.journals = journals
        self.futures: list[OpFuture[pb.AppendResponse]] = []

    def append(self, journal: str, content: bytes, **kwargs: Any) -> OpFuture[pb.AppendResponse]:
        future = self.journals.appender.append(journal, content, **kwargs)
        self.futures.append(future)
        return future

    def boundaries(self) -> list[int]:
        """Offsets where an append ended: where a crash may cut the log."""
        ends = {f.result().commit.end for f in self.futures if f.result().commit is not None}
        return sorted(ends)


async def recorder_logging_appends(
    journals: Journals, directory: Path, *, flush_bytes: int
) -> tuple[Recorder, AppendLog]:
    appends = AppendLog(journals)
    rec = await open_recorder(
        log=LOG,
        fsm=FSM(FsmHints(log=LOG)),
        author=0xABC,
        directory=mkdir(directory),
        appender=appends,
        flush_bytes=flush_bytes,
    )
    return rec, appends


async def play_cut(
    journals: Journals, content: bytes, cut: int, directory: Path
) -> dict[str, bytes]:
    """The files a player rebuilds from the log cut at offset `cut` (as a
    crash right after that append would leave it)."""
    name = f"cut/{cut}"
    await journals.create(name)
    if cut:
        await append(journals.client, name, content[:cut])
    player = Player()
    player.finish_at_write_head()
    await player.play(FsmHints(log=name), directory, journals.client, journals.appender)
    return tree(directory)


async def test_a_renames_ops_reach_the_log_in_one_append_whatever_the_flush_size(
    journals: Journals, tmp_path: Path
) -> None:
    """A rename over an existing file is three ops (unlink the old target,
    link, unlink the source); a size-triggered flush never splits them, even
    when every single op is past `flush_bytes`."""
    rec, appends = await recorder_logging_appends(journals, tmp_path / "a", flush_bytes=1)
    for name in ("state", "next"):
        with rec.create(name) as f:
            f.write(name.encode())
    before = len(appends.futures)
    rec.rename("next", "state")
    await rec.barrier()
    (rename,) = appends.futures[before:]
    content = await read_journal(journals.client, LOG)
    commit = rename.result().commit
    assert commit is not None
    decoder = LogDecoder(LOG, commit.begin)
    decoder.feed(content[commit.begin : commit.end])
    ops = []
    while (event := decoder.next_event()) is not None:
        if isinstance(event, OpRead):
            ops.append(event.op)
    state, nxt = (n.fnode for n in (ops[0].unlink, ops[1].link) if n is not None)
    assert [(o.unlink or o.link).path for o in ops] == ["/state", "/state", "/next"]  # type: ignore[union-attr]
    assert [o.unlink is not None for o in ops] == [True, False, True]
    assert state != nxt


async def test_a_log_cut_after_any_append_holds_the_old_or_the_new_file_never_neither(
    journals: Journals, tmp_path: Path
) -> None:
    """The JSON store's commit (write `next`, rename it over `state`),
    recorded with every op past the flush size: wherever a crash cuts the
    log between appends, playback finds `state` holding one complete
    version. (Before renames were atomic, a cut after the unlink of the old
    `state` lost it.)"""
    rec, appends = await recorder_logging_appends(journals, tmp_path / "a", flush_bytes=1)
    versions = [f"version {i}; ".encode() * (i + 1) for i in range(4)]
    for version in versions:
        with rec.create("next") as f:
            f.write(version)
        rec.rename("next", "state")
    await rec.barrier()
    content = await read_journal(journals.client, LOG)
    cuts = appends.boundaries()
    assert len(cuts) > 3 * len(versions)  # many places to cut
    seen = []
    for cut in cuts:
        files = await play_cut(journals, content, cut, tmp_path / f"cut-{cut}")
        if not seen and "state" not in files:
            continue  # before the first rename landed
        assert files["state"] in versions, f"cut at {cut}: state is {files.get('state')!r}"
        seen.append(versions.index(files["state"]))
    assert seen == sorted(seen) and seen[-1] == len(versions) - 1


async def test_a_log_cut_after_any_append_never_holds_half_a_truncation(
    journals: Journals, tmp_path: Path
) -> None:
    """A truncation is an unlink, a create and the kept bytes: one append,
    so a cut log holds the file whole or truncated, never missing or short."""
    rec, appends = await recorder_logging_appends(journals, tmp_path / "a", flush_bytes=1)
    whole = bytes(range(256)) * 64
    with rec.create("db") as f:
        f.write(whole)
        f.truncate(5000)
    await rec.barrier()
    content = await read_journal(journals.client, LOG)
    outcomes = set()
    for cut in appends.boundaries():
        if cut == 0:
            continue  # the empty log, before the create
        files = await play_cut(journals, content, cut, tmp_path / f"cut-{cut}")
        outcomes.add(files.get("db"))
    assert outcomes == {b"", whole, whole[:5000]}  # created, written, truncated


async def test_a_rename_onto_identity_records_a_property_that_later_renames_update(
    journals: Journals, tmp_path: Path
) -> None:
    """RocksDB writes `/IDENTITY` by renaming a temporary file over it.
    As Gazette's recorder, that is recorded as a property (its content in
    the log, no Fnode), a second such rename updates it, and playback
    writes the last content; the path cannot be opened or linked."""
    rec = await recorder(journals, tmp_path / "a")
    for content in (b"first-identity\n", b"second-identity\n"):
        with rec.create("tmp-identity") as f:
            f.write(content)
        rec.rename("tmp-identity", "IDENTITY")
    assert (tmp_path / "a" / "IDENTITY").read_bytes() == b"second-identity\n"
    hints = await rec.build_hints()
    assert [(p.path, p.content) for p in hints.properties] == [("/IDENTITY", "second-identity\n")]
    assert hints.live_nodes == []  # both temporary files were unlinked
    with pytest.raises(RecorderError, match="property file"):
        rec.open("IDENTITY")
    with rec.create("other"):
        pass
    with pytest.raises(RecorderError, match="property path"):
        rec.link("other", "IDENTITY")

    # From the log alone (no hints), a player applies both property ops.
    await rec.barrier()
    player = Player()
    player.finish_at_write_head()
    await player.play(FsmHints(log=LOG), tmp_path / "replica", journals.client, journals.appender)
    assert tree(tmp_path / "replica") == {"IDENTITY": b"second-identity\n", "other": b""}
