"""Where a simulated run's randomness comes from, and that it is given back."""

from __future__ import annotations

import gc

import trio
from trio._core import _run as trio_run

from gazette_trio.message.uuids import new_producer_id
from gazette_trio.recoverylog.author import new_author
from gazette_trio.testing.sim.determinism import Entropy, deterministic, seeded_ids


def test_named_streams_are_independent_and_reproducible() -> None:
    a, b = Entropy(1), Entropy(1)
    assert a.stream("faults") is a.stream("faults")
    a.stream("workload").random()  # drawing from one stream does not move another
    assert a.stream("faults").random() == b.stream("faults").random()
    assert Entropy(2).stream("faults").random() != Entropy(1).stream("faults").random()


def test_the_scheduler_and_collector_are_restored_after_a_run() -> None:
    state = trio_run._r.getstate()
    switch = trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    with deterministic(Entropy(9)):
        assert trio_run._ALLOW_DETERMINISTIC_SCHEDULING
        assert not gc.isenabled()
    assert trio_run._r.getstate() == state
    assert switch is trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    assert gc.isenabled()


def test_producer_ids_and_authors_come_from_the_seed_inside_a_run_only() -> None:
    async def draw() -> tuple[bytes, int]:
        with seeded_ids(Entropy(4)):
            return new_producer_id(), new_author()

    first, second = trio.run(draw), trio.run(draw)
    assert first == second
    assert first[0][0] & 0x01  # still a multicast producer id
    assert 0 < first[1] <= 0xFFFFFFFF
    assert new_producer_id() != first[0]  # outside, the OS's randomness again
