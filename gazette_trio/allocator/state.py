"""`State`: one consistent snapshot of a consumer group, from its KeySpace.

A State is what the allocator and the consumer runtime read: the items
(shards), members, and assignments under the root at one revision, indexed
for lookups, plus what is derived from them: this process's member and its
assignments ("local items"), the leader (the member whose key has the
lowest create revision), per-member assignment counts, each member's
effective limit, and the "network" (items' replication and members'
effective limits) whose change makes the leader re-solve.

Exiting members (`ConsumerSpec.exiting`, set by a member leaving
gracefully) shed capacity as Gazette's allocator does since v0.102: the
group's spare slots (member limits beyond the items' total replication)
are taken from exiting members, the oldest first (by the create revision
of the member key), each losing up to its whole limit, while at least as
many members as the largest replication factor keep their full limit. A
member's effective limit is its limit less what it sheds; the solver and the
convergence rounds use it, so the shards of a member that sheds everything
move away, and one that cannot shed (no spare capacity, or too few other
members) keeps them.

`StateView` keeps a State current as the KeySpace changes and tells
observers.

This module owns the snapshot and its derivations. It does not change etcd.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import trio

from ..etcd import ResponseHeader
from ..keyspace import KeySpace
from .model import ASSIGN, ITEMS, MEMBERS, Assignment, Item, Member, member_key


@dataclass(frozen=True, slots=True)
class LocalItem:
    """An item assigned to this member: the item, all of its assignments (in
    key order), and which of them is ours."""

    item: Item
    assignments: tuple[Assignment, ...]
    index: int

    @property
    def assignment(self) -> Assignment:
        return self.assignments[self.index]

    @property
    def is_primary(self) -> bool:
        return self.assignment.slot == 0


@dataclass(frozen=True)
class State:
    """The group at `revision`, seen by the member `local_key`."""

    root: str
    local_key: str
    revision: int
    etcd: ResponseHeader
    items: tuple[Item, ...]
    members: tuple[Member, ...]
    assignments: tuple[Assignment, ...]
    item_by_id: Mapping[str, Item]
    member_by_key: Mapping[str, Member]
    assignments_by_item: Mapping[str, tuple[Assignment, ...]]
    local_member: Member | None
    local_items: tuple[LocalItem, ...]
    leader_key: str | None
    member_total: Mapping[str, int]
    member_primary: Mapping[str, int]
    shed_capacity: Mapping[str, int]
    effective_limit: Mapping[str, int]
    network: tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]
    undecodable_items: frozenset[str]

    @classmethod
    def build(cls, ks: KeySpace, local_key: str) -> State:
        # The group's KeySpace is rooted at "{root}/" (see `model.keyspace`).
        root = ks.root[:-1] if ks.root.endswith("/") else ks.root
        items = tuple(e.value for e in ks.prefixed(root + ITEMS))
        members = tuple(e.value for e in ks.prefixed(root + MEMBERS))
        assignments = tuple(e.value for e in ks.prefixed(root + ASSIGN))
        item_by_id = {item.id: item for item in items}
        member_by_key = {m.key: m for m in members}
        by_item: dict[str, list[Assignment]] = {}
        for a in assignments:
            by_item.setdefault(a.item_id, []).append(a)
        assignments_by_item = {k: tuple(v) for k, v in by_item.items()}
        total = dict.fromkeys(member_by_key, 0)
        primary = dict.fromkeys(member_by_key, 0)
        local: list[LocalItem] = []
        members_prefix = root + MEMBERS
        for item_id, group in assignments_by_item.items():
            item = item_by_id.get(item_id)
            for index, a in enumerate(group):
                key = members_prefix + a.zone + "#" + a.suffix
                if key in total:
                    total[key] += 1
                    if a.slot == 0:
                        primary[key] += 1
                if item is not None and key == local_key:
                    local.append(LocalItem(item, group, index))
        shed = shed_capacity(items, members)
        effective = {m.key: m.limit - shed.get(m.key, 0) for m in members}
        leader = min(members, key=lambda m: (m.kv.create_revision, m.key), default=None)
        undecodable = frozenset(
            key[len(root + ITEMS) :] for key in ks.decode_errors if key.startswith(root + ITEMS)
        )
        return cls(
            root=root,
            local_key=local_key,
            revision=ks.revision,
            etcd=ks.header,
            items=items,
            members=members,
            assignments=assignments,
            item_by_id=item_by_id,
            member_by_key=member_by_key,
            assignments_by_item=assignments_by_item,
            local_member=member_by_key.get(local_key),
            local_items=tuple(local),
            leader_key=leader.key if leader is not None else None,
            member_total=total,
            member_primary=primary,
            shed_capacity=shed,
            effective_limit=effective,
            network=(
                tuple((item.id, item.replication) for item in items),
                tuple((m.key, effective[m.key]) for m in members),
            ),
            undecodable_items=undecodable,
        )

    @property
    def is_leader(self) -> bool:
        return self.leader_key == self.local_key

    @property
    def should_exit(self) -> bool:
        """The local member is exiting and holds nothing any more."""
        return self.local_member is not None and self.local_member.exiting and not self.local_items

    def limit_of(self, member: Member) -> int:
        """The member's effective limit: its limit less the capacity it sheds."""
        return self.effective_limit.get(member.key, member.limit)

    def member_of(self, assignment: Assignment) -> Member | None:
        return self.member_by_key.get(member_key(self.root, assignment.zone, assignment.suffix))

    def local_item(self, item_id: str) -> LocalItem | None:
        for local in self.local_items:
            if local.item.id == item_id:
                return local
        return None


