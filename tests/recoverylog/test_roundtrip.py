"""Recorder → log → Player round trips on the embedded journal server.

What is promised: a directory recorded through a Recorder plays back
byte-identical into another directory; a player started early tails the
live log as a hot standby; a hand-off makes the player the log's recorder
and fences the old one off; playback from hints needs only the hinted parts
of the log; playback is cancellable and cleans up after itself.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

from gazette_trio.broker.errors import JournalError
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.fsm import FSM
from gazette_trio.recoverylog.player import (
    STAGING_DIR,
    PlaybackError,
    Player,
    PlayerState,
    check_recovery_log,
)
from gazette_trio.recoverylog.recorder import (
    Recorder,
    RecorderError,
    RecorderFencedError,
    open_recorder,
)

from .conftest import LOG, Journals, tree


def mkdir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def new_recorder(journals: Journals, directory: Path, author: int = 0x1234) -> Recorder:
    mkdir(directory)
    return await open_recorder(
        log=LOG,
        fsm=FSM(FsmHints(log=LOG)),
        author=author,
        directory=directory,
        appender=journals.appender,
    )


async def play_to_head(journals: Journals, hints: FsmHints, directory: Path) -> Player:
    player = Player()
    player.finish_at_write_head()
    await player.play(hints, directory, journals.client, journals.appender)
    return player


def populate(recorder: Recorder, rng: random.Random) -> None:
    """A workload of every kind of file operation."""
    with recorder.create("data/big.bin") as f:
        for _ in range(20):
            f.write(rng.randbytes(rng.randrange(1, 50_000)))
        f.write_at(b"patched", 1000)
    with recorder.create("notes.txt") as f:
        f.write(b"first version")
    with recorder.create("notes.txt") as f:  # Truncated: a new Fnode.
        f.write(b"second version")
    with recorder.create("tmp/next") as f:
        f.write(b"renamed into place")
    recorder.rename("tmp/next", "current")
    recorder.link("current", "hard/link")
    with recorder.create("doomed") as f:
        f.write(b"removed later")
    recorder.remove("doomed")
    with recorder.open("notes.txt") as f:
        f.write_at(b"SECOND", 0)
    with recorder.create("empty"):
        pass


async def test_a_recorded_directory_plays_back_byte_identical(
    journals: Journals, tmp_path: Path
) -> None:
    recorder = await new_recorder(journals, tmp_path / "primary")
    populate(recorder, random.Random(7))
    hints = await recorder.build_hints()

    await play_to_head(journals, FsmHints(log=LOG), tmp_path / "from-scratch")
    await play_to_head(journals, hints, tmp_path / "from-hints")

    expected = tree(tmp_path / "primary")
    assert set(expected) == {"data/big.bin", "notes.txt", "current", "hard/link", "empty"}
    assert expected["notes.txt"] == b"SECOND version"
    assert tree(tmp_path / "from-scratch") == expected
    assert tree(tmp_path / "from-hints") == expected
    assert (tmp_path / "from-hints" / "current").stat().st_ino == (
        tmp_path / "from-hints" / "hard/link"
    ).stat().st_ino
    assert not (tmp_path / "from-hints" / STAGING_DIR).exists()


async def test_hints_describe_the_recorders_live_files_once_durable(
    journals: Journals, tmp_path: Path
) -> None:
    recorder = await new_recorder(journals, tmp_path / "primary")
    with recorder.create("a") as f:
        f.write(b"x" * 10)
    recorder.remove("a")
    with recorder.create("b") as f:
        f.write(b"y")
    hints = await recorder.build_hints()
    assert [n.fnode for n in hints.live_nodes] == [4]
    assert hints.live_nodes[0].segments[0].author == 0x1234
    assert hints.live_nodes[0].segments[0].log == ""  # The hints' own log.
    # The no-op barrier of `open_recorder` and every op are in the log.
    assert journals.core.write_head(LOG) == recorder.write_head


async def test_misuse_of_the_recorder_is_refused_with_the_path(
    journals: Journals, tmp_path: Path
) -> None:
    recorder = await new_recorder(journals, tmp_path / "primary")
    with pytest.raises(RecorderError, match=r"not a file under"):
        recorder.create("../escape")
    with pytest.raises(RecorderError, match=r"remove of /missing, which is not a recorded file"):
        recorder.record_remove("missing")
    with pytest.raises(RecorderError, match=r"open of /missing, which is not a recorded file"):
        recorder.open("missing")
    recorder.create("x").close()
    with pytest.raises(RecorderError, match=r"exclusive open of /x"):
        recorder.record_open("x", exclusive=True)
    with pytest.raises(RecorderError, match=r"fnode 99, which is not a live file"):
        recorder.record_write_at(99, b"data", 0)


async def test_a_hot_standby_tails_and_mirrors_live_writes(
    journals: Journals, tmp_path: Path
) -> None:
    recorder = await new_recorder(journals, tmp_path / "primary")
    with recorder.create("state") as f:
        f.write(b"v1")
    hints = await recorder.build_hints()

    standby = Player()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            standby.play, hints, tmp_path / "standby", journals.client, journals.appender
        )
        await standby.wait_tailing()
        assert standby.state is PlayerState.TAIL

        for version in range(2, 6):
            with recorder.open("state") as f:
                f.write_at(f"v{version}".encode(), 0)
            await recorder.barrier()
            with trio.fail_after(5):
                while standby.offset < journals.core.write_head(LOG):
                    await trio.sleep(0.001)
            staged = standby.local_path("/state")
            assert staged is not None and staged.read_bytes() == f"v{version}".encode()

        standby.finish_at_write_head()
    assert tree(tmp_path / "standby") == {"state": b"v5"}


async def test_hand_off_makes_the_player_the_recorder_and_fences_the_old_one(
    journals: Journals, tmp_path: Path
) -> None:
    old = await new_recorder(journals, tmp_path / "old", author=0x1111)
    with old.create("db") as f:
        f.write(b"committed by old")
    hints = await old.build_hints()

    successor = Player()
    successor.inject_handoff(0x2222)
    playback = await successor.play(hints, tmp_path / "new", journals.client, journals.appender)
    new = await open_recorder(
        log=LOG,
        fsm=playback.fsm,
        author=0x2222,
        directory=playback.directory,
        appender=journals.appender,
    )
    assert journals.core.registers(LOG) == pb.LabelSet(
        labels=[pb.Label(name="author", value="8h2")]
    )

    # The deposed primary's next commit fails: its register check no longer holds.
    with old.open("db") as f:
        f.write_at(b"zombie write!!!!", 0)
    with pytest.raises(JournalError) as failed:
        await old.barrier()
    assert failed.value.status == pb.Status.REGISTER_MISMATCH
    with pytest.raises(RecorderFencedError, match="fenced off log"):
        old.create("more")

    with new.open("db") as f:
        f.write_at(b"COMMITTED", 0)
    await new.barrier()

    # A later playback sees the new recorder's history, not the zombie's.
    await play_to_head(journals, await new.build_hints(), tmp_path / "check")
    assert tree(tmp_path / "check") == {"db": b"COMMITTED by old"}


class RacingAppender:
    """The real append service, except that the first hand-off no-op is
    preceded by an op a still-running (unfenced) recorder writes: the player
    loses the race once and must catch up and inject again."""

    def __init__(self, journals: Journals, racer: Recorder) -> None:
        self.journals, self.racer, self.raced = journals, racer, False
        self.injections = 0

    def append(self, journal, content, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("union_registers") is not None:
            self.injections += 1
        if kwargs.get("union_registers") is not None and not self.raced:
            self.raced = True
            with self.racer.open("db") as f:
                f.write_at(b"RACED", 0)
            self.racer.barrier()
        return self.journals.appender.append(journal, content, **kwargs)


async def test_a_hand_off_that_loses_a_race_retries_and_sees_the_raced_write(
    journals: Journals, tmp_path: Path
) -> None:
    mkdir(tmp_path / "old")
    racer = Recorder(
        log=LOG,
        fsm=FSM(FsmHints(log=LOG)),
        author=0x1111,
        directory=tmp_path / "old",
        appender=journals.appender,
        fenced=False,
    )
    with racer.create("db") as f:
        f.write(b"before the race")
    hints = await racer.build_hints()

    player = Player()
    player.inject_handoff(0x2222)
    racing = RacingAppender(journals, racer)
    playback = await player.play(hints, tmp_path / "new", journals.client, racing)  # type: ignore[arg-type]
    assert racing.injections == 2  # Lost the race once, then won.
    assert playback.fsm.build_hints(LOG).live_nodes[0].segments[-1].author == 0x1111
    assert (tmp_path / "new" / "db").read_bytes() == b"RACEDe the race"


async def test_playback_from_hints_does_not_need_log_before_the_hinted_segments(
    journals: Journals, tmp_path: Path
) -> None:
    """Content before the hinted segments may be deleted from the log (the
    reader jumps over the hole): hints alone say where live files begin."""
    await journals.create("small/fragments", fragment_length=1024)
    mkdir(tmp_path / "primary")
    recorder = await open_recorder(
        log="small/fragments",
        fsm=FSM(FsmHints(log="small/fragments")),
        author=7,
        directory=tmp_path / "primary",
        appender=journals.appender,
    )
    for i in range(50):
        with recorder.create(f"old-{i}") as f:
            f.write(bytes(2048))
        await recorder.barrier()
        recorder.remove(f"old-{i}")
    await recorder.barrier()
    with recorder.create("live") as f:
        f.write(b"the only live file")
    hints = await recorder.build_hints()
    first_offset = hints.live_nodes[0].segments[0].first_offset
    assert first_offset > 100_000

    removed = await journals.core.remove_fragments("small/fragments", first_offset)
    assert removed and removed[-1].end <= first_offset
    await play_to_head(journals, hints, tmp_path / "replica")
    assert tree(tmp_path / "replica") == {"live": b"the only live file"}

    # Without hints, playback starts at seq_no 1, which is gone: after the
    # jump no op is in sequence, and (as in Gazette) nothing is recovered.
    await play_to_head(journals, FsmHints(log="small/fragments"), tmp_path / "no-hints")
    assert tree(tmp_path / "no-hints") == {}


async def test_two_interleaved_recorders_play_back_as_whichever_the_hints_name(
    journals: Journals, tmp_path: Path
) -> None:
    """Without fencing, two recorders racing on one log write a tree of
    histories; each one's hints rebuild exactly its own branch."""
    dirs = [tmp_path / "a", tmp_path / "b"]
    recorders = []
    for i, d in enumerate(dirs):
        mkdir(d)
        recorders.append(
            Recorder(
                log=LOG,
                fsm=FSM(FsmHints(log=LOG)),
                author=100 + i,
                directory=d,
                appender=journals.appender,
                fenced=False,
            )
        )
    for round_ in range(5):
        for i, r in enumerate(recorders):
            with r.open("file", create=True) as f:
                f.write_at(f"author {i} round {round_}|".encode(), round_ * 20)
            await r.barrier()
    for i, r in enumerate(recorders):
        hints = await r.build_hints()
        await play_to_head(journals, hints, tmp_path / f"replay-{i}")
        assert tree(tmp_path / f"replay-{i}") == tree(dirs[i])


