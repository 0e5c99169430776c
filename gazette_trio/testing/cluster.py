"""An in-process consumer group: journal server, MemoryEtcd and members.

`open_cluster(app_factory)` runs Gazette's moving parts in the caller's Trio
run, with no sockets: an embedded journal server core (in memory, or over a
directory), a `MemoryEtcd`, and any number of members started with
`add_member`, each running the application through the real consumer
runtime (`consumer.member.open_consumer`). Tests then append input, stop or
crash members, wait for shards to settle and read outputs read-committed.
It is what Gazette's `consumertest` is to Go applications.

`query` asks a member an application's JSON query route (`@query`) as
`GET /query/<route>` would, forwarded between in-process members as
between real ones.

`crash` cancels a member without a graceful exit (its lease is revoked, as
if it expired at once); `stop` drains it first. This module owns the
assembly; every part it assembles is the production one.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from .. import aio
from ..allocator import apply_shard_specs
from ..broker import LocalJournalClient
from ..broker.append_service import open_append_service
from ..broker.list_apply import apply_journals, upsert
from ..broker.server import JournalServerCore, MemoryStorage
from ..consumer import shard_spec
from ..consumer.contracts import Application
from ..consumer.member import Consumer, open_consumer
from ..consumer.queries import ForwardedQuery, QueryAnswer, QueryRouter
from ..consumer.shard import LocalShard
from ..etcd import MemoryEtcd
from ..message import Publisher, Sequencer, fixed_mapping, open_committed
from ..message.framing import content_type_of
from ..message.reader import fetch_spec
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from ..runtime.config import Config

ROOT = "/gazette/consumers/test"


@dataclass
class MemberHandle:
    suffix: str
    scope: trio.CancelScope
    consumer: Consumer | None = None
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None


class Cluster:
    """See the module docstring."""

    def __init__(
        self,
        nursery: trio.Nursery,
        app_factory: Callable[[], Application],
        core: JournalServerCore,
        etcd: MemoryEtcd,
        data_dir: Path,
        root: str,
    ) -> None:
        self._nursery = nursery
        self.app_factory = app_factory
        self.core = core
        self.journals = LocalJournalClient(core)
        self.etcd = etcd
        self.data_dir = data_dir
        self.root = root
        self.members: dict[str, MemberHandle] = {}
        self._names = itertools.count()

    # -- specs ---------------------------------------------------------

    async def apply_journals(self, specs: Iterable[pb.JournalSpec]) -> None:
        await apply_journals(self.journals, [upsert(s, expect_mod_revision=-1) for s in specs])

    async def apply_shards(self, specs: Iterable[pc.ShardSpec]) -> None:
        changes = [pc.ApplyRequestChange(upsert=s, expect_mod_revision=-1) for s in specs]
        await apply_shard_specs(self.etcd, self.root, changes)

    # -- members -------------------------------------------------------

    async def add_member(
        self, suffix: str | None = None, *, zone: str = "local", shard_limit: int = 1024
    ) -> MemberHandle:
        """Start a member; returns once it has joined the group."""
        suffix = suffix or f"member-{next(self._names)}"
        handle = MemberHandle(suffix, trio.CancelScope())
        self.members[suffix] = handle

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with handle.scope:
                    async with open_consumer(
                        self.app_factory(),
                        etcd=self.etcd,
                        journals=self.journals,
                        root=self.root,
                        zone=zone,
                        suffix=suffix,
                        # Never dialed: in-process members resolve each other directly.
                        endpoint=f"http://{suffix}.in-process.invalid:8080",
                        shard_limit=shard_limit,
                        data_dir=self.data_dir / suffix,
                        hints_interval=1.0,
                        apply_delay=0.0,
                    ) as consumer:
                        handle.consumer = consumer
                        task_status.started()
                        await trio.sleep_forever()
            except Exception as exc:
                handle.error = exc
                raise
            finally:
                handle.done.set()

        await self._nursery.start(run)
        return handle

    async def crash(self, suffix: str) -> None:
        """Stop a member at once, mid-transaction if it is in one."""
        handle = self.members.pop(suffix)
        handle.scope.cancel()
        await handle.done.wait()

    async def stop(self, suffix: str) -> None:
        """Drain a member (its shards move to others first), then stop it."""
        handle = self.members[suffix]
        assert handle.consumer is not None
        await handle.consumer.drain()
        await self.crash(suffix)

    # -- observing -----------------------------------------------------

    def primary_of(self, shard_id: str) -> tuple[str, LocalShard] | None:
        """The member serving `shard_id` as a ready primary, if any."""
        for suffix, handle in self.members.items():
            if handle.consumer is None:
                continue
            shard = handle.consumer.service.shards.get(shard_id)
            if shard is not None and shard.is_primary and shard.ready and not shard.finished:
                return suffix, shard
        return None

    async def wait_for_primary(
        self, shard_id: str, *, poll: float = 0.01
    ) -> tuple[str, LocalShard]:
        while True:
            found = self.primary_of(shard_id)
            if found is not None:
                return found
            await trio.sleep(poll)

    async def wait_read_through(self, shard_id: str, offsets: dict[str, int]) -> LocalShard:
        """Wait until the shard's primary (whichever member) has committed a
        transaction reading through `offsets`."""
        while True:
            _, shard = await self.wait_for_primary(shard_id)
            try:
                await shard.wait_read_through(offsets)
                return shard
            except Exception:
                await trio.sleep(0.01)

    async def query(
        self,
        route: str,
        params: dict[str, Any] | None = None,
        *,
        member: str | None = None,
        read_through: dict[str, int] | None = None,
    ) -> tuple[int, Any]:
        """(status, JSON answer) of the application's query `route` (declared
        with `@query`), asked of `member` (default: the first running one)
        as `GET /query/<route>` would be: resolved, forwarded to the shard's
        primary when that is another member, and answered there."""
        handle = self.members[member] if member else next(iter(self.members.values()))
        assert handle.consumer is not None, f"member {handle.suffix} is not running"
        return await self._router(handle).ask(route, params or {}, read_through)

    def _router(self, handle: MemberHandle) -> QueryRouter:
        consumer = handle.consumer
        assert consumer is not None

        async def forward(endpoint: str, request: ForwardedQuery) -> QueryAnswer:
            # In-process endpoints are http://<suffix>.in-process.invalid:8080.
            suffix = endpoint.split("://", 1)[-1].split(".in-process.invalid", 1)[0]
            peer = self.members.get(suffix)
            if peer is None or peer.consumer is None:
                raise aio.Unavailable(f"no running member at {endpoint}")
            return await self._router(peer).forwarded(request)

        return QueryRouter(consumer.service.ctx.app, consumer, forward=forward)

    async def write_heads(self, journals: Sequence[str]) -> dict[str, int]:
        return {j: self.core.write_head(j) for j in journals}

    # -- messages ------------------------------------------------------

    @contextlib.asynccontextmanager
    async def publisher(self) -> AsyncIterator[Publisher]:
        """A publisher appending through its own append service (drained at exit)."""
        async with open_append_service(self.journals) as appends:
            yield Publisher(appends)

    async def publish(
        self, journal: str, messages: Iterable[Any], *, committed: bool = True
    ) -> None:
        spec = await fetch_spec(self.journals, journal)
        mapping = fixed_mapping(journal, content_type_of(spec))
        async with self.publisher() as publisher:
            for message in messages:
                if committed:
                    publisher.publish_committed(mapping, message)
                else:
                    publisher.publish_uncommitted(mapping, message)
            if not committed:
                for j, ack in publisher.build_ack_intents().items():
                    publisher.appender.append(j, ack)

    async def read_committed(self, journal: str, message_type: Any = dict) -> list[Any]:
        """Every committed, non-ACK message of `journal` so far, in order."""
        out: list[Any] = []
        async with open_committed(
            self.journals, journal, message_type, Sequencer(), block=False
        ) as reader:
            async for envelope in reader:
                if not envelope.is_ack:
                    out.append(envelope.message)
        return out


@contextlib.asynccontextmanager
async def open_cluster(
    app_factory: Callable[[], Application],
    *,
    data_dir: Path,
    root: str = ROOT,
    journals: Sequence[pb.JournalSpec] = (),
    shards: Sequence[pc.ShardSpec] = (),
) -> AsyncIterator[Cluster]:
    """Run a journal server core and a MemoryEtcd for the life of the block,
    with `journals` and `shards` applied, and a recovery log created for
    each shard whose log `journals` does not declare, as `serve` does with
    its embedded journal server."""
    core = JournalServerCore(MemoryStorage())
    journals = [*journals, *shard_spec.recovery_log_specs(journals, shards)]
    async with MemoryEtcd.open() as etcd, trio.open_nursery() as nursery:
        cluster = Cluster(nursery, app_factory, core, etcd, data_dir, root)
        if journals:
            await cluster.apply_journals(journals)
        if shards:
            await cluster.apply_shards(shards)
        try:
            yield cluster
        finally:
            nursery.cancel_scope.cancel()


def _configured_application(cfg: Config, path: str | Path | None) -> Callable[[], Application]:
    """A factory of the config's application, found as `serve` finds it
    (the config's directory on the import path)."""
    cls = cfg.application.load(path)
    settings = dict(cfg.application.settings)

    def factory() -> Application:
        return cls(**settings)  # type: ignore[no-any-return]

    return factory


@contextlib.asynccontextmanager
async def open_config_cluster(
    config: str | Path | Config,
    *,
    data_dir: Path,
    app_factory: Callable[[], Application] | None = None,
    adjust_shard: Callable[[pc.ShardSpec], None] | None = None,
) -> AsyncIterator[Cluster]:
    """The consumer group a member config describes, in process: its
    application (built as `serve` builds it, unless `app_factory` is given),
    its declared journals and shards, and their recovery logs. Members are
    added with `add_member`.

    ```python
    async with open_config_cluster("config.toml", data_dir=tmp_path) as cluster:
        await cluster.add_member()
        await cluster.publish(...)
    ```
    """
    from ..runtime.config import load_config

    cfg = config if isinstance(config, Config) else load_config(config)
    if app_factory is None:
        app_factory = _configured_application(cfg, None if isinstance(config, Config) else config)
    shards = cfg.declared_shards()
    if adjust_shard is not None:
        for spec in shards:
            adjust_shard(spec)
    async with open_cluster(
        app_factory,
        data_dir=data_dir,
        root=cfg.group_prefix,
        journals=cfg.declared_journals(),
        shards=shards,
    ) as cluster:
        yield cluster
