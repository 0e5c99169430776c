"""The consumer service of one member: its shards, and resolving shard ids.

`ShardService.run` follows the group's allocator state (from the member session)
and keeps one `LocalShard` running per assignment of this member: it starts
a shard when an assignment appears, tells it when its spec or slot changes
(a standby promoted to primary), and cancels it when the assignment goes
away. Every shard runs in the service's nursery, inside the shard's own
cancel scope.

`Resolver.resolve` maps a shard id to where it is served, as Gazette's
Resolver: this member's ready primary (optionally after a transaction has
read through given offsets), or the header naming the peer to proxy to, or
a status (SHARD_NOT_FOUND, NO_SHARD_PRIMARY, NOT_SHARD_PRIMARY).
`shards_with_source` finds the shards reading a journal, which application
APIs use to route a request to the shard owning a key.

This module owns which shards run here and where a shard lives. A shard's
own life is in `shard`; the gRPC face of the resolver is `shard_api`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from ..allocator.state import LocalItem, State
from ..errors import ConsumerError
from ..etcd import ResponseHeader
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from .shard import LocalShard, ShardContext, ShardStopped

log = logging.getLogger(__name__)


class ShardService:
    """Runs this member's shards; see the module docstring. (Not a gRPC
    service: those are `aio.Service`.)"""

    def __init__(self, ctx: ShardContext) -> None:
        self.ctx = ctx
        self.shards: dict[str, LocalShard] = {}
        # Shards told to stop whose tasks may still be ending.
        self._retired: list[LocalShard] = []
        self.resolver = Resolver(self)
        self._nursery: trio.Nursery | None = None
        self._stopping = False

    @property
    def state(self) -> State:
        return self.ctx.session.state

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the allocator until cancelled; shards stop with it."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            state = self.state
            self._reconcile(state)
            task_status.started()
            try:
                while True:
                    state = await self.ctx.session.wait_for_change(state.revision)
                    self._reconcile(state)
            finally:
                self._stopping = True
                for shard in self.shards.values():
                    shard.stop()

    def _reconcile(self, state: State) -> None:
        assert self._nursery is not None
        seen: set[str] = set()
        for local in state.local_items:
            shard_id = local.item.id
            seen.add(shard_id)
            shard = self.shards.get(shard_id)
            if shard is not None and _is_new_replica(shard, local):
                self._retire(shard)
                shard = None
            if shard is None:
                shard = LocalShard(self.ctx, local)
                self.shards[shard_id] = shard
                log.info(
                    "starting shard %s (slot %d of %d)",
                    shard_id,
                    local.assignment.slot,
                    len(local.assignments),
                )
                self._nursery.start_soon(shard.run, name=f"shard {shard_id}")
            else:
                shard.transition(local)
        for shard_id in [s for s in self.shards if s not in seen]:
            log.info("stopping shard %s: no longer assigned here", shard_id)
            self._retire(self.shards.pop(shard_id))

    def _retire(self, shard: LocalShard) -> None:
        shard.stop()
        self._retired = [s for s in self._retired if not s.finished]
        self._retired.append(shard)

    async def wait_retired(self) -> None:
        """Wait until every shard this member stopped serving has ended."""
        for shard in list(self._retired):
            await shard.wait_finished()


def _is_new_replica(shard: LocalShard, local: LocalItem) -> bool:
    """Whether `local` is a new assignment that needs a fresh replica.

    A promotion (a standby moved to a lower slot, i.e. a new key) keeps the
    running replica: its player has tailed the log and hands off from there,
    as Gazette's resolver keeps a shard across slots. A failed replica whose
    assignment was removed and made again starts over; so does any other
    re-made assignment that is not a promotion.
    """
    before = shard.assignment.assignment
    after = local.assignment
    if before.kv.create_revision == after.kv.create_revision:
        return False
    if shard.finished:
        return True
    return not after.slot < before.slot


@dataclass
class Resolution:
    """Where a shard is served, as seen by this member."""

    status: pc.Status
    header: pb.Header
    spec: pc.ShardSpec | None = None
    shard: LocalShard | None = None
    """This member's shard, if it is the ready primary."""


class ResolveError(ConsumerError):
    """A proxied request is inconsistent with this member's view."""


