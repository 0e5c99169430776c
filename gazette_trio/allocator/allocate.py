"""The allocation loop: the leader moves the group toward the solved assignment.

Every member runs `allocate`; only the leader (the member whose key has the
lowest create revision) acts. Each round it re-solves if the network (items'
replication, members' effective limits) changed since its last solve, computes one
convergence round (`converge`), and commits it in transactions guarded by
mod revisions and by its own member key (so a member that lost leadership,
or whose view is stale, changes nothing). Then it waits for the KeySpace to
move past its own writes, or for the next change, and goes again. A failed
transaction is logged and retried on the next round, from fresh state.

`allocate` returns when the local member is exiting (`ConsumerSpec.exiting`)
and holds nothing any more; it raises `MemberKeyMissing` if the member's key is gone
(its lease ended). This module owns the loop and the mapping between the
group's State and the solver's integers. Solving blocks the Trio loop for its
duration (about 0.1 s for 10,000 shards x 3 replicas), which keeps it
deterministic under simulation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ..errors import AllocatorError
from ..etcd import Compare, Etcd, EtcdError
from . import solver
from .converge import RoundStats, batch, converge
from .state import State, StateView

log = logging.getLogger(__name__)

Desired = dict[str, list[tuple[str, str]]]


class MemberKeyMissing(AllocatorError):
    """The local member's key is not in etcd (its lease ended)."""


@dataclass(frozen=True)
class Round:
    """What one leader round did, for tests and metrics."""

    number: int
    revision: int
    stats: RoundStats
    committed: bool
    idle: bool


def solve_state(state: State, solve: Callable[..., solver.Solution] = solver.solve) -> Desired:
    """Run the solver over a State: desired (zone, suffix) members per item."""
    members = state.members
    zones = sorted({m.zone for m in members})
    zone_index = {z: i for i, z in enumerate(zones)}
    member_index = {(m.zone, m.suffix): i for i, m in enumerate(members)}
    current: list[list[int]] = []
    for item in state.items:
        held = []
        for a in state.assignments_by_item.get(item.id, ()):
            index = member_index.get(a.member)
            if index is not None and index not in held:
                held.append(index)
        current.append(held)
    solution = solve(
        [item.replication for item in state.items],
        [zone_index[m.zone] for m in members],
        [state.limit_of(m) for m in members],
        current,
    )
    if solution.placed < solution.desired:
        log.warning(
            "cannot reach desired replication of every shard: %d of %d replicas placed "
            "(too few members, or too few zones with room)",
            solution.placed,
            solution.desired,
        )
    return {
        item.id: [(members[m].zone, members[m].suffix) for m in held]
        for item, held in zip(state.items, solution.assignments, strict=True)
    }


async def allocate(
    etcd: Etcd,
    view: StateView,
    *,
    solve: Callable[..., solver.Solution] = solver.solve,
    on_round: Callable[[Round], None] | None = None,
    retry_interval: float = 5.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the allocator for the member `view.local_key` until it may exit."""
    ks = view.keyspace
    desired: Desired = {}
    solved_network: object = None
    number = 0
    task_status.started()
    while True:
        state = view.state
        if state.local_member is None:
            raise MemberKeyMissing(f"member key {state.local_key} not found in etcd")
        if state.should_exit:
            log.info("member %s holds no shards and is exiting", state.local_key)
            return
        next_revision = ks.revision + 1
        if state.is_leader:
            if state.network != solved_network:
                desired = solve_state(state, solve)
                solved_network = state.network
            checkpoints, stats = converge(state, desired)
            local = state.local_member
            txns = batch(checkpoints, [Compare.mod_revision(local.key, "=", local.kv.mod_revision)])
            committed = True
            for txn in txns:
                try:
                    result = await etcd.txn(txn.compares, txn.ops)
                except EtcdError as exc:
                    log.warning("allocator round %d failed (will retry): %s", number, exc)
                    committed = False
                    break
                if not result.succeeded:
                    log.info("allocator round %d raced a change (will retry)", number)
                    committed = False
                    break
                next_revision = max(next_revision, result.revision)
            if on_round is not None:
                on_round(Round(number, state.revision, stats, committed, not txns))
            number += 1
            if not committed:
                # Retry on the next change, or after a while if none comes
                # (an unreachable etcd produces no changes).
                with trio.move_on_after(retry_interval):
                    await ks.wait_for_revision(next_revision)
                continue
        await ks.wait_for_revision(next_revision)
