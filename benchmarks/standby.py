"""Time to take a shard over with a hot standby, against a cold playback.

Two measurements, each comparing the two ways of becoming a shard's primary
on the same log in the same run:

1. The recovery log alone (the mechanism). A Recorder writes live files
   (64 KiB writes; 100 MB, 20 MB with --quick) into a log on the embedded
   journal server. A *hot* Player has tailed it all along: its takeover is
   `inject_handoff` until a new Recorder is open on the log (the hand-off
   no-op appended, read back, files linked into place). A *cold* Player
   starts from the recorder's hints, plays the whole live content, hands off
   and opens a Recorder. Best of three rounds of each.

2. A consumer group (in-process: journal core in memory, MemoryEtcd,
   members through `open_consumer`) whose shard keeps an SQLite database of
   100 MB (10 MB with --quick) in `SQLiteStore`, with `hot_standbys: 1`.
   The primary is crashed, and the clock runs from its lease being gone
   until another member serves the shard as a ready primary (store open,
   checkpoint restored, status PRIMARY): once onto the standby that tailed
   the log, then, with `hot_standbys` set to 0, once more onto a member that
   had no replica and must play the log from hints. Failure detection is not
   in the figure: an in-process crash revokes the lease at once, where a
   real one waits for the lease TTL either way.

The figure is the hot takeover's time; the floor is the cold one, so the
ratio is the fraction of a cold playback a hot standby still pays (smaller
is better).
"""

from __future__ import annotations

import contextlib
import datetime
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from gazette_trio.allocator import apply_shard_specs
from gazette_trio.broker.append_service import AppendService, open_append_service
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.server import JournalServerCore, MemoryStorage
from gazette_trio.consumer.member import open_consumer
from gazette_trio.consumer.shard import LocalShard
from gazette_trio.consumer.stores.sqlite import SQLiteStore
from gazette_trio.etcd import MemoryEtcd
from gazette_trio.message import Publisher, fixed_mapping
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.author import new_author
from gazette_trio.recoverylog.fsm import FSM
from gazette_trio.recoverylog.player import Player
from gazette_trio.recoverylog.recorder import Recorder, open_recorder

from .harness import Report

MIB = 1 << 20
GROUP = "standby"
TAKEOVER_LIMIT = 120.0
"""A takeover that takes longer fails the benchmark instead of hanging it."""


# ----------------------------------------------------------------------
# 1. The recovery log alone


async def _record_live_files(recorder: Recorder, total: int) -> None:
    block = random.Random(7).randbytes(64 * 1024)
    written = 0
    file_no = 0
    while written < total:
        with recorder.create(f"data/{file_no:04}.bin") as f:
            while written < total and f.offset < 16 * MIB:
                f.write(block)
                written += len(block)
        file_no += 1
        await recorder.barrier()


async def _take_over(player: Player, author: int, log: str, appender: AppendService) -> Recorder:
    player.inject_handoff(author)
    with trio.fail_after(TAKEOVER_LIMIT):
        playback = await player.wait_done()
    return await open_recorder(
        log=log, fsm=playback.fsm, author=author, directory=playback.directory, appender=appender
    )


async def _caught_up(player: Player, log: str, core: JournalServerCore) -> None:
    await player.wait_tailing()
    while player.offset < core.write_head(log):
        await trio.sleep(0.001)


