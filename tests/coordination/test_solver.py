"""Properties of the allocation solver on random topologies (hypothesis).

Each property is what the allocator promises the group: as many assignments
as capacity allows (checked against an independent max-flow), member limits
and distinct replicas, replicas spread across zones, stability when nothing
changed, and little movement when little changed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from gazette_trio.allocator.solver import solve


@dataclass
class Topology:
    replication: list[int]
    zone: list[int]
    limit: list[int]
    current: list[list[int]]


@st.composite
def topologies(draw: st.DrawFn, *, with_current: bool = True) -> Topology:
    zones = draw(st.integers(1, 4))
    members = draw(st.integers(1, 12))
    zone = [draw(st.integers(0, zones - 1)) for _ in range(members)]
    # Zone indices must be dense: renumber in order of first appearance.
    order = {z: k for k, z in enumerate(dict.fromkeys(sorted(zone)))}
    zone = [order[z] for z in zone]
    limit = draw(st.lists(st.integers(0, 8), min_size=members, max_size=members))
    items = draw(st.integers(0, 30))
    replication = draw(st.lists(st.integers(0, 4), min_size=items, max_size=items))
    current: list[list[int]] = [[] for _ in range(items)]
    if with_current and members:
        for i in range(items):
            current[i] = draw(st.lists(st.integers(0, members - 1), max_size=4))
    return Topology(replication, zone, limit, current)


def max_assignments(replication: Sequence[int], limit: Sequence[int]) -> int:
    """Independent max-flow (Edmonds-Karp on an explicit graph): the most
    assignments possible with distinct members per item within limits."""
    n, m = len(replication), len(limit)
    source, sink = n + m, n + m + 1
    cap: dict[tuple[int, int], int] = {}
    adj: list[list[int]] = [[] for _ in range(n + m + 2)]

    def edge(u: int, v: int, c: int) -> None:
        cap[(u, v)] = cap.get((u, v), 0) + c
        cap.setdefault((v, u), 0)
        adj[u].append(v)
        adj[v].append(u)

    for i, r in enumerate(replication):
        edge(source, i, r)
        for j in range(m):
            edge(i, n + j, 1)
    for j, lim in enumerate(limit):
        edge(n + j, sink, lim)
    flow = 0
    while True:
        parent = {source: source}
        queue = deque([source])
        while queue and sink not in parent:
            u = queue.popleft()
            for v in adj[u]:
                if v not in parent and cap[(u, v)] > 0:
                    parent[v] = u
                    queue.append(v)
        if sink not in parent:
            return flow
        v = sink
        while v != source:
            u = parent[v]
            cap[(u, v)] -= 1
            cap[(v, u)] += 1
            v = u
        flow += 1


def loads(assignments: Sequence[Sequence[int]], members: int) -> list[int]:
    out = [0] * members
    for held in assignments:
        for m in held:
            out[m] += 1
    return out


def spread_violations(t: Topology, assignments: Sequence[Sequence[int]]) -> list[int]:
    """Items with a zone holding two more replicas than a zone with room."""
    load = loads(assignments, len(t.zone))
    zones = max(t.zone) + 1
    bad = []
    for i, held in enumerate(assignments):
        counts = [0] * zones
        for m in held:
            counts[t.zone[m]] += 1
        for z in range(zones):
            room = any(
                t.zone[m] == z and load[m] < t.limit[m] and m not in held
                for m in range(len(t.zone))
            )
            if room and counts[z] <= max(counts) - 2:
                bad.append(i)
                break
    return bad


def moved(before: Sequence[Sequence[int]], after: Sequence[Sequence[int]]) -> int:
    return sum(len(set(a) - set(b)) for a, b in zip(after, before, strict=True))


@settings(max_examples=300, deadline=None)
@given(topologies())
def test_limits_hold_and_replicas_are_distinct(t: Topology) -> None:
    """No member exceeds its limit; an item never has more replicas than it
    wants, nor two on one member."""
    result = solve(t.replication, t.zone, t.limit, t.current).assignments
    for i, held in enumerate(result):
        assert len(held) == len(set(held)) <= t.replication[i]
    for m, load in enumerate(loads(result, len(t.zone))):
        assert load <= t.limit[m]


@settings(max_examples=300, deadline=None)
@given(topologies())
def test_assignments_are_maximal(t: Topology) -> None:
    """The solver makes as many assignments as any assignment could: every
    item is fully replicated whenever capacity allows it."""
    result = solve(t.replication, t.zone, t.limit, t.current)
    best = max_assignments(t.replication, t.limit)
    assert sum(len(h) for h in result.assignments) == best
    if best == sum(min(r, sum(1 for x in t.limit if x > 0)) for r in t.replication):
        assert all(
            len(h) == min(r, sum(1 for x in t.limit if x > 0))
            for h, r in zip(result.assignments, t.replication, strict=True)
        )


@settings(max_examples=300, deadline=None)
@given(topologies())
def test_replicas_spread_across_zones(t: Topology) -> None:
    """No zone holds two more of an item's replicas than a zone that has a
    member with room for it (with R <= zones: never two in one zone while
    another zone has room)."""
    result = solve(t.replication, t.zone, t.limit, t.current).assignments
    assert spread_violations(t, result) == []


@settings(max_examples=300, deadline=None)
@given(topologies())
def test_resolving_an_unchanged_state_moves_nothing(t: Topology) -> None:
    """Solving again from the solver's own answer returns it unchanged."""
    first = solve(t.replication, t.zone, t.limit, t.current).assignments
    second = solve(t.replication, t.zone, t.limit, first)
    assert second.assignments == first
    assert moved(first, second.assignments) == 0


@settings(max_examples=200, deadline=None)
@given(topologies(with_current=False), st.data())
def test_a_member_leaving_moves_little_more_than_its_own_items(
    t: Topology, data: st.DataObject
) -> None:
    """When one member leaves, what moves is essentially what it held."""
    before = solve(t.replication, t.zone, t.limit).assignments
    leaving = data.draw(st.integers(0, len(t.zone) - 1))
    limit = list(t.limit)
    limit[leaving] = 0
    after = solve(t.replication, t.zone, limit, before).assignments
    held = loads(before, len(t.zone))[leaving]
    assert moved(before, after) <= 2 * held + max(t.replication, default=0)


@settings(max_examples=200, deadline=None)
@given(topologies(with_current=False), st.integers(0, 4))
def test_adding_an_item_moves_little(t: Topology, replication: int) -> None:
    """A new item gets its replicas without reshuffling the others much."""
    before = solve(t.replication, t.zone, t.limit).assignments
    after = solve([*t.replication, replication], t.zone, t.limit, [*before, []]).assignments
    assert moved(before, after[:-1]) <= 2 * replication


def test_large_topology_is_balanced_across_members_and_zones() -> None:
    """10,000 items of 3 replicas over 100 members in 3 zones: every item gets
    one replica per zone, and the members of a zone share its load evenly."""
    zone = [m % 3 for m in range(100)]
    result = solve([3] * 10_000, zone, [400] * 100).assignments
    assert all(sorted(zone[m] for m in held) == [0, 1, 2] for held in result)
    load = loads(result, 100)
    for z in range(3):
        in_zone = [load[m] for m in range(100) if zone[m] == z]
        assert sum(in_zone) == 10_000
        assert max(in_zone) - min(in_zone) <= 1
