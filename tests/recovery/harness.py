"""An in-process consumer group for recovery-log tests, with a view inside.

`open_recovery_cluster` runs the production parts the testing `Cluster`
assembles (embedded journal core in memory, MemoryEtcd, members through
`open_consumer`) for a word-count shard whose store is recorded into a
recovery log, and starts each member with three things a test needs to see
or steer from outside:

- `CountingJournals`: the member's journal client, counting the bytes it
  reads from the recovery log (how much a standby plays, and how little it
  reads once promoted);
- `StatusLog`: every ReplicaStatus the member's shards report, in order;
- `PartitionableEtcd`: the member's etcd client, which a test can cut off
  (requests and watch deliveries wait until it heals) to make a zombie: a
  primary that keeps running while the group, having expired its lease,
  hands its shard to another member.

The word-count application comes in two stores, both recorded through the
recorder: `JSONFileStore` (a dict of counts) and `SQLiteStore` (a `counts`
table). `committed_counts` rebuilds the committed state independently, by
playing the log at its write head into a fresh directory.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw
import trio

from gazette_trio.broker.append_service import open_append_service
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.reader import read_journal
from gazette_trio.broker.server import JournalServerCore, MemoryStorage
from gazette_trio.consumer.member import open_consumer
from gazette_trio.consumer.shard import LocalShard, ShardObserver
from gazette_trio.consumer.stores.json_file import JSONFileStore, decode_document
from gazette_trio.consumer.stores.sqlite import SQLiteStore
from gazette_trio.etcd import LeaseLost, LeaseNotFound, MemoryEtcd
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.labels import CONTENT_TYPE_RECOVERY_LOG
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.player import Player
from gazette_trio.recoverylog.stream import LogDecoder, OpRead
from gazette_trio.testing.cluster import ROOT, Cluster

LINES = "lines/part-000"
NDJSON = "application/x-ndjson"
SHARD = "count-000"
LOG_PREFIX = "recovery/word-count"
LOG = f"{LOG_PREFIX}/{SHARD}"
HINT_PREFIX = "/gazette/hints"
HINTS_INTERVAL = 0.2
Code = pc.ReplicaStatusCode


# ----------------------------------------------------------------------
# The application, over either store


class WordCount:
    """Counts the words of `{"text": ...}` lines into its store.

    The line `HOLD@<member>` (`hold_line`) is counted like any other, except
    on that member, where consuming it never returns: the member is then
    stuck in the middle of a transaction, with earlier lines of it applied
    to the store but not committed (`holding` is set)."""

    def __init__(self, store_kind: str, member: str = "") -> None:
        self.store_kind = store_kind
        self.member = member
        self.holding = trio.Event()

    async def new_store(self, shard: Any, recorder: Any) -> Any:
        if self.store_kind == "json":
            return await JSONFileStore.open(recorder=recorder)
        # Small thresholds so that WAL checkpoints and compaction happen in a
        # test-sized log, and playback from hints stays bounded.
        return await SQLiteStore.open(
            recorder,
            bootstrap="CREATE TABLE IF NOT EXISTS counts (word TEXT PRIMARY KEY, n INTEGER)",
            wal_checkpoint_bytes=64 << 10,
            compact_min_bytes=64 << 10,
            compact_factor=2.0,
        )

    def new_message(self, spec: Any) -> type:
        return dict

    async def consume_message(self, shard: Any, store: Any, envelope: Any, publisher: Any) -> None:
        text = envelope.message["text"]
        if text == hold_line(self.member):
            self.holding.set()
            await trio.sleep_forever()
        words = text.split()
        if isinstance(store, JSONFileStore):
            for word in words:
                store.state[word] = store.state.get(word, 0) + 1
            return
        for word in words:
            store.db.execute(
                "INSERT INTO counts VALUES (?, 1) ON CONFLICT(word) DO UPDATE SET n = n + 1",
                (word,),
            )

    async def finalize_txn(self, shard: Any, store: Any, publisher: Any) -> None:
        return None


def hold_line(member: str) -> str:
    return f"HOLD@{member}"


def shard_spec(*, min_txn: float = 0.0, max_txn: float = 0.5) -> pc.ShardSpec:
    return pc.ShardSpec(
        id=SHARD,
        sources=[pc.ShardSpecSource(journal=LINES)],
        recovery_log_prefix=LOG_PREFIX,
        hint_prefix=HINT_PREFIX,
        hint_backups=2,
        hot_standbys=1,
        min_txn_duration=datetime.timedelta(seconds=min_txn),
        max_txn_duration=datetime.timedelta(seconds=max_txn),
    )


def expected_counts(lines: Sequence[str]) -> dict[str, int]:
    return dict(collections.Counter(w for line in lines for w in line.split()))


# ----------------------------------------------------------------------
# Seeing into a member


class CountingJournals:
    """A member's journal client that counts the bytes it reads of one journal."""

    def __init__(self, inner: LocalJournalClient, journal: str) -> None:
        self._inner = inner
        self._journal = journal
        self.read_bytes = 0
        """Bytes of the journal read, in all."""
        self.read_through = 0
        """The furthest offset of the journal read."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextlib.asynccontextmanager
    async def read(self, request: pb.ReadRequest) -> AsyncIterator[Any]:
        async with self._inner.read(request) as stream:
            yield _Counted(stream, self) if request.journal == self._journal else stream


class _Counted:
    def __init__(self, stream: Any, counter: CountingJournals) -> None:
        self._stream = stream
        self._counter = counter

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> pb.ReadResponse:
        response: pb.ReadResponse = await self._stream.__anext__()
        if response.content:
            self._counter.read_bytes += len(response.content)
            end = response.offset + len(response.content)
            self._counter.read_through = max(self._counter.read_through, end)
        return response


class StatusLog(ShardObserver):
    """Every status a member's shards report, in order."""

    def __init__(self) -> None:
        self.codes: list[pc.ReplicaStatusCode] = []
        self.changed = trio.Event()

    def status_changed(self, shard: LocalShard, status: pc.ReplicaStatus) -> None:
        self.codes.append(status.code)
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, code: pc.ReplicaStatusCode) -> None:
        while code not in self.codes:
            await self.changed.wait()