async def test_playback_follows_hints_across_logs(journals: Journals, tmp_path: Path) -> None:
    """A shard whose recovery log changed: hints name segments in the old log
    and the new one, and playback reads both."""
    await journals.create("old/log")
    mkdir(tmp_path / "one")
    first = await open_recorder(
        log="old/log",
        fsm=FSM(FsmHints(log="old/log")),
        author=123,
        directory=tmp_path / "one",
        appender=journals.appender,
    )
    with first.create("old/file") as f:
        f.write(b"old data")
    hints = await first.build_hints()

    player = Player()
    player.inject_handoff(456)
    playback = await player.play(hints, tmp_path / "two", journals.client, journals.appender)
    second = await open_recorder(
        log=LOG,
        fsm=playback.fsm,
        author=456,
        directory=playback.directory,
        appender=journals.appender,
    )
    with second.create("new/file") as f:
        f.write(b"new data")
    hints = await second.build_hints()
    assert {s.log for n in hints.live_nodes for s in n.segments} == {"old/log", ""}

    player = Player()
    player.inject_handoff(789)
    playback = await player.play(hints, tmp_path / "three", journals.client, journals.appender)
    assert playback.log == LOG
    assert tree(tmp_path / "three") == {"old/file": b"old data", "new/file": b"new data"}


