"""The allocation solver: which members should hold which items.

A pure function of integers. Items want `replication[i]` replicas on distinct
members; member `m` is in zone `zone[m]` and holds at most `limit[m]` items.
The solver returns, for every item, the members that should hold it, such
that, in order of priority:

1. the number of assignments is maximal (a maximum flow of the network
   source -> item -> (item, zone) -> member -> sink);
2. an item's replicas are spread across zones: no zone holds two more of an
   item's replicas than another zone where a member still has room for it;
3. members carry about their fair share (their limit scaled by total demand
   over total capacity) before any carries more;
4. current assignments are kept wherever that does not cost 1-3 (minimal
   churn); re-solving a state the solver produced moves nothing.

How (the same network as Gazette's sparse push/relabel allocator, solved
another way, suited to Python): capacities are relaxed in phases, from the
tightest (fair-share members, replicas spread uniformly over zones) to
Gazette's (a zone may take all but one replica, then all of them). Each
phase first restores current assignments the phase allows, then places what
is missing greedily (the least-represented zone, the least-loaded member),
then augments along shortest paths of the residual network (which may move
other assignments) until none remains. Augmenting never lowers a member's
load, so a member that was full stays full and the phase order holds. A last
pass moves replicas out of a zone that holds too many into a zone with room.
If the current assignment is already as good on 1-3, it is returned as is.

This module owns the algorithm only: `allocate` maps etcd state to and from
these integers.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Solution:
    """Members (sorted indices) per item, and what the solve found."""

    assignments: list[list[int]]
    kept_current: bool
    placed: int
    desired: int


class _Network:
    def __init__(
        self,
        replication: Sequence[int],
        zone: Sequence[int],
        limit: Sequence[int],
    ) -> None:
        self.n = len(replication)
        self.mm = len(zone)
        self.zones = (max(zone) + 1) if zone else 0
        self.zone = list(zone)
        self.limit = [max(0, x) for x in limit]
        self.zone_members: list[list[int]] = [[] for _ in range(self.zones)]
        for m, z in enumerate(self.zone):
            if self.limit[m] > 0:
                self.zone_members[z].append(m)
        usable = sum(1 for x in self.limit if x > 0)
        self.want = [min(max(0, r), usable) for r in replication]
        self.live_zones = sum(1 for members in self.zone_members if members)
        demand = sum(self.want)
        capacity = sum(self.limit)
        if demand >= capacity or capacity == 0:
            self.fair = list(self.limit)
        else:
            # Gazette's scaleAndRound: limit * demand / capacity, rounded up.
            self.fair = [-(-x * demand // capacity) for x in self.limit]
        self.holders: list[list[int]] = [[] for _ in range(self.n)]
        self.on: list[set[int]] = [set() for _ in range(self.mm)]
        self.load = [0] * self.mm
        self.zc: list[list[int]] = [[0] * self.zones for _ in range(self.n)]

    # Zone caps of the phases.
    def uniform_cap(self, i: int) -> int:
        return -(-self.want[i] // self.live_zones) if self.live_zones else 0

    def gazette_cap(self, i: int) -> int:
        return max(self.want[i] - 1, 1) if self.live_zones > 1 else self.want[i]

    def add(self, i: int, m: int) -> None:
        self.holders[i].append(m)
        self.on[m].add(i)
        self.load[m] += 1
        self.zc[i][self.zone[m]] += 1

    def remove(self, i: int, m: int) -> None:
        self.holders[i].remove(m)
        self.on[m].discard(i)
        self.load[m] -= 1
        self.zc[i][self.zone[m]] -= 1

    # ------------------------------------------------------------------

    def restore(self, current: Sequence[Sequence[int]], cap: list[int], zcap: list[int]) -> None:
        depth = max((len(c) for c in current), default=0)
        for k in range(depth):
            for i, members in enumerate(current):
                if k >= len(members):
                    continue
                m = members[k]
                if not 0 <= m < self.mm or m in self.holders[i]:
                    continue
                if (
                    len(self.holders[i]) < self.want[i]
                    and self.load[m] < cap[m]
                    and self.zc[i][self.zone[m]] < zcap[i]
                ):
                    self.add(i, m)

    def fill(self, cap: list[int], zcap: list[int]) -> None:
        """Place missing replicas greedily: the zone with fewest of the item's
        replicas (then the most free room), the least-loaded member."""
        heaps: list[list[tuple[float, int, int]]] = []
        free = [0] * self.zones
        for z, members in enumerate(self.zone_members):
            heap = []
            for m in members:
                if self.load[m] < cap[m]:
                    heap.append((self.load[m] / self.limit[m], m, self.load[m]))
                    free[z] += cap[m] - self.load[m]
            heapq.heapify(heap)
            heaps.append(heap)
        zones = range(self.zones)
        for i in range(self.n):
            while len(self.holders[i]) < self.want[i]:
                counts = self.zc[i]
                order = sorted(
                    (z for z in zones if counts[z] < zcap[i] and free[z] > 0),
                    key=lambda z: (counts[z], -free[z], z),
                )
                placed = False
                for z in order:
                    heap = heaps[z]
                    skipped = []
                    chosen = -1
                    while heap:
                        ratio, m, at = heapq.heappop(heap)
                        if at != self.load[m] or self.load[m] >= cap[m]:
                            continue  # stale, or full
                        if i in self.on[m]:
                            skipped.append((ratio, m, at))
                            continue
                        chosen = m
                        break
                    for entry in skipped:
                        heapq.heappush(heap, entry)
                    if chosen >= 0:
                        self.add(i, chosen)
                        free[z] -= 1
                        if self.load[chosen] < cap[chosen]:
                            heapq.heappush(
                                heap,
                                (self.load[chosen] / self.limit[chosen], chosen, self.load[chosen]),
                            )
                        placed = True
                        break
                if not placed:
                    break

    def augment(self, cap: list[int], zcap: list[int]) -> None:
        """Augment along residual paths until no deficit can be met.

        Dinic's scheme on the implicit network: a breadth-first pass from
        every item short of replicas labels nodes with their distance, then
        depth-first searches follow only distance-increasing edges (so paths
        are simple and a node found to lead nowhere is never tried again)
        and augment as many paths as that labelling allows; repeat.
        """
        while self._augment_phase(cap, zcap):
            pass

    def _augment_phase(self, cap: list[int], zcap: list[int]) -> bool:
        n, nz = self.n, self.zones
        mbase = n
        zbase = n + self.mm
        deficient = [i for i in range(n) if len(self.holders[i]) < self.want[i]]
        if not deficient:
            return False
        zc, on, zone, load, holders = self.zc, self.on, self.zone, self.load, self.holders
        level: dict[int, int] = {}
        queue: deque[int] = deque()
        for i in deficient:
            level[i] = 0
            queue.append(i)
        unvisited = [list(members) for members in self.zone_members]
        reachable = False
        while queue:
            u = queue.popleft()
            lv = level[u] + 1
            if u < mbase:
                counts = zc[u]
                for z in range(nz):
                    if counts[z] < zcap[u]:
                        v = zbase + u * nz + z
                        if v not in level:
                            level[v] = lv
                            queue.append(v)
            elif u < zbase:
                m = u - mbase
                z = zone[m]
                for i in on[m]:
                    v = zbase + i * nz + z
                    if v not in level:
                        level[v] = lv
                        queue.append(v)
            else:
                i, z = divmod(u - zbase, nz)
                if zc[i][z] > 0 and i not in level:
                    level[i] = lv
                    queue.append(i)
                remaining = []
                for m in unvisited[z]:
                    if i in on[m]:
                        remaining.append(m)
                        continue
                    level[mbase + m] = lv
                    if load[m] < cap[m]:
                        reachable = True
                    else:
                        queue.append(mbase + m)
                unvisited[z] = remaining
        if not reachable:
            return False

        def arcs(u: int) -> Iterator[int]:
            """Residual edges from u to the next level, checked when reached."""
            nxt = level[u] + 1
            if u < mbase:
                for z in range(nz):
                    v = zbase + u * nz + z
                    if level.get(v) == nxt and zc[u][z] < zcap[u]:
                        yield v
            elif u < zbase:
                m = u - mbase
                z = zone[m]
                for i in sorted(on[m]):
                    v = zbase + i * nz + z
                    if level.get(v) == nxt and i in on[m]:
                        yield v
            else:
                i, z = divmod(u - zbase, nz)
                if level.get(i) == nxt and zc[i][z] > 0:
                    yield i
                for m in self.zone_members[z]:
                    v = mbase + m
                    if level.get(v) == nxt and i not in on[m]:
                        yield v

        dead: set[int] = set()
        cursors: dict[int, Iterator[int]] = {}
        progressed = False
        for s in deficient:
            while len(holders[s]) < self.want[s] and s not in dead:
                stack = [s]
                found = False
                while stack:
                    u = stack[-1]
                    if mbase <= u < zbase and load[u - mbase] < cap[u - mbase]:
                        found = True
                        break
                    cursor = cursors.get(u)
                    if cursor is None:
                        cursor = cursors[u] = arcs(u)
                    for v in cursor:
                        if v not in dead:
                            stack.append(v)
                            break
                    else:
                        dead.add(u)
                        cursors.pop(u, None)
                        stack.pop()
                if not found:
                    break
                parent = {stack[k + 1]: stack[k] for k in range(len(stack) - 1)}
                parent[s] = -1
                self._apply_path(parent, stack[-1])
                progressed = True
                for u in stack:
                    cursors.pop(u, None)  # their edges changed: enumerate afresh
        return progressed

    def _apply_path(self, parent: dict[int, int], end: int) -> None:
        n, nz = self.n, self.zones
        mbase, zbase = n, n + self.mm
        v = end
        while parent[v] != -1:
            u = parent[v]
            if u < mbase:  # item -> (item, zone): one more replica in that zone
                i, z = divmod(v - zbase, nz)
                self.zc[i][z] += 1
            elif u < zbase:  # member -> (item, zone): the member lets the item go
                m = u - mbase
                i, z = divmod(v - zbase, nz)
                self.holders[i].remove(m)
                self.on[m].discard(i)
                self.load[m] -= 1
            elif v < mbase:  # (item, zone) -> item: one fewer replica in that zone
                i, z = divmod(u - zbase, nz)
                self.zc[i][z] -= 1
            else:  # (item, zone) -> member: the member takes the item
                i, z = divmod(u - zbase, nz)
                m = v - mbase
                self.holders[i].append(m)
                self.on[m].add(i)
                self.load[m] += 1
            v = u

    # ------------------------------------------------------------------

    def spread(self) -> None:
        """Move a replica out of any zone holding two more of an item's
        replicas than a zone with a member that has room for it."""
        while True:
            moved = False
            room: list[list[int]] = [
                [m for m in members if self.load[m] < self.limit[m]]
                for members in self.zone_members
            ]
            for i in range(self.n):
                if len(self.holders[i]) < 2:
                    continue
                counts = self.zc[i]
                hi = max(range(self.zones), key=lambda z: (counts[z], -z))
                for lo in sorted(range(self.zones), key=lambda z: (counts[z], z)):
                    if counts[lo] > counts[hi] - 2:
                        break
                    targets = [
                        m for m in room[lo] if i not in self.on[m] and self.load[m] < self.limit[m]
                    ]
                    if not targets:
                        continue
                    target = min(targets, key=lambda m: (self.load[m] / self.limit[m], m))
                    source = max(
                        (m for m in self.holders[i] if self.zone[m] == hi),
                        key=lambda m: (self.load[m] / self.limit[m], -m),
                    )
                    self.remove(i, source)
                    self.add(i, target)
                    moved = True
                    break
            if not moved:
                return

    def violations(self, holders: Sequence[Sequence[int]], load: Sequence[int]) -> int:
        """Items whose zone counts break the spreading rule in `holders`."""
        bad = 0
        for members in holders:
            if len(members) < 2:
                continue
            counts = [0] * self.zones
            for m in members:
                counts[self.zone[m]] += 1
            top = max(counts)
            held = set(members)
            for z in range(self.zones):
                if counts[z] <= top - 2 and any(
                    load[m] < self.limit[m] and m not in held for m in self.zone_members[z]
                ):
                    bad += 1
                    break
        return bad

    def overflow(self, load: Sequence[int]) -> int:
        return sum(max(0, x - f) for x, f in zip(load, self.fair, strict=True))


def _valid_current(
    net: _Network, current: Sequence[Sequence[int]]
) -> tuple[list[list[int]], list[int]] | None:
    """The current assignment as holders and loads, if it is a feasible one."""
    holders: list[list[int]] = []
    load = [0] * net.mm
    for i, members in enumerate(current):
        if len(members) > net.want[i] or len(set(members)) != len(members):
            return None
        for m in members:
            if not 0 <= m < net.mm or net.limit[m] == 0:
                return None
            load[m] += 1
        holders.append(list(members))
    if any(x > lim for x, lim in zip(load, net.limit, strict=True)):
        return None
    return holders, load


def _solve_from(
    replication: Sequence[int],
    zone: Sequence[int],
    limit: Sequence[int],
    current: Sequence[Sequence[int]],
) -> _Network:
    net = _Network(replication, zone, limit)
    uniform = [net.uniform_cap(i) for i in range(net.n)]
    gazette = [net.gazette_cap(i) for i in range(net.n)]
    phases = [
        (net.fair, uniform),
        (net.limit, uniform),
        (net.limit, gazette),
        (net.limit, net.want),
    ]
    last: tuple[list[int], list[int]] | None = None
    for cap, zcap in phases:
        if last is not None and last[0] == cap and last[1] == zcap:
            continue
        last = (cap, zcap)
        net.restore(current, cap, zcap)
        net.fill(cap, zcap)
        net.augment(cap, zcap)
    net.spread()
    return net


def _quality(
    net: _Network, holders: Sequence[Sequence[int]], load: Sequence[int]
) -> tuple[int, int, int]:
    """Smaller is better: more assignments, then fewer spreading violations,
    then less load above fair shares."""
    return (-sum(len(h) for h in holders), net.violations(holders, load), net.overflow(load))


def solve(
    replication: Sequence[int],
    zone: Sequence[int],
    limit: Sequence[int],
    current: Sequence[Sequence[int]] | None = None,
) -> Solution:
    """Solve an allocation.

    `replication[i]`: replicas item i wants. `zone[m]`, `limit[m]`: member m's
    zone index (0..zones-1) and item limit. `current[i]`: members now holding
    item i (in any order). Returns sorted member indices per item.

    The answer is a fixed point: solving again from it returns it unchanged.
    (A solve that starts from a better-balanced assignment can find a better
    one still, so the solver re-solves from its own answer until that stops;
    and it reads `current` as sets, so the order callers list it in cannot
    change the outcome.)
    """
    if current is None:
        current = [[] for _ in replication]
    if len(current) != len(replication):
        raise ValueError(f"current has {len(current)} items, replication {len(replication)}")
    current = [sorted(c) if len(set(c)) == len(c) else list(c) for c in current]
    net = _solve_from(replication, zone, limit, current)
    desired = sum(net.want)
    best = _quality(net, net.holders, net.load)
    existing = _valid_current(net, current)
    if existing is not None and _quality(net, *existing) <= best:
        holders = existing[0]
        return Solution([sorted(h) for h in holders], True, -best[0], desired)
    holders = [sorted(h) for h in net.holders]
    while True:
        again = _solve_from(replication, zone, limit, holders)
        quality = _quality(again, again.holders, again.load)
        if best <= quality:
            return Solution(holders, False, -best[0], desired)
        holders, best = [sorted(h) for h in again.holders], quality
