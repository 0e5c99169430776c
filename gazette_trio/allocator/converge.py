"""Moving a group toward its desired assignment, one safe step at a time.

Given the current `State` and the solver's desired members per item, this
computes the etcd operations of one convergence round, as Gazette's
allocator does (allocator.go `converge`, item_state.go), as pure functions:

- add desired assignments (an empty ReplicaStatus under the member's lease),
  unless the member is at its effective limit (an exiting member's is
  lowered by the capacity it sheds, see `state`); guarded by the member key's revision,
  so a limit lowered meanwhile cancels the add;
- remove undesired assignments only while the item keeps at least its
  desired replication of *consistent* replicas (primary ready, standbys
  caught up), releasing from the most loaded members first; guarded by the
  item's and the assignment's revisions;
- if the item has no primary, promote a replica (consistent first, then the
  member with the fewest primaries) by moving it to slot 0;
- otherwise compact slots (at most one move per round);
- delete assignments of items that no longer exist (guarded by the item's
  create revision being 0). Items whose spec fails to decode are left alone:
  their key exists, so this guard would fail every round.

Each item's operations form one `Checkpoint`, applied atomically; `batch`
packs checkpoints into transactions of at most 128 operations (etcd's
default limit), each also guarded by the leader's own member key.

This module owns those rules. It performs no I/O (see `allocate`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..etcd import Compare, Delete, Op, Put
from .model import Assignment, Item, Member, assignment_key, is_consistent, member_key
from .state import State

MAX_TXN_OPS = 128


@dataclass
class Checkpoint:
    """Comparisons and operations that must commit together."""

    compares: list[Compare] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)


@dataclass(frozen=True)
class Txn:
    compares: list[Compare]
    ops: list[Op]


@dataclass
class RoundStats:
    added: int = 0
    removed: int = 0
    promoted: int = 0
    packed: int = 0
    dead: int = 0


def _unchanged(key: str, mod_revision: int) -> Compare:
    return Compare.mod_revision(key, "=", mod_revision)


class _Counts:
    """Per-member assignment counts, updated as the round plans changes."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.total = dict(state.member_total)
        self.primary = dict(state.member_primary)

    def key(self, a: Assignment) -> str:
        return member_key(self.state.root, a.zone, a.suffix)

    def ratio(self, a: Assignment, counts: Mapping[str, int]) -> float:
        member = self.state.member_by_key.get(self.key(a))
        limit = self.state.limit_of(member) if member is not None else 0
        if member is None or limit <= 0:
            return math.inf
        return counts[member.key] / limit