class Resolver:
    """Maps shard ids to local shards or peers; see the module docstring."""

    def __init__(self, service: ShardService) -> None:
        self._service = service

    def local_process_id(self, state: State) -> pb.ProcessSpecId:
        member = state.local_member
        if member is not None:
            return pb.ProcessSpecId(zone=member.zone, suffix=member.suffix)
        # While shutting down, our member key may already be gone; requests
        # can still be proxied, so answer as someone who is not a member.
        return pb.ProcessSpecId(zone="local ConsumerSpec", suffix="missing from Etcd")

    def route(self, state: State, shard_id: str) -> pb.Route:
        """The shard's replicas in (zone, suffix) order, its primary and endpoints."""
        assignments = sorted(state.assignments_by_item.get(shard_id, ()), key=lambda a: a.member)
        route = pb.Route(members=[], primary=-1, endpoints=[])
        for i, a in enumerate(assignments):
            route.members.append(pb.ProcessSpecId(zone=a.zone, suffix=a.suffix))
            if a.slot == 0:
                route.primary = i
            member = state.member_of(a)
            process = member.spec.process_spec if member is not None else None
            route.endpoints.append(process.endpoint if process is not None else "")
        return route

    def header(self, state: State, route: pb.Route | None = None) -> pb.Header:
        """A header authored by this member: its process id (empty once its
        member key is gone, as Gazette's), `route` (none: unrouted, primary
        -1), and etcd's header as of `state`."""
        member = state.local_member
        return pb.Header(
            process_id=pb.ProcessSpecId(
                zone=member.zone if member else "", suffix=member.suffix if member else ""
            ),
            route=route or pb.Route(members=[], primary=-1, endpoints=[]),
            etcd=etcd_header(state.etcd),
        )

    def shards_with_source(self, journal: str) -> list[pc.ShardSpec]:
        """Specs of shards reading `journal`, in shard id order."""
        return [
            item.spec
            for item in self._service.state.items
            if any(s.journal == journal for s in item.spec.sources)
        ]

    async def resolve(
        self,
        shard_id: str,
        *,
        may_proxy: bool = True,
        proxy_header: pb.Header | None = None,
        read_through: dict[str, int] | None = None,
    ) -> Resolution:
        """Resolve `shard_id` (see the module docstring).

        Raises `ShardStopped` if this member is primary but the shard stops
        (or fails) before being ready or reading through `read_through`.
        """
        service = self._service
        state = service.state
        local_id = self.local_process_id(state)
        if proxy_header is not None:
            theirs = proxy_header.etcd.cluster_id if proxy_header.etcd is not None else 0
            if theirs != state.etcd.cluster_id:
                raise ResolveError(
                    f"proxied request Etcd ClusterId doesn't match our own "
                    f"({theirs} vs {state.etcd.cluster_id})"
                )
            pid = proxy_header.process_id
            if pid is not None and (pid.zone or pid.suffix) and pid != local_id:
                raise ResolveError(
                    f"proxied request ProcessId doesn't match our own "
                    f"({_pid(pid)} vs {_pid(local_id)})"
                )
            want = proxy_header.etcd.revision if proxy_header.etcd is not None else 0
            if want > state.revision:
                state = await service.ctx.session.wait_for_revision(want)

        item = state.item_by_id.get(shard_id)
        route = self.route(state, shard_id)
        header = self.header(state, route)
        if route.primary != -1:
            header.process_id = route.members[route.primary]

        if item is None:
            status = pc.Status.SHARD_NOT_FOUND
        elif route.primary == -1:
            status = pc.Status.NO_SHARD_PRIMARY
        elif not may_proxy and header.process_id != local_id:
            status = pc.Status.NOT_SHARD_PRIMARY
        else:
            status = pc.Status.OK
        resolution = Resolution(status, header, item.spec if item else None)
        if status != pc.Status.OK:
            # We authored the error, so the header names us.
            header.process_id = local_id
            return resolution
        if header.process_id != local_id:
            return resolution  # The caller proxies to the primary.

        shard = service.shards.get(shard_id)
        if shard is None or shard.finished:
            raise ShardStopped(f"shard {shard_id} is assigned here but not running")
        await shard.wait_ready()
        if read_through:
            await shard.wait_read_through(read_through)
        resolution.shard = shard
        return resolution


def etcd_header(header: ResponseHeader) -> pb.HeaderEtcd:
    """etcd's response header as Gazette's `Header.Etcd`."""
    return pb.HeaderEtcd(
        cluster_id=header.cluster_id,
        member_id=header.member_id,
        revision=header.revision,
        raft_term=header.raft_term,
    )


def _pid(pid: pb.ProcessSpecId) -> str:
    return f"{pid.zone}#{pid.suffix}"


Service = ShardService
"""The former name, kept importable."""
