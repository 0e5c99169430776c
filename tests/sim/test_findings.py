"""Runtime bugs the simulation found, each distilled into a direct test.

A failing seed stops reproducing as soon as any code on its path changes, so
each finding is also pinned here as a small, deterministic test of the
mechanism. Tests of bugs not yet fixed are strict xfails: they start to pass
(and so fail the suite) when the fix lands, and then lose the mark (both
findings below are fixed).
"""

from __future__ import annotations

import datetime
import inspect
from pathlib import Path
from typing import Any

import trio
import trio.testing

from gazette_trio import aio
from gazette_trio.broker.append_service import AppendService
from gazette_trio.broker.errors import JournalError
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.server import Faults, JournalServerCore, MemoryStorage
from gazette_trio.consumer.stores.memory import MemoryDatabase, MemoryStore
from gazette_trio.etcd import EtcdHooks
from gazette_trio.etcd.types import Unavailable
from gazette_trio.opfuture import OpFuture
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog import FSM, Player, open_recorder
from gazette_trio.testing.cluster import open_cluster

LOG = "recovery/finding"


class LoseOneAck(Faults):
    """Once armed, the next non-empty append to LOG lands but its client
    sees `Unavailable` (a lost acknowledgement): the append service retries
    it after its backoff, so it lands twice."""

    def __init__(self) -> None:
        self.armed = False
        self.lost = trio.Event()

    async def after_append(self, journal: str, commit: pb.Fragment) -> None:
        if self.armed and journal == LOG and commit.end > commit.begin:
            self.armed = False
            self.lost.set()
            raise aio.Unavailable("acknowledgement lost")


def test_a_retried_hand_off_does_not_take_the_log_back_from_a_later_one(tmp_path: Path) -> None:
    """Player A injects its hand-off; the append lands but A's append service
    sees the acknowledgement lost and retries it 50 ms later. Meanwhile
    player B, a concurrently promoted member, reads A's no-op and hands off
    after it: B now owns the log. Then A's retry lands a second copy of A's
    no-op, whose `union_registers` sets the fence back to A.

    The promise: once B has taken the log over, B's commits are the log's
    history and A may not append to it. Found by the simulation (seeds 696
    and 1424 of earlier builds; a seed's schedule changes with the code):
    A's player completed on its first copy, A's recorder
    committed past B's fence (the register said A again) while B, the
    rightful writer, was fenced out; the next primary's playback dropped A's
    acknowledged commits as a dead branch (its FSM follows B's no-op), so
    outputs were published twice. (Fixed in 2422ec9: the hand-off no-op
    now checks the fence it saw, so A's late retry is refused.)"""
    b_error, a_error = trio.run(_race_two_hand_offs, tmp_path, clock=_clock())
    assert b_error is None, f"the log's rightful writer was fenced out: {b_error}"
    assert isinstance(a_error, JournalError) and a_error.status == pb.Status.REGISTER_MISMATCH