class PartitionableEtcd:
    """A member's view of the shared MemoryEtcd that a test can cut off.

    While partitioned, every request waits for the partition to heal and
    watch batches are held back, so the member keeps acting on the group as
    it last saw it; its lease is renewed only through this client, so it
    lapses meanwhile (or the test expires it at once)."""

    def __init__(self, inner: MemoryEtcd) -> None:
        self._inner = inner
        self._healed = trio.Event()
        self._healed.set()
        self._next_heal = trio.Event()

    @property
    def partitioned(self) -> bool:
        return not self._healed.is_set()

    def partition(self) -> None:
        if not self.partitioned:
            self._healed = trio.Event()

    def heal(self) -> None:
        self._healed.set()
        self._next_heal.set()
        self._next_heal = trio.Event()

    async def reachable(self) -> None:
        await self._healed.wait()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self.reachable()
            return await method(*args, **kwargs)

        return call

    @contextlib.asynccontextmanager
    async def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        await self.reachable()
        async with self._inner.watch(*args, **kwargs) as stream:
            yield _HeldWatch(stream, self)

    async def keep_alive(
        self, lease_id: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        # As MemoryEtcd's, but every renewal goes through the partition.
        try:
            ttl = await self.keep_alive_once(lease_id)
        except LeaseNotFound:
            raise LeaseLost(lease_id, "not found") from None
        task_status.started()
        while True:
            # A healed partition renews at once (as a reconnecting client
            # would), so a member whose lease expired learns it promptly.
            with trio.move_on_after(max(ttl / 3, 0.05)):
                await self._next_heal.wait()
            try:
                ttl = await self.keep_alive_once(lease_id)
            except LeaseNotFound:
                raise LeaseLost(lease_id, "expired or revoked") from None

    async def aclose(self) -> None:
        return None


class _HeldWatch:
    def __init__(self, stream: Any, etcd: PartitionableEtcd) -> None:
        self._stream = stream
        self._etcd = etcd

    def __aiter__(self) -> _HeldWatch:
        return self

    async def __anext__(self) -> Any:
        return await self.receive()

    async def receive(self) -> Any:
        batch = await self._stream.receive()
        await self._etcd.reachable()
        return batch

    def receive_nowait(self) -> Any:
        if self._etcd.partitioned:
            raise trio.WouldBlock
        return self._stream.receive_nowait()


# ----------------------------------------------------------------------
# The cluster


@dataclass
class Member:
    suffix: str
    app: WordCount
    journals: CountingJournals
    etcd: PartitionableEtcd
    statuses: StatusLog
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    consumer: Any = None
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None

    @property
    def shard(self) -> LocalShard | None:
        if self.consumer is None:
            return None
        shard: LocalShard | None = self.consumer.service.shards.get(SHARD)
        return shard

    @property
    def lease_id(self) -> int:
        assert self.consumer is not None
        lease: int = self.consumer.session.lease_id
        return lease


class RecoveryCluster:
    """A word-count group on one recovery log; see the module docstring."""

    def __init__(self, nursery: trio.Nursery, cluster: Cluster, store_kind: str) -> None:
        self._nursery = nursery
        self.cluster = cluster
        self.store_kind = store_kind
        self.members: dict[str, Member] = {}
        self.lines: list[str] = []

    @property
    def core(self) -> JournalServerCore:
        return self.cluster.core

    @property
    def etcd(self) -> MemoryEtcd:
        return self.cluster.etcd

    def log_head(self) -> int:
        return self.core.write_head(LOG)

    async def add_member(self, suffix: str) -> Member:
        """Start a member; returns once it has joined the group. A member
        that ends with an error (a zombie's LeaseLost) records it in
        `error` instead of failing the test."""
        member = Member(
            suffix,
            WordCount(self.store_kind, suffix),
            CountingJournals(self.cluster.journals, LOG),
            PartitionableEtcd(self.etcd),
            StatusLog(),
        )
        self.members[suffix] = member

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with member.scope:
                    async with open_consumer(
                        member.app,  # type: ignore[arg-type]
                        etcd=member.etcd,  # type: ignore[arg-type]
                        journals=member.journals,  # type: ignore[arg-type]
                        root=ROOT,
                        zone="local",
                        suffix=suffix,
                        endpoint=f"http://{suffix}.in-process.invalid:8080",
                        data_dir=self.cluster.data_dir / suffix,
                        observer=member.statuses,
                        hints_interval=HINTS_INTERVAL,
                        apply_delay=0.0,
                    ) as consumer:
                        member.consumer = consumer
                        task_status.started()
                        await trio.sleep_forever()
            except Exception as exc:
                member.error = exc
            finally:
                member.done.set()

        await self._nursery.start(run)
        return member

    async def crash(self, suffix: str) -> None:
        """Stop a member at once, mid-transaction if it is in one; its lease
        is revoked as it goes (as if it expired)."""
        member = self.members.pop(suffix)
        member.scope.cancel()
        await member.done.wait()

    async def primary(self, *, not_on: str = "") -> Member:
        """The member (other than `not_on`) whose shard is the ready primary."""
        while True:
            for member in self.members.values():
                shard = member.shard
                if (
                    member.suffix != not_on
                    and shard is not None
                    and shard.is_primary
                    and shard.ready
                    and not shard.finished
                ):
                    return member
            await trio.sleep(0.01)

    async def publish(self, lines: Sequence[str]) -> None:
        self.lines += lines
        await self.cluster.publish(LINES, [{"text": t} for t in lines])

    async def wait_consumed(self, *, not_on: str = "") -> LocalShard:
        """Wait until the primary committed a transaction reading all input."""
        head = self.core.write_head(LINES)
        while True:
            member = await self.primary(not_on=not_on)
            assert member.shard is not None
            try:
                await member.shard.wait_read_through({LINES: head})
                return member.shard
            except Exception:
                await trio.sleep(0.01)

    async def wait_tailing(self, member: Member) -> None:
        """Wait until `member` has read the recovery log through its head."""
        while member.journals.read_through < self.log_head():
            await trio.sleep(0.01)

    async def committed_counts(
        self, directory: Path, hints: FsmHints | None = None
    ) -> dict[str, int]:
        """The counts the log holds as committed, rebuilt independently by a
        player of the log at its write head."""
        async with open_append_service(self.cluster.journals) as appends:
            player = Player()
            player.finish_at_write_head()
            await player.play(hints or FsmHints(log=LOG), directory, self.cluster.journals, appends)
        if self.store_kind == "json":
            path = directory / "state.json"
            counts: dict[str, int] = decode_document(path.read_bytes(), path)[0]
            return counts
        return await trio.to_thread.run_sync(_sqlite_counts, directory / "main.db")

    async def log_ops(self) -> list[Any]:
        """Every op in the recovery log, in order, with `first_offset` set
        to where its frame starts."""
        decoder = LogDecoder(LOG, 0)
        decoder.feed(await read_journal(self.cluster.journals, LOG))
        ops = []
        while (event := decoder.next_event()) is not None:
            if isinstance(event, OpRead):
                ops.append(event.op)
        return ops


def _sqlite_counts(path: Path) -> dict[str, int]:
    # The played copy is ours: open it as the store does (WAL with exclusive
    # locking, so no shared-memory file), which also replays its WAL.
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        return {word: n for word, n in db.execute("SELECT word, n FROM counts")}
    finally:
        db.close()


@contextlib.asynccontextmanager
async def open_recovery_cluster(
    store_kind: str, data_dir: Path, *, spec: pc.ShardSpec | None = None
) -> AsyncIterator[RecoveryCluster]:
    """The journals (input and recovery log), the shard, and no member yet."""
    core = JournalServerCore(MemoryStorage())
    async with MemoryEtcd.open() as etcd, trio.open_nursery() as nursery:
        cluster = Cluster(nursery, lambda: WordCount(store_kind), core, etcd, data_dir, ROOT)  # type: ignore[arg-type,return-value]
        await cluster.apply_journals(
            [
                new_journal_spec(LINES, content_type=NDJSON),
                new_journal_spec(LOG, content_type=CONTENT_TYPE_RECOVERY_LOG),
            ]
        )
        await cluster.apply_shards([spec or shard_spec()])
        try:
            yield RecoveryCluster(nursery, cluster, store_kind)
        finally:
            nursery.cancel_scope.cancel()