async def test_playback_is_cancellable_and_removes_its_directory(
    journals: Journals, tmp_path: Path
) -> None:
    recorder = await new_recorder(journals, tmp_path / "primary")
    with recorder.create("f") as f:
        f.write(b"data")
    hints = await recorder.build_hints()

    player = Player()
    with trio.move_on_after(5) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                player.play, hints, tmp_path / "standby", journals.client, journals.appender
            )
            await player.wait_tailing()
            assert (tmp_path / "standby" / STAGING_DIR).is_dir()
            nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert player.state is PlayerState.FAILED
    assert not (tmp_path / "standby").exists()
    with pytest.raises(PlaybackError):
        await player.wait_done()


async def test_playback_cancelled_mid_backfill_stops_at_once_and_cleans_up(
    journals: Journals, tmp_path: Path
) -> None:
    recorder = await new_recorder(journals, tmp_path / "primary")
    for i in range(40):
        with recorder.create(f"file-{i}") as f:
            f.write(bytes(100_000))
        await recorder.barrier()

    player = Player()
    player.finish_at_write_head()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            player.play, FsmHints(log=LOG), tmp_path / "replica", journals.client, journals.appender
        )
        with trio.fail_after(5):
            while player.offset < 1_000_000:
                await trio.lowlevel.checkpoint()
        assert player.state is PlayerState.EXIT_AT_HEAD and not player.tailing
        nursery.cancel_scope.cancel()
    assert player.offset < journals.core.write_head(LOG)
    assert player.state is PlayerState.FAILED
    assert not (tmp_path / "replica").exists()


