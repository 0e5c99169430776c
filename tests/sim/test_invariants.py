"""The invariants, on hand-made histories: each violation is named.

These are the judgements the simulation makes about a run; here each is fed
a short history directly, so what counts as a violation is spelled out.
"""

from __future__ import annotations

from gazette_trio.protocol import consumer as pc
from gazette_trio.testing.sim.invariants import Invariants
from gazette_trio.testing.sim.producers import Ledger, StreamLedger
from gazette_trio.testing.sim.trace import Trace

J = "chunks/part-00"


def checkpoint(offset: int) -> pc.Checkpoint:
    return pc.Checkpoint(sources={J: pc.CheckpointSource(read_through=offset)})


def invariants(*values: int, committing: dict[int, int] | None = None) -> Invariants:
    ledger = Ledger()
    total = len(values) + len(committing or {})
    stream = StreamLedger(name="s0-0", journal=J, total=total, committed=list(values))
    stream.committing.update(committing or {})
    ledger.add(stream)
    return Invariants(ledger, Trace())


def chunk(seq: int, value: int) -> dict[str, object]:
    return {"stream": "s0-0", "seq": seq, "value": value}


async def test_consuming_each_committed_chunk_once_in_order_is_no_violation() -> None:
    inv = invariants(10, 20, committing={3: 30})
    state: dict[str, list[int]] = {}
    for seq, value in ((1, 10), (2, 20), (3, 30)):
        inv.consumed("summer-00/mem0.1/1", state, chunk(seq, value))
    assert inv.violations == []
    assert state == {"s0-0": [3, 60, 0]}


async def test_a_duplicate_or_a_gap_in_consumed_chunks_is_a_violation() -> None:
    inv = invariants(10, 20, 30)
    state: dict[str, list[int]] = {}
    inv.consumed("i", state, chunk(1, 10))
    inv.consumed("i", state, chunk(1, 10))
    inv.consumed("i", state, chunk(3, 30))
    assert [v.split(":")[0] for v in inv.violations] == [
        "input not exactly once",
        "input not exactly once",
    ]
    assert "a duplicate" in inv.violations[0] and "a gap" in inv.violations[1]


async def test_consuming_a_rolled_back_chunk_is_a_violation() -> None:
    inv = invariants(10)
    inv.consumed("i", {"s0-0": [1, 10, 0]}, chunk(2, 99))
    assert inv.violations and inv.violations[0].startswith("uncommitted input consumed")


async def test_a_durable_state_must_sum_exactly_the_committed_chunks() -> None:
    inv = invariants(10, 20)
    inv.restored("summer-00", "i1", checkpoint(0), {})
    inv.committed("summer-00", "i1", checkpoint(100), {"s0-0": [2, 30, 1]})
    assert inv.violations == []
    inv.committed("summer-00", "i1", checkpoint(200), {"s0-0": [2, 40, 2]})
    assert inv.violations[0].startswith("state not exact")


async def test_a_stale_restore_is_an_anomaly_and_its_first_commit_a_violation() -> None:
    """Restoring behind a durable commit is reported; it breaks nothing
    while the stale instance cannot commit (fenced), and the shard's current
    instance keeps committing. If the stale instance ever commits, the
    acknowledged commits it missed are lost."""
    inv = invariants(10, 20)
    inv.restored("summer-00", "i1", checkpoint(0), {})
    inv.committed("summer-00", "i1", checkpoint(100), {"s0-0": [1, 10, 1]})
    inv.restored("summer-00", "i2", checkpoint(50), {})
    assert inv.violations == []
    assert inv.anomalies[0].startswith("stale restore: i2 restored")
    inv.committed("summer-00", "i1", checkpoint(150), {"s0-0": [2, 30, 2]})
    assert inv.violations == []
    inv.committed("summer-00", "i2", checkpoint(120), {"s0-0": [2, 30, 1]})
    assert inv.violations[0].startswith("checkpoint went backward: i2, which restored behind")


async def test_the_converged_primary_must_serve_the_durable_state() -> None:
    inv = invariants(10)
    inv.restored("summer-00", "i1", checkpoint(0), {})
    inv.committed("summer-00", "i1", checkpoint(100), {"s0-0": [1, 10, 1]})
    inv.serving("summer-00", "i1", {"s0-0": [1, 10, 1]})
    assert inv.violations == []
    inv.serving("summer-00", "i1", {})
    assert inv.violations[0].startswith("primary state not durable")


async def test_a_deposed_instance_may_commit_only_what_its_successor_restored() -> None:
    inv = invariants(10, 20)
    inv.restored("summer-00", "i1", checkpoint(0), {})
    inv.restored("summer-00", "i2", checkpoint(100), {"s0-0": [1, 10, 1]})
    # i1's commit landed before i2's fence (i2 restored it): fine.
    inv.committed("summer-00", "i1", checkpoint(100), {"s0-0": [1, 10, 1]})
    assert inv.violations == []
    # A commit past what i2 restored: two members committed for the shard.
    inv.committed("summer-00", "i1", checkpoint(150), {"s0-0": [2, 30, 2]})
    assert inv.violations[0].startswith("fence broken")


async def test_outputs_are_numbered_without_duplicate_or_gap_and_sum_committed_chunks() -> None:
    inv = invariants(10, 20, 30)
    inv.output("sums/part-00", 0, {"stream": "s0-0", "out": 1, "seq": 2, "sum": 30})
    inv.output("sums/part-00", 10, {"stream": "s0-0", "out": 2, "seq": 3, "sum": 60})
    assert inv.violations == []
    inv.output("sums/part-00", 20, {"stream": "s0-0", "out": 2, "seq": 3, "sum": 60})
    inv.output("sums/part-00", 30, {"stream": "s0-0", "out": 4, "seq": 3, "sum": 61})
    kinds = [v.split(":")[0] for v in inv.violations]
    assert kinds == [
        "output not exactly once",
        "output wrong",
        "output not exactly once",
        "output wrong",
    ]


async def test_completion_waits_for_every_committed_chunk_and_its_output() -> None:
    inv = invariants(10, 20)
    shards = {"summer-00": ["s0-0"]}
    inv.restored("summer-00", "i1", checkpoint(0), {})
    assert inv.incomplete(shards) == "summer-00's durable state holds s0-0 through #0 of 2"
    inv.committed("summer-00", "i1", checkpoint(100), {"s0-0": [2, 30, 1]})
    assert inv.incomplete(shards) == "the verifier read s0-0 outputs through #0 of 1"
    inv.output("sums/part-00", 0, {"stream": "s0-0", "out": 1, "seq": 2, "sum": 30})
    assert inv.incomplete(shards) is None
    inv.final(shards)
    assert inv.violations == []
    assert inv.checks["final state is exact"] == inv.checks["final output is exact"] == 1
