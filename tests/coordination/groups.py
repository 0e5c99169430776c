"""Test helpers: specs, and members that act like consumer processes.

`run_member` joins a group with `open_member` and plays the part of the
consumer runtime: it reports each local replica as PRIMARY (slot 0) or
STANDBY (caught up) as soon as it is assigned, which is what lets the
allocator move shards (it only removes a replica when the others are
consistent).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from gazette_trio.allocator import AssignmentChanged, MemberSession, NotAssigned, State, open_member
from gazette_trio.etcd import Etcd, LeaseLost, Unavailable
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb


def shard_spec(shard_id: str, *, hot_standbys: int = 0, disable: bool = False) -> pc.ShardSpec:
    return pc.ShardSpec(
        id=shard_id,
        sources=[pc.ShardSpecSource(journal=f"examples/{shard_id}")],
        max_txn_duration=datetime.timedelta(seconds=1),
        hot_standbys=hot_standbys,
        disable=disable,
    )


def consumer_spec(zone: str, suffix: str, limit: int, *, exiting: bool = False) -> pc.ConsumerSpec:
    return pc.ConsumerSpec(
        process_spec=pb.ProcessSpec(
            id=pb.ProcessSpecId(zone=zone, suffix=suffix), endpoint=f"http://{suffix}.test:8080"
        ),
        shard_limit=limit,
        exiting=exiting,
    )


@dataclass
class RunningMember:
    session: MemberSession
    stop: trio.Event = field(default_factory=trio.Event)
    lost: list[LeaseLost] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)


async def serve_replicas(session: MemberSession) -> None:
    """Report every local replica ready: PRIMARY in slot 0, else STANDBY."""
    while True:
        retry = False
        state = session.state
        for local in state.local_items:
            want = (
                pc.ReplicaStatusCode.PRIMARY if local.is_primary else pc.ReplicaStatusCode.STANDBY
            )
            if local.assignment.status.code != want:
                try:
                    await session.update_status(local.item.id, pc.ReplicaStatus(code=want))
                except NotAssigned:
                    pass  # it moved away meanwhile
                except (AssignmentChanged, Unavailable):
                    retry = True  # look again shortly, even if nothing changes
        if retry:
            await trio.sleep(0.5)
        else:
            # Changes made while we were writing are not missed.
            await session.wait_for_change(state.revision)


async def run_member(
    etcd: Etcd,
    root: str,
    zone: str,
    suffix: str,
    limit: int,
    *,
    lease_ttl: int = 10,
    serve: bool = True,
    task_status: trio.TaskStatus[RunningMember] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A member until its `stop` is set (or its lease is lost)."""
    running: RunningMember | None = None
    try:
        async with open_member(
            etcd, root, consumer_spec(zone, suffix, limit), lease_ttl=lease_ttl, apply_delay=0.01
        ) as session:
            running = RunningMember(session)
            async with trio.open_nursery() as nursery:
                if serve:
                    nursery.start_soon(serve_replicas, session)
                task_status.started(running)
                await running.stop.wait()
                nursery.cancel_scope.cancel()
    except LeaseLost as exc:
        if running is None:
            raise
        running.lost.append(exc)
    finally:
        if running is not None:
            running.done.set()


def converged(state: State, *, members: int | None = None) -> bool:
    """Every shard has its replicas on distinct members in distinct zones (as
    far as zones go), one primary, and every replica reports ready. Members
    count with their effective limits (an exiting one may have none)."""
    zones = {m.zone for m in state.members if state.limit_of(m) > 0}
    if members is not None and len(state.members) != members:
        return False
    for item in state.items:
        group = state.assignments_by_item.get(item.id, ())
        want = min(item.replication, sum(1 for m in state.members if state.limit_of(m) > 0))
        if len(group) != want:
            return False
        holders = [state.member_of(a) for a in group]
        if any(m is None or state.limit_of(m) == 0 for m in holders):
            return False
        if len({a.member for a in group}) != len(group):
            return False
        if len({a.zone for a in group}) != min(len(group), len(zones)):
            return False
        if group and sorted(a.slot for a in group)[0] != 0:
            return False
        for a in group:
            ready = pc.ReplicaStatusCode.PRIMARY if a.slot == 0 else pc.ReplicaStatusCode.STANDBY
            if a.status.code != ready:
                return False
    return True


async def wait_until(
    session: MemberSession, predicate: Callable[[State], bool], timeout: float = 30
) -> State:
    with trio.fail_after(timeout):
        while not predicate(session.state):
            await session.wait_for_change()
    return session.state