async def test_hints_beyond_the_write_head_are_refused(journals: Journals, tmp_path: Path) -> None:
    recorder = await new_recorder(journals, tmp_path / "primary")
    with recorder.create("f") as f:
        f.write(b"data")
    hints = await recorder.build_hints()
    hints.live_nodes[0].segments[0].first_offset = 10**9
    with pytest.raises(PlaybackError, match="possible data loss"):
        await play_to_head(journals, hints, tmp_path / "replica")


async def test_only_journals_labelled_as_recovery_logs_are_played(journals: Journals) -> None:
    await check_recovery_log(journals.client, LOG)
    await apply_journals(journals.client, [upsert(new_journal_spec("plain/journal"))])
    with pytest.raises(PlaybackError, match="not a recovery log: expected label content-type"):
        await check_recovery_log(journals.client, "plain/journal")
    with pytest.raises(PlaybackError, match="does not exist"):
        await check_recovery_log(journals.client, "missing/journal")


async def test_garbage_between_ops_is_skipped_and_playback_goes_on(
    journals: Journals, tmp_path: Path
) -> None:
    """Bytes that are not frames (which no recorder writes, but a buggy
    writer could) are skipped to the next frame, as Gazette's player does."""
    recorder = await new_recorder(journals, tmp_path / "primary")
    f = recorder.create("foo/bar")
    hints = await recorder.build_hints()
    f.write(b"hello")
    with recorder.create("baz") as g:
        g.write(b"bing")
    f.write(b" world")
    await recorder.barrier()
    await journals.appender.append(LOG, b"... garbage data ...")
    f.write(b"!")
    f.close()
    await recorder.barrier()

    await play_to_head(journals, hints, tmp_path / "replica")
    assert tree(tmp_path / "replica") == {"foo/bar": b"hello world!", "baz": b"bing"}