def shed_capacity(items: Sequence[Item], members: Sequence[Member]) -> dict[str, int]:
    """Slots each exiting member gives up, by member key (see the module
    docstring); members that shed nothing are absent."""
    exiting = sorted((m for m in members if m.exiting), key=lambda m: (m.kv.create_revision, m.key))
    if not exiting:
        return {}
    replication = [item.replication for item in items]
    spare = max(0, sum(m.limit for m in members) - sum(replication))
    # Enough members must keep their whole limit to hold every replica of
    # the most replicated item; the count ignores zones, as Gazette's does.
    may_shed = max(0, len(members) - max(replication, default=0))
    shed: dict[str, int] = {}
    for member in exiting[:may_shed]:
        if spare == 0:
            break
        n = min(member.limit, spare)
        if n > 0:
            shed[member.key] = n
        spare -= n
    return shed


class StateView:
    """Keeps `state` equal to the KeySpace's content, and tells observers.

    Observers are called (synchronously, in order) with each new State,
    right after the KeySpace applied a change; `wait_for_revision` and
    `wait_for_change` let tasks wait instead.
    """

    def __init__(self, ks: KeySpace, local_key: str) -> None:
        self.keyspace = ks
        self.local_key = local_key
        self.observers: list[Callable[[State], None]] = []
        self.state = State.build(ks, local_key)
        self._changed = trio.Event()
        ks.observers.append(self._rebuild)

    def _rebuild(self) -> None:
        self.state = State.build(self.keyspace, self.local_key)
        for observer in self.observers:
            observer(self.state)
        event, self._changed = self._changed, trio.Event()
        event.set()

    async def wait_for_revision(self, revision: int) -> State:
        """The State once the KeySpace has applied `revision`."""
        await self.keyspace.wait_for_revision(revision)
        return self.state

    async def wait_for_change(self, after_revision: int | None = None) -> State:
        """A State newer than `after_revision`: at once if the current one
        is, else the next one built. Pass the revision of the State you last
        acted on, so that a change made while you were busy is not missed."""
        if after_revision is not None and self.state.revision > after_revision:
            return self.state
        await self._changed.wait()
        return self.state