def _plan_item(
    state: State,
    counts: _Counts,
    item: Item,
    current: Sequence[Assignment],
    desired: Sequence[tuple[str, str]],
    stats: RoundStats,
) -> Checkpoint:
    root = state.root
    add: list[tuple[str, str, int]] = []
    remove: list[Assignment] = []
    keep: list[Assignment] = []
    next_slot = max((a.slot + 1 for a in current), default=0)
    wanted = set(desired)
    seen: set[tuple[str, str]] = set()
    for a in current:
        if a.member in wanted and a.member not in seen:
            keep.append(a)
            seen.add(a.member)
        else:
            remove.append(a)
    new_members = sorted(wanted - seen)
    if not current and new_members:
        # A fresh item's first replica is its primary: give it to the member
        # with the fewest primaries for its limit, so primaries spread out.
        def primary_load(m: tuple[str, str]) -> float:
            member = state.member_by_key.get(member_key(root, m[0], m[1]))
            limit = state.limit_of(member) if member is not None else 0
            if member is None or limit <= 0:
                return math.inf
            return counts.primary[member.key] / limit

        first = min(new_members, key=primary_load)
        new_members.remove(first)
        new_members.insert(0, first)
    for zone, suffix in new_members:
        add.append((zone, suffix, next_slot))
        next_slot += 1

    # Removals: most loaded members first, and only while enough consistent
    # replicas remain to honour the item's replication.
    remove.sort(key=lambda a: -counts.ratio(a, counts.total))
    consistent = sum(1 for a in current if is_consistent(a, current))
    r = item.replication
    allowed = 0
    while consistent >= r and allowed < len(remove):
        c = is_consistent(remove[allowed], current)
        if c and consistent == r:
            break
        if c:
            consistent -= 1
        allowed += 1
    keep.extend(remove[allowed:])
    remove = remove[:allowed]

    # Primary: the replica in slot 0, or the best one to promote.
    keep.sort(key=lambda a: a.slot)
    if keep and keep[0].slot != 0:
        best = min(
            range(len(keep)),
            key=lambda i: (
                not is_consistent(keep[i], current),
                counts.ratio(keep[i], counts.primary),
                i,
            ),
        )
        keep.insert(0, keep.pop(best))

    # Additions within the member's limit.
    feasible: list[tuple[Member, int]] = []
    for zone, suffix, slot in add:
        target = state.member_by_key.get(member_key(root, zone, suffix))
        if target is not None and counts.total[target.key] < state.limit_of(target):
            feasible.append((target, slot))

    cp = Checkpoint()
    for member, slot in feasible:
        cp.compares.append(_unchanged(member.key, member.kv.mod_revision))
        cp.ops.append(
            Put(
                assignment_key(root, item.id, member.zone, member.suffix, slot),
                b"",
                lease=member.kv.lease,
            )
        )
        counts.total[member.key] += 1
        if slot == 0:
            counts.primary[member.key] += 1
        stats.added += 1
    for i, a in enumerate(remove):
        if i == 0:
            # The item's replication may have been raised meanwhile.
            cp.compares.append(_unchanged(item.kv.key.decode(), item.kv.mod_revision))
        cp.compares.append(_unchanged(a.key, a.kv.mod_revision))
        cp.ops.append(Delete(a.key))
        key = counts.key(a)
        if key in counts.total:
            counts.total[key] -= 1
            if a.slot == 0:
                counts.primary[key] -= 1
        stats.removed += 1
    if keep and keep[0].slot != 0:
        _move(cp, root, keep[0], 0)
        key = counts.key(keep[0])
        if key in counts.primary:
            counts.primary[key] += 1
        stats.promoted += 1
    elif not feasible and not remove:
        for slot, a in enumerate(keep):
            if slot and a.slot != slot:
                _move(cp, root, a, slot)
                stats.packed += 1
                break
    return cp


def _move(cp: Checkpoint, root: str, a: Assignment, slot: int) -> None:
    """Move an assignment to another slot: same value, same lease, atomically."""
    cp.compares.append(_unchanged(a.key, a.kv.mod_revision))
    cp.ops.append(Delete(a.key))
    cp.ops.append(
        Put(assignment_key(root, a.item_id, a.zone, a.suffix, slot), a.kv.value, lease=a.kv.lease)
    )


def converge(
    state: State, desired: Mapping[str, Sequence[tuple[str, str]]]
) -> tuple[list[Checkpoint], RoundStats]:
    """The checkpoints of one round moving `state` toward `desired`
    (members as (zone, suffix) per item id)."""
    counts = _Counts(state)
    stats = RoundStats()
    out: list[Checkpoint] = []
    for item in state.items:
        cp = _plan_item(
            state,
            counts,
            item,
            state.assignments_by_item.get(item.id, ()),
            desired.get(item.id, ()),
            stats,
        )
        if cp.ops:
            out.append(cp)
    for item_id, group in state.assignments_by_item.items():
        if item_id in state.item_by_id or item_id in state.undecodable_items:
            continue
        cp = Checkpoint()
        cp.compares.append(Compare.create_revision(state.root + "/items/" + item_id, "=", 0))
        for a in group:
            cp.compares.append(_unchanged(a.key, a.kv.mod_revision))
            cp.ops.append(Delete(a.key))
            stats.dead += 1
        out.append(cp)
    return out, stats


def batch(
    checkpoints: Sequence[Checkpoint], fixed: Sequence[Compare], max_ops: int = MAX_TXN_OPS
) -> list[Txn]:
    """Pack checkpoints into transactions within etcd's operation limit; every
    transaction carries the `fixed` comparisons too."""
    txns: list[Txn] = []
    compares: list[Compare] = list(fixed)
    ops: list[Op] = []
    for cp in checkpoints:
        if ops and (len(compares) + len(cp.compares) > max_ops or len(ops) + len(cp.ops) > max_ops):
            txns.append(Txn(compares, ops))
            compares, ops = list(fixed), []
        compares.extend(cp.compares)
        ops.extend(cp.ops)
    if ops:
        txns.append(Txn(compares, ops))
    return txns
