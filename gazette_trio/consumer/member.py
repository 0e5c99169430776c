"""A consumer member: one process's place in a consumer group, assembled.

`open_consumer` joins the group under `root` (lease, member key, allocator,
via `allocator.open_member`), runs the `ShardService` that keeps this member's
shards running, and offers the `ShardAPI` that serves the Shard gRPC
service. Inside its block the member is live; `Consumer.drain()` leaves
gracefully (the member's shard limit drops to 0 and it waits until the
group has moved its shards away); leaving the block stops every shard and
revokes the lease.

Both `gazette-trio serve` and the in-process testing harness build members
with this; neither owns how a member works.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from .._scope import background_nursery
from ..allocator import MemberSession, open_member
from ..auth.verifier import OPEN, Verifier
from ..broker.client import JournalClient
from ..etcd import Etcd
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from . import shard_spec
from .contracts import Application
from .service import ShardService
from .shard import HINTS_INTERVAL, ShardContext, ShardObserver
from .shard_api import ShardAPI


@dataclass
class Consumer:
    """A live member: its session, service and Shard API."""

    session: MemberSession
    service: ShardService
    api: ShardAPI

    async def drain(self) -> None:
        """Leave gracefully: announce this member as exiting, and wait until
        the group has moved away the shards it can take.

        As Gazette's members do since v0.102, the member sets
        `ConsumerSpec.exiting` (its limit stays); the group's leader, ours
        or a Go member, then sheds the exiting member's capacity where the
        others have room (see `allocator.state`). Shards the group cannot
        take (no spare capacity, or too few other members to hold every
        replica) stay until the member stops, and are recovered from their
        last committed checkpoint by whoever runs them next: where Gazette's
        member would wait for a newcomer, this one has been asked to stop.
        """
        await self.session.mark_exiting()
        state = self.session.state
        while state.local_items:
            local = state.local_member
            if local is None or len(state.local_items) <= state.limit_of(local):
                break  # nothing (more) can move
            state = await self.session.wait_for_change(state.revision)
        # The service acts on the same change: let the moved shards end here
        # before this member counts as drained.
        await self.session.wait_for_revision(state.revision)
        await trio.lowlevel.checkpoint()
        await self.service.wait_retired()


@contextlib.asynccontextmanager
async def open_consumer(
    app: Application,
    *,
    etcd: Etcd,
    journals: JournalClient,
    root: str,
    zone: str,
    suffix: str,
    endpoint: str,
    shard_limit: int = 1024,
    data_dir: Path,
    lease_ttl: int = 20,
    observer: ShardObserver | None = None,
    wall_clock_ns: Callable[[], int] = time.time_ns,
    hints_interval: float = HINTS_INTERVAL,
    apply_delay: float = 0.03,
    verifier: Verifier = OPEN,
) -> AsyncIterator[Consumer]:
    """Join the group under `root` as `zone`/`suffix` and run `app` on it.
    The Shard API verifies calls with `verifier` (by default, none)."""
    spec = pc.ConsumerSpec(
        process_spec=pb.ProcessSpec(
            id=pb.ProcessSpecId(zone=zone, suffix=suffix), endpoint=endpoint
        ),
        shard_limit=shard_limit,
    )
    # A cheap local mkdir; no thread, so runs on a mock clock stay deterministic.
    os.makedirs(data_dir, exist_ok=True)
    async with open_member(
        etcd,
        root,
        spec,
        lease_ttl=lease_ttl,
        apply_delay=apply_delay,
        # The allocator and the Apply RPC accept exactly the same specs.
        validate_item=shard_spec.validate,
    ) as session:
        ctx = ShardContext(
            app=app,
            etcd=etcd,
            journals=journals,
            session=session,
            data_dir=data_dir,
            observer=observer or ShardObserver(),
            wall_clock_ns=wall_clock_ns,
            hints_interval=hints_interval,
        )
        service = ShardService(ctx)
        api = ShardAPI(service, etcd, journals, verifier)
        try:
            async with background_nursery() as nursery:
                await nursery.start(service.run)
                yield Consumer(session, service, api)
        finally:
            with trio.CancelScope(shield=True):
                await api.aclose()
