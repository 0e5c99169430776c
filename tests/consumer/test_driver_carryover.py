"""A batch the driver received but could not consume in its transaction is
consumed by the next one: no message read is ever dropped.

A batch can arrive while a transaction waits and yet find it past its
max_duration by the time the driver looks at the clock again (other tasks
ran meanwhile, e.g. a source reader decoding its next chunk). That
transaction no longer reads, so it commits without the batch; the batch
belongs to the next transaction.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from tests.consumer.test_driver import Msg, make, spec

__all__ = ["make"]


async def test_a_batch_received_as_max_duration_passes_is_consumed_by_the_next_transaction(
    make: Any, autojump_clock: trio.testing.MockClock
) -> None:
    h = await make(spec(min_s=0, max_s=1.0))
    h.intake.pending = True  # keeps the transaction open, waiting, until max_duration
    await h.feed(1)
    await trio.sleep(0.5)
    assert h.app.txns == [[1]]
    # The waiting driver is handed the batch; before it runs again, time
    # passes the transaction's max_duration.
    h.send.send_nowait([Msg("in", 20, 2), Msg("in", 30, 3)])
    autojump_clock.jump(1.0)
    await trio.sleep(3)
    assert h.app.txns[:2] == [[1], [2, 3]]
    assert h.db.committed_state(h.shard.fqn) == {"sum": 6}
    assert h.db.committed_checkpoint(h.shard.fqn).sources["in"].read_through == 30