async def _measure_log(report: Report, total: int) -> None:
    log = "bench/standby-log"
    work = Path(tempfile.mkdtemp(prefix="bench-standby-"))
    try:
        core = JournalServerCore(MemoryStorage())
        client = LocalJournalClient(core)
        await apply_journals(
            client, [upsert(new_journal_spec(log, content_type=CONTENT_TYPE_RECOVERY_LOG))]
        )
        async with open_append_service(client) as appender, trio.open_nursery() as nursery:
            (work / "primary").mkdir()
            recorder = await open_recorder(
                log=log,
                fsm=FSM(FsmHints(log=log)),
                author=new_author(),
                directory=work / "primary",
                appender=appender,
            )
            hot = Player()
            nursery.start_soon(hot.play, FsmHints(log=log), work / "hot-0", client, appender)
            await _record_live_files(recorder, total)
            hints = await recorder.build_hints()
            log_bytes = core.write_head(log)

            best_hot = best_cold = float("inf")
            for round_ in range(3):
                # Cold: a new player from the hints, the whole way.
                cold = Player()
                start = time.perf_counter()
                nursery.start_soon(cold.play, hints, work / f"cold-{round_}", client, appender)
                await _take_over(cold, new_author(), log, appender)
                best_cold = min(best_cold, time.perf_counter() - start)
                shutil.rmtree(work / f"cold-{round_}")

                # Hot: the player that tailed the log (and the cold hand-off).
                await _caught_up(hot, log, core)
                start = time.perf_counter()
                taken = await _take_over(hot, new_author(), log, appender)
                best_hot = min(best_hot, time.perf_counter() - start)
                shutil.rmtree(work / f"hot-{round_}")
                hints = await taken.build_hints()
                if round_ < 2:
                    hot = Player()
                    nursery.start_soon(
                        hot.play, hints, work / f"hot-{round_ + 1}", client, appender
                    )
            nursery.cancel_scope.cancel()

        mb = log_bytes / 1e6
        report.add(
            GROUP,
            f"recovery log of {mb:,.0f} MB live files: hot standby hand-off",
            best_hot * 1e3,
            "ms",
            floor=best_cold * 1e3,
            floor_name="cold playback from hints, hand-off",
            higher_is_better=False,
            target_ratio=0.05,
            note=f"cold playback {mb / best_cold:,.0f} MB/s",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------
# 2. A consumer group

ROOT = "/gazette/consumers/bench-standby"
ROWS = "rows/part-000"
SHARD = "rows-000"
LOG_PREFIX = "recovery/rows"
ROW_BYTES = 1000


class _Rows:
    """Stores each `{"k": int, "v": str}` message as a row of an SQLite table."""

    async def new_store(self, shard: Any, recorder: Any) -> SQLiteStore:
        return await SQLiteStore.open(
            recorder, bootstrap="CREATE TABLE IF NOT EXISTS rows (k INTEGER PRIMARY KEY, v TEXT)"
        )

    def new_message(self, spec: Any) -> type:
        return dict

    async def consume_message(
        self, shard: Any, store: SQLiteStore, envelope: Any, publisher: Any
    ) -> None:
        m = envelope.message
        store.db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?)", (m["k"], m["v"]))

    async def finalize_txn(self, shard: Any, store: SQLiteStore, publisher: Any) -> None:
        return None


def _spec(hot_standbys: int) -> pc.ShardSpec:
    return pc.ShardSpec(
        id=SHARD,
        sources=[pc.ShardSpecSource(journal=ROWS)],
        recovery_log_prefix=LOG_PREFIX,
        hint_prefix="/gazette/hints",
        hint_backups=2,
        hot_standbys=hot_standbys,
        max_txn_duration=datetime.timedelta(seconds=1),
    )


class _ReadThrough:
    """A member's journal client, noting how far it has read the recovery log."""

    def __init__(self, inner: LocalJournalClient, journal: str) -> None:
        self._inner = inner
        self._journal = journal
        self.offset = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextlib.asynccontextmanager
    async def read(self, request: pb.ReadRequest) -> AsyncIterator[Any]:
        async with self._inner.read(request) as stream:
            if request.journal != self._journal:
                yield stream
                return
            yield _Noting(stream, self)


class _Noting:
    def __init__(self, stream: Any, owner: _ReadThrough) -> None:
        self._stream = stream
        self._owner = owner

    def __aiter__(self) -> _Noting:
        return self

    async def __anext__(self) -> pb.ReadResponse:
        response: pb.ReadResponse = await self._stream.__anext__()
        if response.content:
            end = response.offset + len(response.content)
            self._owner.offset = max(self._owner.offset, end)
        return response


