"""The Player: a recovery log played back into a local directory.

`Player.play(hints, directory, ...)` rebuilds the file system a recorder
described by `hints`: it reads only the log segments the hints name
(skipping dead stretches), applies each op through the FSM and re-enacts the
applied ones on disk. Files are staged as `<directory>/.fnodes/<fnode>`
while playing; when playback completes, each live file is hard-linked at its
paths and the staging directory removed (Gazette's layout and steps).

Once it has read through the log's write head the player keeps *tailing*:
it follows a live recorder's appends, so a hot standby stays seconds behind
the primary (`tailing` reports it; a replica then says STANDBY instead of
BACKFILL). Playback then ends in one of two ways, asked for from another
task:

- `finish_at_write_head()`: stop once caught up, and make files live;
- `inject_handoff(author)`: once caught up, append a no-op sequenced after
  everything read, with `union_registers = author's fence`, and read on
  until that no-op comes back. If it applied, no other recorder's op got in
  between: the player's FSM is the log's and the fence now stops the old
  recorder's appends; a `Recorder` continues from the returned `Playback`.
  If another op won the race, the no-op is a dead branch: catch up and try
  again (Gazette's `Player.InjectHandoff`).

Playback is cancellable at any point by the caller's cancel scope; a
cancelled or failed playback removes the directory, as Gazette does. Errors
that mean the log cannot yield the hinted state (hinted segments beyond the
write head, a jump over hinted content, a frame that does not decode, an op
inside a hinted segment that breaks the checksum chain) raise
`PlaybackError` naming the log and offset; a broker that finds its stored
copy of the log damaged answers DATA_LOSS, which ends playback too. Either
fails the shard: playback never goes on to rebuild some other state.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import trio

from ..broker.client import JournalClient
from ..broker.errors import JournalError
from ..broker.list_apply import get_journal
from ..broker.reader import open_reader
from ..errors import RecoveryLogError
from ..protocol import labels as L
from ..protocol import protocol as pb
from ..protocol.recoverylog import FsmHints, RecordedOp, Segment
from .author import AUTHOR_LABEL, fence
from .codec import frame_op
from .fsm import FSM, Outcome
from .hints import HintsError
from .recorder import LogAppender
from .stream import Desync, LogDecodeError, LogDecoder, OpRead

log = logging.getLogger(__name__)

STAGING_DIR = ".fnodes"
"""Subdirectory of the playback directory holding files while they play."""

SEEK_THRESHOLD = 1 << 20
"""Skip a dead stretch of log by re-opening the read past it only if it is
at least this long; shorter ones are read and discarded by the FSM."""


class PlaybackError(RecoveryLogError):
    """The log cannot be played back to the hinted state."""


async def check_recovery_log(client: JournalClient, journal: str) -> None:
    """Raise PlaybackError unless `journal` exists and is labelled
    `content-type: application/x-gazette-recoverylog` (Gazette's consumer
    refuses to play any other journal as a recovery log)."""
    found = await get_journal(client, journal)
    if found is None or found.spec is None:
        raise PlaybackError(f"recovery log {journal} does not exist")
    content_type = L.value_of(found.spec.labels, L.CONTENT_TYPE)
    if content_type != L.CONTENT_TYPE_RECOVERY_LOG:
        raise PlaybackError(
            f"journal {journal} is not a recovery log: expected label {L.CONTENT_TYPE} "
            f"{L.CONTENT_TYPE_RECOVERY_LOG} (got {content_type!r})"
        )


class PlayerState(enum.Enum):
    """Where a player is (Gazette's playerState)."""

    BACKFILL = "backfill"
    """Reading history, not yet at the write head seen when playback began."""
    TAIL = "tail"
    """Caught up, following new appends (a hot standby)."""
    EXIT_AT_HEAD = "exit-at-head"
    """Asked to finish once caught up."""
    INJECT_HANDOFF = "inject-handoff"
    """Asked to hand off: will append a no-op once caught up."""
    READ_HANDOFF_BARRIER = "read-handoff-barrier"
    """Appended the no-op; reading until it comes back."""
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Playback:
    """What a completed playback hands over: the log played (the hints' log),
    the FSM as of the last op read, and the directory holding the files."""

    log: str
    fsm: FSM
    directory: Path


class Player:
    """Plays a recovery log; see the module docstring.

    One player plays once. Typical use:

        player = Player()
        nursery.start_soon(player.play, hints, directory, client, appender)
        await player.wait_tailing()          # replica reports STANDBY
        ...
        player.inject_handoff(new_author())  # this member becomes primary
        playback = await player.wait_done()
    """

    def __init__(self) -> None:
        self._state = PlayerState.BACKFILL
        self._handoff: int | None = None  # None: not asked; 0: finish; else the author.
        self._tailing = trio.Event()
        self._done = trio.Event()
        self._result: Playback | None = None
        self._error: BaseException | None = None
        self._read_scope: trio.CancelScope | None = None
        # Whether the last hand-off no-op was refused (REGISTER_MISMATCH), so
        # it may or may not be in the log.
        self._unsure_of_handoff = False
        self._at_head = False
        self._played = False
        self._fsm: FSM | None = None
        self._staging: _Staging | None = None
        self.offset = 0
        """Offset of the next byte to read in the log being read."""
        self.write_head = 0
        """The highest write head seen of the log being read."""
        self.reading = ""
        """The log being read."""
        self.bytes_read = 0
        """Bytes of log read so far (hinted segments, and tailing's too)."""

    # ------------------------------------------------------------------
    # Status and control, for other tasks

    @property
    def state(self) -> PlayerState:
        return self._state

    @property
    def tailing(self) -> bool:
        """Whether playback has caught up with the log (and follows it)."""
        return self._tailing.is_set()

    async def wait_tailing(self) -> None:
        """Wait until playback first catches up with the log's write head."""
        await self._tailing.wait()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def wait_done(self) -> Playback:
        """Wait for playback to end; its result, or its error raised."""
        await self._done.wait()
        if self._error is not None:
            raise PlaybackError(f"playback failed: {self._error}") from self._error
        assert self._result is not None
        return self._result

    def local_path(self, path: str) -> Path | None:
        """Where the file the log has at `path` (`/a/b` or `a/b`) is on local
        disk right now: its staged copy while playing, None if there is no
        such live file. For inspection: the files are the player's."""
        fsm, staging = self._fsm, self._staging
        if fsm is None or staging is None:
            return None
        fnode = fsm.links.get("/" + path.lstrip("/"))
        if fnode is None:
            return None
        if self._state is PlayerState.COMPLETE:
            return staging.directory / path.lstrip("/")
        return staging.path(fnode) if fnode in staging.files else None

    def finish_at_write_head(self) -> None:
        """Complete playback once it has read through the write head."""
        self._request(0)

    def inject_handoff(self, author: int) -> None:
        """Complete playback by taking the log over as `author` (non-zero)."""
        if not 0 < author <= 0xFFFFFFFF:
            raise ValueError(f"hand-off author {author} must be a non-zero uint32")
        self._request(author)

    def _request(self, author: int) -> None:
        if self._handoff is not None:
            raise RuntimeError("finish_at_write_head or inject_handoff was already requested")
        self._handoff = author
        if self._state in (PlayerState.BACKFILL, PlayerState.TAIL):
            self._state = PlayerState.EXIT_AT_HEAD if author == 0 else PlayerState.INJECT_HANDOFF
        if self._at_head and self._read_scope is not None:
            # The read is blocked waiting for appends; stop it so the play
            # loop can act now.
            self._read_scope.cancel()

    # ------------------------------------------------------------------
    # Playback

    async def play(
        self,
        hints: FsmHints,
        directory: str | os.PathLike[str],
        client: JournalClient,
        appender: LogAppender,
    ) -> Playback:
        """Play `hints`' log into `directory` (emptied first) until a
        requested finish or hand-off completes; see the module docstring."""
        if self._played:
            raise RuntimeError("a Player plays once")
        self._played = True
        target = Path(directory)
        staging = self._staging = _Staging(target)
        try:
            try:
                fsm = FSM(hints)
            except HintsError as exc:
                raise PlaybackError(f"hints of log {hints.log}: {exc}") from exc
            self._fsm = fsm
            staging.prepare()
            await self._play(hints, fsm, staging, client, appender)
            staging.make_live(fsm)
            self._state = PlayerState.COMPLETE
            self._result = Playback(hints.log, fsm, target)
            return self._result
        except BaseException as exc:
            self._state = PlayerState.FAILED
            self._error = exc
            staging.abort()
            raise
        finally:
            self._done.set()

    async def _play(
        self,
        hints: FsmHints,
        fsm: FSM,
        staging: _Staging,
        client: JournalClient,
        appender: LogAppender,
    ) -> None:
        # Write barriers learn the transactional write head of every log the
        # hints name: hinted history must lie below it.
        heads: dict[str, int] = {}
        for name in [hints.log, *(s.log for s in fsm.hinted_segments)]:
            if name not in heads:
                response = await appender.append(name, b"")
                heads[name] = response.commit.end if response.commit is not None else 0
        for hinted in fsm.hinted_segments:
            head = heads[hinted.log]
            if hinted.first_offset >= head or hinted.last_offset > head:
                raise PlaybackError(
                    f"max write-head of {hinted.log} is {head}, vs hinted segment "
                    f"{hinted}; possible data loss"
                )

        decoder = LogDecoder(hints.log, 0)
        positioned = False
        while True:
            # Position the read: at the next hinted segment (skipping dead
            # stretches of log), else on through the hints' log.
            segment = fsm.next_hinted_segment
            if segment is not None:
                if (
                    not positioned
                    or decoder.log != segment.log
                    or (
                        not decoder.in_payload
                        and segment.first_offset - self.offset >= SEEK_THRESHOLD
                    )
                ):
                    decoder = LogDecoder(segment.log, segment.first_offset)
                    self.offset = segment.first_offset
            elif decoder.log != hints.log:
                raise PlaybackError(
                    f"reading {decoder.log} after all hints were read, not {hints.log}"
                )
            positioned = True
            self.reading = decoder.log
            self.write_head = heads[decoder.log]

            if self._caught_up(fsm, decoder, heads):
                if self._state is PlayerState.EXIT_AT_HEAD:
                    return
                if self._state is PlayerState.INJECT_HANDOFF:
                    await self._inject(hints, fsm, appender, heads)
                    continue

            if await self._read(hints, fsm, staging, client, decoder, heads):
                return

    def _caught_up(self, fsm: FSM, decoder: LogDecoder, heads: dict[str, int]) -> bool:
        """Whether everything up to the known write head of the log being
        read has been read. The first time, the player is tailing."""
        if self.offset < heads[decoder.log]:
            return False
        if fsm.next_hinted_segment is not None:
            raise PlaybackError(
                f"offset {decoder.log}:{self.offset} >= readThrough {heads[decoder.log]}, "
                "but FSM has unused hints; possible data loss"
            )
        if self._state is PlayerState.READ_HANDOFF_BARRIER:
            if self._unsure_of_handoff:
                # Our conditional no-op was refused and no copy of it is in
                # the log: inject again, after what we have now read.
                self._state = PlayerState.INJECT_HANDOFF
                return True
            raise PlaybackError(
                f"read {decoder.log} through {self.offset}, past the hand-off no-op, "
                "without finding it"
            )
        if self._state is PlayerState.BACKFILL:
            self._state = PlayerState.TAIL
        self._tailing.set()
        return True

    async def _inject(
        self, hints: FsmHints, fsm: FSM, appender: LogAppender, heads: dict[str, int]
    ) -> None:
        # A no-op sequenced after everything read so far, which also fences
        # the log to the hand-off author.
        assert self._handoff
        noop = RecordedOp(seq_no=fsm.next_seq_no, checksum=fsm.next_checksum, author=self._handoff)
        framed, _ = frame_op(noop)
        # The no-op may only fence the log if nobody fenced it since we looked:
        # an append retried after a lost acknowledgement must not take the
        # log back from a writer that handed off after our first copy.
        # (An empty append changes nothing and reports the registers.)
        seen = await appender.append(hints.log, b"")
        try:
            response = await appender.append(
                hints.log,
                framed,
                check_registers=_registers_unchanged(seen.registers),
                union_registers=fence(self._handoff),
            )
        except JournalError as exc:
            if exc.status != pb.Status.REGISTER_MISMATCH:
                raise
            # Someone fenced the log meanwhile, or this was our own retry
            # whose first copy landed: read on through the head to see which.
            head = await appender.append(hints.log, b"")
            assert head.commit is not None
            heads[hints.log] = max(heads[hints.log], head.commit.end)
            self._unsure_of_handoff = True
        else:
            assert response.commit is not None
            heads[hints.log] = max(heads[hints.log], response.commit.end)
            self._unsure_of_handoff = False
        self._state = PlayerState.READ_HANDOFF_BARRIER

    async def _read(
        self,
        hints: FsmHints,
        fsm: FSM,
        staging: _Staging,
        client: JournalClient,
        decoder: LogDecoder,
        heads: dict[str, int],
    ) -> bool:
        """Read on from `self.offset` until playback completes (True), or the
        play loop must act or re-position the read (False)."""
        name = decoder.log
        # Older logs are read only up to their write head at playback start.
        bound = 0 if name == hints.log else heads[name]
        with trio.CancelScope() as self._read_scope:
            # Opening the read at the write head of a quiet log blocks until
            # the next append: a finish or hand-off request must be able to
            # interrupt it, not only a read that already returned a chunk.
            if self.offset >= heads[name] and fsm.next_hinted_segment is None:
                if self._state is not PlayerState.TAIL:
                    self._read_scope = None
                    return False  # A request arrived: the play loop acts on it.
                self._at_head = True
            try:
                async with open_reader(
                    client, name, self.offset, block=True, end_offset=bound
                ) as reader:
                    async for chunk in reader:
                        self._at_head = False
                        if chunk.offset != self.offset:
                            self._jump(fsm, decoder, chunk.offset)
                        self.offset = chunk.end
                        self.bytes_read += len(chunk.content)
                        heads[name] = max(heads[name], chunk.write_head, chunk.end)
                        self.write_head = heads[name]
                        if self._apply(fsm, staging, decoder, chunk.content):
                            return True  # The hand-off no-op came back applied.
                        segment = fsm.next_hinted_segment
                        if segment is not None and self._reposition(segment, decoder):
                            return False
                        if self.offset >= heads[name]:
                            if segment is not None or self._state is not PlayerState.TAIL:
                                return False  # The play loop decides.
                            self._tailing.set()
                            self._at_head = True  # A request may now interrupt the read.
            finally:
                self._read_scope = None
                self._at_head = False
        return False

    def _reposition(self, segment: Segment, decoder: LogDecoder) -> bool:
        if segment.log != decoder.log:
            return True
        return not decoder.in_payload and segment.first_offset - self.offset >= SEEK_THRESHOLD

    def _apply(self, fsm: FSM, staging: _Staging, decoder: LogDecoder, content: bytes) -> bool:
        """Decode and play `content`; True if the hand-off no-op applied."""
        decoder.feed(content)
        handoff = self._handoff
        while True:
            try:
                event = decoder.next_event()
            except LogDecodeError as exc:
                raise PlaybackError(str(exc)) from exc
            if event is None:
                return False
            if isinstance(event, OpRead):
                op = event.op
                outcome = fsm.apply(op, event.body)
                if outcome is Outcome.APPLIED:
                    staging.reenact(op, fsm)
                elif outcome is Outcome.CHECKSUM_MISMATCH:
                    _refuse_a_broken_hinted_chain(fsm, op)
                    staging.skip_payload()
                    log.info("recovery log %s: did not apply %s: %s", op.log, op, outcome.value)
                else:
                    staging.skip_payload()
                    if outcome not in _ROUTINE:
                        log.info("recovery log %s: did not apply %s: %s", op.log, op, outcome.value)
                if handoff and op.author == handoff:
                    if self._state is not PlayerState.READ_HANDOFF_BARRIER:
                        raise PlaybackError(
                            f"recovery log {op.log} at offset {op.first_offset}: an op of the "
                            f"hand-off author {handoff:#x} before its no-op was written"
                        )
                    if outcome is Outcome.APPLIED:
                        return True
                    # Another writer won the race; catch up and inject again.
                    self._state = PlayerState.INJECT_HANDOFF
            elif isinstance(event, Desync):
                log.warning(
                    "recovery log %s: skipped %d bytes that are not a frame at offset %d",
                    decoder.log,
                    event.last_offset - event.first_offset,
                    event.first_offset,
                )
            else:
                staging.write(event.data)

    def _jump(self, fsm: FSM, decoder: LogDecoder, to: int) -> None:
        # Content was removed from the log; it is fatal only if hinted.
        hinted = fsm.next_hinted_segment
        if hinted is not None and hinted.last_offset != 0 and hinted.last_offset < to:
            raise PlaybackError(
                f"offset jumps over hinted segment of {decoder.log} (from: {self.offset}, "
                f"to: {to}, hinted range: {hinted.first_offset}-{hinted.last_offset}); "
                "possible data loss"
            )
        log.warning("recovery log %s: offset jump from %d to %d", decoder.log, self.offset, to)
        decoder.reset(to)
        self.offset = to


def _refuse_a_broken_hinted_chain(fsm: FSM, op: RecordedOp) -> None:
    """Raise PlaybackError if `op`, failing its checksum, lies in the hinted
    segment being followed.

    The hints name the author, sequence numbers and offsets of the history
    to rebuild; an op of that author, with the sequence number playback
    expects, inside that segment, can only fail the CRC-32C chain if log
    bytes changed (in this op, or in the one before it, whose bytes the
    chain covers). Upstream logs such an op and plays on, to fail later on
    unused hints; stopping here names the damage. Outside hinted segments a
    mismatch is a dead branch of concurrent recorders, and is skipped."""
    segment = fsm.next_hinted_segment
    if segment is None or segment.author != op.author:
        return
    if segment.log and segment.log != op.log:
        return
    if op.first_offset < segment.first_offset or (
        segment.last_offset and op.first_offset >= segment.last_offset
    ):
        return
    if op.seq_no < segment.first_seq_no or (
        segment.last_seq_no and op.seq_no > segment.last_seq_no
    ):
        return
    raise PlaybackError(
        f"recovery log {op.log} at offset {op.first_offset}: op {op.seq_no} of author "
        f"{op.author:#x} carries checksum {op.checksum:#010x}, but the history the hints "
        f"describe continues with {fsm.next_checksum:#010x}: log content changed (in this op "
        "or the one before it); refusing to play on and rebuild a different state "
        "(possible data loss)"
    )


_ROUTINE = frozenset({Outcome.FNODE_NOT_TRACKED, Outcome.NOT_HINTED_AUTHOR, Outcome.WRONG_SEQ_NO})
"""Rejections that are routine in playback (skipped ops of dead files, dead
branches, ops before the hinted start); others are logged."""


class _Staging:
    """Local files of a playback: staged by Fnode, then linked into place."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.staging = directory / STAGING_DIR
        self.files: dict[int, int] = {}  # Fnode -> open descriptor.
        self._write_fd: int | None = None  # Target of the payload being read.
        self._write_pos = 0

    def path(self, fnode: int) -> Path:
        return self.staging / str(fnode)

    def prepare(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.staging.mkdir(parents=True)

    def reenact(self, op: RecordedOp, fsm: FSM) -> None:
        self._write_fd = None
        if op.create is not None:
            fd = os.open(self.path(op.seq_no), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            self.files[op.seq_no] = fd
        elif op.unlink is not None:
            fnode = op.unlink.fnode
            if fnode not in fsm.live_nodes:
                os.close(self.files.pop(fnode))
                os.unlink(self.path(fnode))
        elif op.write is not None:
            self._write_fd = self.files[op.write.fnode]
            self._write_pos = op.write.offset
            if op.write.length == 0:
                self._write_fd = None

    def skip_payload(self) -> None:
        self._write_fd = None

    def write(self, data: memoryview) -> None:
        fd = self._write_fd
        if fd is None:
            return
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], self._write_pos + written)
        self._write_pos += written

    def make_live(self, fsm: FSM) -> None:
        if fsm.has_remaining_hints():
            raise PlaybackError("playback ended with hinted segments or Fnodes not yet read")
        for fnode, node in fsm.live_nodes.items():
            fd = self.files.pop(fnode)
            for link in sorted(node.links):
                target = self.directory / link.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(self.path(fnode), target)
            os.close(fd)
            os.unlink(self.path(fnode))
        if self.files:
            raise PlaybackError(f"staged files {sorted(self.files)} are not live in the FSM")
        self.staging.rmdir()
        for path, content in fsm.properties.items():
            target = self.directory / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "x", encoding="utf-8") as out:
                out.write(content)

    def abort(self) -> None:
        for fd in self.files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.files.clear()
        shutil.rmtree(self.directory, ignore_errors=True)


def _registers_unchanged(registers: pb.LabelSet | None) -> pb.LabelSelector:
    """A check that the log's author fence is still what `registers` held:
    the same author, or still no author at all."""
    authors = L.values_of(registers, AUTHOR_LABEL)
    if authors:
        return pb.LabelSelector(include=L.label_set({AUTHOR_LABEL: authors[0]}))
    return pb.LabelSelector(exclude=L.label_set({AUTHOR_LABEL: ""}))