def _clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def _race_two_hand_offs(tmp_path: Path) -> tuple[BaseException | None, BaseException | None]:
    faults = LoseOneAck()
    core = JournalServerCore(MemoryStorage(), faults=faults)
    client = LocalJournalClient(core)
    spec = new_journal_spec(LOG, content_type=CONTENT_TYPE_RECOVERY_LOG)
    await apply_journals(client, [upsert(spec)])

    async with trio.open_nursery() as nursery:
        services = [AppendService(client) for _ in range(3)]
        for service in services:
            await nursery.start(service.run)
        first, a_appends, b_appends = services

        (tmp_path / "first").mkdir()
        original = await open_recorder(
            log=LOG,
            fsm=FSM(FsmHints(log=LOG)),
            author=0x1111,
            directory=tmp_path / "first",
            appender=first,
        )
        with original.create("db") as f:
            f.write(b"v1")
        hints = await original.build_hints()

        a, b = Player(), Player()
        nursery.start_soon(a.play, hints, tmp_path / "a", client, a_appends)
        nursery.start_soon(b.play, hints, tmp_path / "b", client, b_appends)
        await a.wait_tailing()
        await b.wait_tailing()

        faults.armed = True
        a.inject_handoff(0xAAAA)
        await faults.lost.wait()
        b.inject_handoff(0xBBBB)
        b_playback = await b.wait_done()
        b_recorder = await open_recorder(
            log=LOG,
            fsm=b_playback.fsm,
            author=0xBBBB,
            directory=b_playback.directory,
            appender=b_appends,
        )
        a_playback = await a.wait_done()  # after A's retried no-op landed
        a_recorder = await open_recorder(
            log=LOG,
            fsm=a_playback.fsm,
            author=0xAAAA,
            directory=a_playback.directory,
            appender=a_appends,
        )

        with b_recorder.open("db") as f:
            f.write_at(b"B2", 0)
        b_error = await _error_of(b_recorder.barrier())
        with a_recorder.open("db") as f:
            f.write_at(b"A2", 0)
        a_error = await _error_of(a_recorder.barrier())
        nursery.cancel_scope.cancel()
    return b_error, a_error


async def _error_of(future: OpFuture[Any]) -> BaseException | None:
    try:
        await future
    except Exception as exc:
        return exc
    return None


class _FailOneHintFetch(EtcdHooks):
    """Fails the first etcd transaction made by `fetch_hints` with
    `Unavailable`, as a dropped connection would."""

    def __init__(self) -> None:
        self.failures = 0

    async def before(self, request: str) -> None:
        if (
            request == "txn"
            and not self.failures
            and any(frame.function == "fetch_hints" for frame in inspect.stack())
        ):
            self.failures += 1
            raise Unavailable("simulated: connection to etcd lost")


class _Counter:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def new_store(self, shard: Any, recorder: Any) -> MemoryStore:
        return MemoryStore(self.db)

    def new_message(self, spec: Any) -> type:
        return dict

    async def consume_message(self, shard: Any, store: Any, envelope: Any, publisher: Any) -> None:
        store.state["n"] = store.state.get("n", 0) + 1

    async def finalize_txn(self, shard: Any, store: Any, publisher: Any) -> None:
        pass


def test_a_transient_etcd_error_while_fetching_hints_does_not_fail_the_shard(
    tmp_path: Path,
) -> None:
    """A shard with a recovery log fetches its hints from etcd when it
    starts. One dropped request there should be retried, as the runtime
    retries status updates and stored hints. Found by the simulation: the
    shard failed (FAILED, `Unavailable` in its status) and stayed failed
    until an operator unassigned it (fixed in 2422ec9)."""
    hooks = _FailOneHintFetch()
    became_primary = trio.run(_start_a_recorded_shard, tmp_path, hooks, clock=_clock())
    if hooks.failures != 1:
        raise RuntimeError("the test did not fail the hint fetch it means to")
    assert became_primary, "the shard did not become primary within a minute"


async def _start_a_recorded_shard(tmp_path: Path, hooks: EtcdHooks) -> bool:
    spec = pc.ShardSpec(
        id="count-000",
        sources=[pc.ShardSpecSource(journal="lines/part-000")],
        recovery_log_prefix="recovery/test",
        hint_prefix="/gazette/hints/test",
        max_txn_duration=datetime.timedelta(seconds=1),
    )
    async with open_cluster(
        lambda: _Counter(MemoryDatabase()),  # type: ignore[arg-type,return-value]
        data_dir=tmp_path,
        journals=[
            new_journal_spec("lines/part-000", content_type="application/x-ndjson"),
            new_journal_spec("recovery/test/count-000", content_type=CONTENT_TYPE_RECOVERY_LOG),
        ],
    ) as cluster:
        cluster.etcd.hooks = hooks
        await cluster.apply_shards([spec])
        await cluster.add_member("alpha")
        with trio.move_on_after(60):
            await cluster.wait_for_primary("count-000")
            return True
    return False
