"""A shard's life on one member: standby, primary, failed, gone.

When the allocator assigns a shard to this member, the `ShardService` starts a
`LocalShard` in its own cancel scope and nursery; when the assignment goes
away (or the member stops) the scope is cancelled and everything the shard
started ends inside it: readers, the transaction driver, commits in flight,
the recovery-log player or recorder, the append services.

The phases follow Gazette's `shard.go` and `recovery.go`:

- standby (any slot): with a recovery log, play it from the hints in etcd
  into a local directory, reporting BACKFILL, then STANDBY once the player
  tails the live log; without one, report STANDBY at once.
- primary (slot 0): complete playback by injecting a hand-off (which fences
  the previous primary's recorder), open a Recorder, build the application's
  Store over it, restore the checkpoint, store the recovered hints as a
  backup, report PRIMARY, then run transactions: one reader task per source
  journal feeding the driver. Recorded hints are stored periodically.
- failed: an error ends the shard's life with status FAILED carrying the
  error (cut to 2,048 characters, as Gazette's); the member goes on. A
  permanent error (the application's, a fenced store, a malformed
  message) leaves the shard failed until its assignment is removed. A
  transient one (a database, broker or etcd out of reach, a full disk:
  `transient`) starts the shard over after a backoff of 1 s doubling to
  30 s; meanwhile its FAILED error begins "retrying, transient (why)".

This module owns one shard's lifetime and implements `contracts.Shard`. The
service decides which shards run; the driver runs transactions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from ..allocator import member as allocator_member
from ..allocator.state import LocalItem
from ..broker.append_service import AppendService, open_append_service
from ..broker.client import JournalClient
from ..broker.errors import JournalError
from ..errors import ConsumerError
from ..message import Clock, Publisher, Sequencer
from ..message.sequencer import DEFAULT_BUFFER_SIZE
from ..protocol import consumer as pc
from ..recoverylog import (
    HintsError,
    PlaybackError,
    Player,
    PlayerState,
    assignment_guard,
    check_recovery_log,
    fetch_hints,
    new_author,
    open_recorder,
    store_recorded_hints,
    store_recovered_hints,
)
from . import shard_spec
from .contracts import Application, Store
from .driver import Completion, Hooks, Progress, run_transactions
from .intake import SequencedIntake, read_source, start_offsets
from .stores.errors import fenced_or_same
from .transaction import Timings, Transaction
from .transient import transient_reason

if TYPE_CHECKING:
    from ..etcd import Etcd

log = logging.getLogger(__name__)

T = TypeVar("T")

Code = pc.ReplicaStatusCode

# Seconds before a shard failed by a transient error starts over, by retry
# (the last repeats): quick for a blip, then gentle on what is down.
RETRY_BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
PLAYBACK_REPORT_INTERVAL = 1.0
"""Seconds between playback progress reports to the observer (metrics)."""

PLAYBACK_LOG_INTERVAL = 10.0
"""Seconds between progress lines of a long playback in the log."""

# How often a primary writes its recorder's hints to etcd (Gazette: 5m).
HINTS_INTERVAL = 300.0
# Size of the channel between source readers and the driver, in batches
# (a batch is one read chunk's messages: up to ~14k small ones). 8 keeps the
# driver fed while bounding what waits in memory on a slow store (measured:
# 64 held 2x the RSS at the same throughput).
READ_CHANNEL_BATCHES = 8


class ShardStopped(ConsumerError):
    """The shard stopped (or failed) before the awaited condition held."""


class ShardObserver:
    """Receives a shard's events; the runtime's metrics implement it.

    Every method is optional to override and must not block.
    """

    def status_changed(self, shard: LocalShard, status: pc.ReplicaStatus) -> None:
        pass

    def transaction_committed(
        self, shard: LocalShard, txn: Transaction, timings: Timings, checkpoint: pc.Checkpoint
    ) -> None:
        pass

    def transaction_completed(self, shard: LocalShard, progress: Progress) -> None:
        pass

    def playback_started(self, shard: LocalShard, log: str) -> None:
        """Recovery-log playback of `log` began for this replica."""

    def playback_progress(self, shard: LocalShard, bytes_read: int) -> None:
        """Playback has read `bytes_read` bytes of log so far (about once a second)."""

    def playback_caught_up(self, shard: LocalShard, bytes_read: int, seconds: float) -> None:
        """Playback reached the log's write head (a standby now tails it, a
        primary completes): `bytes_read` in `seconds` since it began."""

    def stopped(self, shard: LocalShard) -> None:
        pass


@dataclass
class ShardContext:
    """What every shard of a member shares (owned by the Service)."""

    app: Application
    etcd: Etcd
    journals: JournalClient
    session: allocator_member.MemberSession
    data_dir: Path
    observer: ShardObserver
    wall_clock_ns: Callable[[], int] = time.time_ns
    hints_interval: float = HINTS_INTERVAL


class LocalShard:
    """One shard assigned to this member; see the module docstring."""

    def __init__(self, ctx: ShardContext, local: LocalItem) -> None:
        self._ctx = ctx
        self._local = local
        self._scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._append_service: AppendService | None = None
        self._promoted = trio.Event()
        self._ready = trio.Event()
        self._finished = trio.Event()
        self._progress_changed = trio.Event()
        self.progress_state = Progress()
        self.status = pc.ReplicaStatus()
        self.error: BaseException | None = None
        self.store: Store | None = None
        self.started_at = trio.current_time()
        # The local directory a recovery log plays into, removed at the end.
        self._directory: Path | None = None
        for source in local.item.spec.sources:
            self.progress_state.read_through.setdefault(source.journal, 0)
        if local.is_primary:
            self._promoted.set()

    # ------------------------------------------------------------------
    # contracts.Shard

    @property
    def id(self) -> str:
        return self._local.item.id

    @property
    def fqn(self) -> str:
        return self._local.item.kv.key.decode()

    @property
    def spec(self) -> pc.ShardSpec:
        return self._local.item.spec

    @property
    def store_directory(self) -> Path:
        """The durable local directory of this shard's store when it has no
        recovery log, kept across assignments (see `stores.directories`)."""
        from .stores.directories import shard_store_directory  # no store imports at load

        return shard_store_directory(self._ctx.data_dir, self.id)

    @property
    def assignment(self) -> LocalItem:
        """This member's assignment of the shard, with all its replicas."""
        return self._local

    @property
    def cancel_scope(self) -> trio.CancelScope:
        return self._scope

    @property
    def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError(f"shard {self.id} is not running")
        return self._nursery

    @property
    def journal_client(self) -> JournalClient:
        return self._ctx.journals

    @property
    def append_service(self) -> AppendService:
        if self._append_service is None:
            raise RuntimeError(f"shard {self.id} is not running")
        return self._append_service

    def progress(self) -> tuple[dict[str, int], dict[str, int]]:
        return dict(self.progress_state.read_through), dict(self.progress_state.publish_at)

    # ------------------------------------------------------------------
    # Control, for the service and the resolver

    @property
    def is_primary(self) -> bool:
        return self._promoted.is_set()

    @property
    def ready(self) -> bool:
        """The store is restored and transactions run (Gazette's storeReadyCh)."""
        return self._ready.is_set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def transition(self, local: LocalItem) -> None:
        """The shard's spec or assignment changed (same assignment key)."""
        self._local = local
        if local.is_primary:
            self._promoted.set()

    def stop(self) -> None:
        self._scope.cancel()

    async def wait_finished(self) -> None:
        """Wait until the shard's task has ended (its store destroyed)."""
        await self._finished.wait()

    async def wait_ready(self) -> None:
        """Wait until the store is ready; ShardStopped if the shard ends first."""
        if self._ready.is_set():
            return
        async with trio.open_nursery() as nursery:

            async def stopped() -> None:
                await self._finished.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(stopped)
            await self._ready.wait()
            nursery.cancel_scope.cancel()
        if not self._ready.is_set():
            raise ShardStopped(f"shard {self.id} stopped before its store was ready")

    async def wait_read_through(self, offsets: dict[str, int]) -> None:
        """Wait until a completed transaction read through `offsets` (only
        this shard's sources count); ShardStopped if it stops first."""
        wanted = {j: o for j, o in offsets.items() if j in self.progress_state.read_through and o}
        while any(self.progress_state.read_through.get(j, 0) < o for j, o in wanted.items()):
            if self._finished.is_set():
                raise ShardStopped(f"shard {self.id} stopped at {self.progress_state.read_through}")
            changed = self._progress_changed
            async with trio.open_nursery() as nursery:

                async def stopped() -> None:
                    await self._finished.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(stopped)
                await changed.wait()
                nursery.cancel_scope.cancel()

    # ------------------------------------------------------------------
    # Life

    async def run(self) -> None:
        """Serve the shard until cancelled (or failed for good). Never raises.

        A transient failure (`transient.transient_reason`) starts the shard
        over after a backoff, its status FAILED with an error that says it
        is retrying and why; a permanent one leaves it FAILED.
        """
        attempt = 0
        try:
            with self._scope:
                while True:
                    try:
                        await self._run_once()
                        return
                    except Exception as exc:
                        error = _root_error(exc)
                        reason = transient_reason(error)
                        if reason is None:
                            raise
                    attempt += 1
                    self.error = error
                    delay = RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF)) - 1]
                    log.warning(
                        "shard %s failed (%s; retry %d in %gs): %s",
                        self.id,
                        reason,
                        attempt,
                        delay,
                        error,
                    )
                    await self._report_failure(
                        error, retrying=f"transient ({reason}); retry {attempt} in {delay:g}s"
                    )
                    await trio.sleep(delay)
                    log.info("shard %s: starting over (retry %d)", self.id, attempt)
        except Exception as exc:
            error = _root_error(exc)
            self.error = error
            log.error("shard %s failed: %s", self.id, error, exc_info=error)
            await self._report_failure(error)
        finally:
            self._finished.set()
            self._progress_changed.set()
            self._ctx.observer.stopped(self)

    async def _run_once(self) -> None:
        """One life of the shard: serve until cancelled or failed; what it
        built (store, played-back directory) goes with it."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                async with open_append_service(self._ctx.journals) as appends:
                    self._append_service = appends
                    await self._serve(appends)
        finally:
            self._ready = trio.Event()
            if self.store is not None:
                store, self.store = self.store, None
                try:
                    store.destroy()
                except Exception:
                    log.exception("shard %s: store.destroy failed", self.id)
            if self._directory is not None:
                shutil.rmtree(self._directory, ignore_errors=True)
                self._directory = None

    async def _serve(self, appends: AppendService) -> None:
        ctx, spec = self._ctx, self.spec
        log_name = shard_spec.recovery_log(spec)
        nursery = self.nursery
        player: Player | None = None

        if log_name:
            directory = playback_root(ctx.data_dir) / f"{spec.id.replace('/', '_')}-{id(self):x}"
            self._directory = directory
            # etcd or the broker may be briefly unreachable: retry those, but
            # not hints that do not decode or a log of the wrong kind.
            fetched = await _retrying(
                lambda: fetch_hints(ctx.etcd, spec),
                f"shard {self.id}: fetching hints",
                give_up=(HintsError,),
            )
            hints = fetched.first()
            await _retrying(
                lambda: check_recovery_log(ctx.journals, hints.log),
                f"shard {self.id}: checking recovery log {hints.log}",
                give_up=(PlaybackError, JournalError),
            )
            player = Player()
            # A primary plays back too before it serves: BACKFILL until then,
            # as Gazette's replicas report.
            await self._set_status(Code.BACKFILL)
            nursery.start_soon(player.play, hints, directory, ctx.journals, appends)
            nursery.start_soon(self._report_standby_when_tailing, player)
            nursery.start_soon(self._watch_playback, player, hints.log)
        elif not self.is_primary:
            await self._set_status(Code.STANDBY)

        await self._promoted.wait()
        if player is not None:
            log.info("shard %s: promoted to primary; completing recovery-log playback", self.id)

        recorder = None
        recorder_appends: AppendService | None = None
        recovered_hints = None
        if player is not None:
            author = new_author()
            player.inject_handoff(author)
            playback = await player.wait_done()
            recovered_hints = playback.fsm.build_hints(log_name)
            # The recorder's appends are separate: the store waits on them
            # itself, and the driver's commit barrier must not include them.
            recorder_appends = AppendService(ctx.journals)
            await nursery.start(recorder_appends.run)
            recorder = await open_recorder(
                log=log_name,
                fsm=playback.fsm,
                author=author,
                directory=playback.directory,
                appender=recorder_appends,
            )

        self.store = await ctx.app.new_store(self, recorder)
        checkpoint = await self.store.restore_checkpoint(self)

        if recovered_hints is not None:
            guard = [
                assignment_guard(
                    self._local.assignment.key, self._local.assignment.kv.create_revision
                )
            ]
            await _retrying(
                lambda: store_recovered_hints(ctx.etcd, spec, recovered_hints, guard=guard),
                f"shard {self.id}: storing recovered hints",
            )
        if recorder is not None:
            nursery.start_soon(self._store_hints_periodically, recorder)

        await self._set_status(Code.PRIMARY)
        self._ready.set()
        # Only now: the store is restored and transactions start.
        log.info("shard %s: serving as primary", self.id)
        await self._run_transactions(checkpoint, appends)

    async def _run_transactions(self, checkpoint: pc.Checkpoint, appends: AppendService) -> None:
        ctx, spec = self._ctx, self.spec
        nursery = self.nursery
        app = ctx.app

        def message_type_of(journal_spec: Any) -> Any:
            return app.new_message(journal_spec)

        offsets = start_offsets(spec, checkpoint)
        sequencer = Sequencer.from_checkpoint(
            checkpoint, buffer_size=spec.ring_buffer_size or DEFAULT_BUFFER_SIZE
        )
        intake = SequencedIntake(sequencer, ctx.journals, message_type_of, offsets)
        clock = Clock.at(ctx.wall_clock_ns())
        publisher = Publisher(appends, clock)
        send, receive = trio.open_memory_channel[Any](READ_CHANNEL_BATCHES)
        self.progress_state.read_through.update(offsets)

        for journal, offset in sorted(offsets.items()):
            nursery.start_soon(
                read_source, ctx.journals, journal, offset, message_type_of, send.clone()
            )

        def committed(txn: Transaction, timings: Timings, cp: pc.Checkpoint) -> None:
            # The next transaction's messages get a later clock.
            clock.update(ctx.wall_clock_ns())
            ctx.observer.transaction_committed(self, txn, timings, cp)

        def completed(_: Completion, progress: Progress) -> None:
            ctx.observer.transaction_completed(self, progress)

        def progress_changed() -> None:
            event, self._progress_changed = self._progress_changed, trio.Event()
            event.set()

        await run_transactions(
            shard=self,
            app=app,
            store=self.store,  # type: ignore[arg-type]
            publisher=publisher,
            appender=appends,
            intake=intake,
            events=receive,
            events_in=send,
            checkpoint=checkpoint,
            progress=self.progress_state,
            progress_changed=progress_changed,
            hooks=Hooks(on_complete=completed, on_started_commit=committed),
            task_nursery=nursery,
        )

    async def _watch_playback(self, player: Player, log_name: str) -> None:
        """Tell the log and the observer how playback goes: its start,
        progress while it reads (a line every PLAYBACK_LOG_INTERVAL), and
        the bytes and time it took to reach the write head: the end of
        playback for a primary, the start of tailing for a standby."""
        observer = self._ctx.observer
        started = trio.current_time()
        log.info("shard %s: playing back recovery log %s", self.id, log_name)
        observer.playback_started(self, log_name)
        caught_up = trio.Event()

        async def catch_up() -> None:
            async with trio.open_nursery() as race:

                async def tailing() -> None:
                    await player.wait_tailing()
                    # A primary is caught up when its hand-off completes.
                    if not self._promoted.is_set():
                        race.cancel_scope.cancel()

                async def done() -> None:
                    with contextlib.suppress(PlaybackError):
                        await player.wait_done()
                    race.cancel_scope.cancel()

                race.start_soon(tailing)
                race.start_soon(done)
            caught_up.set()

        async with trio.open_nursery() as watch:
            watch.start_soon(catch_up)
            logged = started
            while not caught_up.is_set():
                with trio.move_on_after(PLAYBACK_REPORT_INTERVAL):
                    await caught_up.wait()
                observer.playback_progress(self, player.bytes_read)
                now = trio.current_time()
                if not caught_up.is_set() and now - logged >= PLAYBACK_LOG_INTERVAL:
                    logged = now
                    log.info(
                        "shard %s: playing back %s: %d bytes read, at offset %d of %d",
                        self.id,
                        player.reading or log_name,
                        player.bytes_read,
                        player.offset,
                        player.write_head,
                    )
        if player.state is PlayerState.FAILED:
            return  # the shard fails with the playback's error
        seconds = trio.current_time() - started
        observer.playback_caught_up(self, player.bytes_read, seconds)
        if player.done:
            log.info(
                "shard %s: played back recovery log %s: %d bytes in %.2f s",
                self.id,
                log_name,
                player.bytes_read,
                seconds,
            )
            return
        log.info(
            "shard %s: caught up with recovery log %s: %d bytes in %.2f s; tailing it",
            self.id,
            log_name,
            player.bytes_read,
            seconds,
        )
        # A standby keeps tailing: keep its byte count current until it ends
        # (promoted: the hand-off completes it).
        while not player.done:
            with trio.move_on_after(PLAYBACK_REPORT_INTERVAL):
                with contextlib.suppress(PlaybackError):
                    await player.wait_done()
            observer.playback_progress(self, player.bytes_read)
        if player.state is PlayerState.COMPLETE:
            log.info(
                "shard %s: completed playback of %s as primary: %d bytes read in all",
                self.id,
                log_name,
                player.bytes_read,
            )

    async def _report_standby_when_tailing(self, player: Player) -> None:
        await player.wait_tailing()
        if not self.is_primary:
            await self._set_status(Code.STANDBY)

    async def _store_hints_periodically(self, recorder: Any) -> None:
        spec = self.spec
        while True:
            await trio.sleep(self._ctx.hints_interval)
            try:
                hints = await recorder.build_hints()
            except Exception as exc:
                # This task may be the first to see the recorder fenced by a
                # new primary: fail the shard saying so, as a commit would.
                translated = fenced_or_same(exc, self.fqn, recorder.log)
                if translated is exc:
                    raise
                raise translated from exc
            guard = [
                assignment_guard(
                    self._local.assignment.key, self._local.assignment.kv.create_revision
                )
            ]
            try:
                await store_recorded_hints(self._ctx.etcd, spec, hints, guard=guard)
            except Exception as exc:
                # Hints are advisory: a missed write is retried next interval.
                log.warning(
                    "shard %s: storing recorded hints failed (will retry): %s", self.id, exc
                )

    # ------------------------------------------------------------------
    # Status

    async def _set_status(
        self, code: pc.ReplicaStatusCode, errors: list[str] | None = None
    ) -> None:
        status = pc.ReplicaStatus(code=code, errors=list(errors or []))
        self.status = status
        if code != Code.FAILED:
            self.error = None  # serving again after a transient failure
        self._ctx.observer.status_changed(self, status)
        await _retrying(
            lambda: self._ctx.session.update_status(self.id, status),
            f"shard {self.id}: updating status to {code.name}",
            give_up=(allocator_member.NotAssigned,),
        )

    async def _report_failure(self, exc: BaseException, *, retrying: str | None = None) -> None:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if retrying is not None:
            text = f"retrying, {retrying}: {text}"
        message = shard_spec.truncate_error(text)
        # Reporting must survive the shard's own scope having ended, but not
        # hang a stopping member forever.
        with trio.move_on_after(30):
            try:
                await self._set_status(Code.FAILED, [message])
            except Exception as report_error:
                log.error("shard %s: could not report its failure: %s", self.id, report_error)


def playback_root(data_dir: Path) -> Path:
    """Where a member's shards play their recovery logs back: one directory
    per shard assignment, removed when the assignment ends."""
    return data_dir / "shards"


def remove_playback_leftovers(data_dir: Path) -> tuple[int, int]:
    """Remove the playback directories a previous process of this member
    left behind (it was killed, so never removed its own); returns how many
    and their bytes. Only for a caller that owns `data_dir` exclusively (the
    data directory's lock): nothing in them is needed, as each assignment
    plays back into a fresh directory."""
    root = playback_root(data_dir)
    try:
        leftovers = list(root.iterdir())
    except FileNotFoundError:
        return 0, 0
    size = 0
    for path in leftovers:
        for folder, _, files in os.walk(path):
            for name in files:
                with contextlib.suppress(OSError):
                    size += os.lstat(os.path.join(folder, name)).st_size
        shutil.rmtree(path, ignore_errors=True)
    return len(leftovers), size


def _root_error(exc: BaseException) -> BaseException:
    """The error that failed a shard, out of the ExceptionGroups its nurseries
    wrapped it in (the first one that is not a cancellation)."""
    while isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if not isinstance(e, trio.Cancelled)]
        if not leaves:
            break
        exc = leaves[0]
    return exc


async def _retrying(
    attempt: Callable[[], Awaitable[T]],
    what: str,
    *,
    give_up: tuple[type[BaseException], ...] = (),
) -> T:
    """Run `attempt` until it succeeds, backing off as Gazette does (the
    group is usually converging on who owns what)."""
    for n in range(1_000_000):
        try:
            return await attempt()
        except give_up:
            raise
        except Exception as exc:
            delay = 0.05 if n < 2 else 0.1 if n < 4 else 1.0 if n < 6 else 5.0
            if n:
                log.warning("%s failed (attempt %d, retrying in %gs): %s", what, n + 1, delay, exc)
            await trio.sleep(delay)
    raise RuntimeError(f"{what}: gave up")  # pragma: no cover


__all__ = ["HINTS_INTERVAL", "LocalShard", "ShardContext", "ShardObserver", "ShardStopped"]