class _Group:
    def __init__(
        self, nursery: trio.Nursery, core: JournalServerCore, etcd: MemoryEtcd, data: Path
    ):
        self.nursery = nursery
        self.core = core
        self.client = LocalJournalClient(core)
        self.etcd = etcd
        self.data = data
        self.members: dict[str, tuple[trio.CancelScope, _ReadThrough, list[Any], trio.Event]] = {}

    async def add(self, suffix: str) -> None:
        scope = trio.CancelScope()
        journals = _ReadThrough(self.client, f"{LOG_PREFIX}/{SHARD}")
        consumer: list[Any] = []
        done = trio.Event()
        self.members[suffix] = (scope, journals, consumer, done)

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with scope:
                    async with open_consumer(
                        _Rows(),  # type: ignore[arg-type]
                        etcd=self.etcd,
                        journals=journals,  # type: ignore[arg-type]
                        root=ROOT,
                        zone="local",
                        suffix=suffix,
                        endpoint=f"http://{suffix}.in-process.invalid:8080",
                        data_dir=self.data / suffix,
                        apply_delay=0.0,
                    ) as c:
                        consumer.append(c)
                        task_status.started()
                        await trio.sleep_forever()
            finally:
                done.set()

        await self.nursery.start(run)

    def shard(self, suffix: str) -> LocalShard | None:
        _, _, consumer, _ = self.members[suffix]
        return consumer[0].service.shards.get(SHARD) if consumer else None

    async def ready_primary(self, suffix: str) -> LocalShard:
        with trio.move_on_after(TAKEOVER_LIMIT):
            while True:
                shard = self.shard(suffix)
                if shard is not None and shard.is_primary and shard.ready and not shard.finished:
                    return shard
                await trio.sleep(0.001)
        shard = self.shard(suffix)
        raise RuntimeError(
            f"member {suffix} did not become the shard's ready primary in {TAKEOVER_LIMIT}s "
            f"(shard: {shard and shard.status}, error: {shard and shard.error})"
        )

    async def crash(self, suffix: str) -> None:
        scope, _, _, done = self.members.pop(suffix)
        scope.cancel()
        await done.wait()

    async def caught_up(self, suffix: str) -> None:
        _, journals, _, _ = self.members[suffix]
        head = self.core.write_head(f"{LOG_PREFIX}/{SHARD}")
        while journals.offset < head:
            await trio.sleep(0.001)


async def _measure_group(report: Report, db_size: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-standby-group-"))
    try:
        core = JournalServerCore(MemoryStorage())
        async with MemoryEtcd.open() as etcd, trio.open_nursery() as nursery:
            g = _Group(nursery, core, etcd, work)
            await apply_journals(
                g.client,
                [
                    upsert(new_journal_spec(ROWS, content_type="application/x-ndjson")),
                    upsert(
                        new_journal_spec(
                            f"{LOG_PREFIX}/{SHARD}", content_type=CONTENT_TYPE_RECOVERY_LOG
                        )
                    ),
                ],
            )
            await apply_shard_specs(
                etcd, ROOT, [pc.ApplyRequestChange(upsert=_spec(1), expect_mod_revision=-1)]
            )
            await g.add("alpha")
            await g.ready_primary("alpha")
            await g.add("beta")

            rows = db_size // ROW_BYTES
            value = "v" * (ROW_BYTES - 20)
            mapping = fixed_mapping(ROWS, "application/x-ndjson")
            async with open_append_service(g.client) as appends:
                publisher = Publisher(appends)
                for k in range(rows):
                    publisher.publish_committed(mapping, {"k": k, "v": value})
            head = core.write_head(ROWS)
            primary = await g.ready_primary("alpha")
            await primary.wait_read_through({ROWS: head})
            await g.caught_up("beta")
            log_bytes = core.write_head(f"{LOG_PREFIX}/{SHARD}")
            assert isinstance(primary.store, SQLiteStore)
            database = primary.store.database_bytes

            # The clock starts once the crashed member's lease is gone: what
            # follows is the takeover proper.
            await g.crash("alpha")
            start = time.perf_counter()
            await g.ready_primary("beta")
            hot = time.perf_counter() - start

            # Cold, on the same log: no standby; a member with no replica.
            await apply_shard_specs(
                etcd, ROOT, [pc.ApplyRequestChange(upsert=_spec(0), expect_mod_revision=-1)]
            )
            await g.add("gamma")
            await trio.sleep(0.2)  # let hints and the spec change settle
            assert g.shard("gamma") is None, "gamma should hold no replica before the crash"
            await g.crash("beta")
            start = time.perf_counter()
            await g.ready_primary("gamma")
            cold = time.perf_counter() - start
            nursery.cancel_scope.cancel()

        report.add(
            GROUP,
            f"consumer takeover, SQLiteStore of {database / 1e6:,.0f} MB "
            f"(log {log_bytes / 1e6:,.0f} MB): onto the hot standby",
            hot * 1e3,
            "ms",
            floor=cold * 1e3,
            floor_name="onto a member without a replica (cold playback from hints)",
            higher_is_better=False,
            target_ratio=0.25,
            note="from the crashed member's lease revoked until the new primary is ready",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def run(report: Report) -> None:
    await _measure_log(report, 20 * MIB if report.quick else 100 * MIB)
    await _measure_group(report, 10 * MIB if report.quick else 100 * MIB)
