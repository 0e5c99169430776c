"""A deposed primary cannot commit once its successor took the log over.

The primary `alpha` is cut off from etcd (its requests and watch deliveries
wait) and its lease is expired: to the group it is gone, and its standby
`beta` is promoted and takes the recovery log over with a hand-off, which
sets the log's `author` register to beta's author. alpha, still reading its
source journal and still believing itself primary, goes on consuming. What
is promised:

- alpha's next commit fails: its recorder's append is refused with
  REGISTER_MISMATCH, so the store commit fails with `FencedError` and
  alpha's shard fails;
- the log holds no op of alpha after beta's hand-off: every op from the
  hand-off on is beta's;
- the committed state is exactly the input, each line counted once (by
  beta), whatever alpha read;
- once alpha reaches etcd again it learns its lease is lost and stops.
"""

from __future__ import annotations

from pathlib import Path

import trio

from gazette_trio.broker.errors import JournalError
from gazette_trio.consumer.stores.errors import FencedError
from gazette_trio.etcd import LeaseLost
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.recoverylog import RecordedOp

from .harness import Code, RecoveryCluster, expected_counts

TIMEOUT = 30


def batch(round_: int, n: int = 20) -> list[str]:
    return [f"w{(round_ * 7 + i) % 23} round{round_}" for i in range(n)]


def is_noop(op: RecordedOp) -> bool:
    """A no-op: what a player appends to hand the log off to a new author."""
    return all(f is None for f in (op.create, op.link, op.unlink, op.write, op.property))


def causes(exc: BaseException | None) -> list[BaseException]:
    out = []
    while exc is not None:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


async def test_a_partitioned_primary_cannot_commit_after_its_standby_took_over(
    group: RecoveryCluster, tmp_path: Path
) -> None:
    g = group
    alpha = await g.add_member("alpha")
    with trio.fail_after(TIMEOUT):
        assert (await g.primary()) is alpha
        beta = await g.add_member("beta")
        await beta.statuses.wait_for(Code.STANDBY)
        for round_ in range(5):
            await g.publish(batch(round_))
            await g.wait_consumed()

    # Partition alpha from etcd, and let the group see its lease expire.
    alpha.etcd.partition()
    await g.etcd.expire_lease(alpha.lease_id)
    with trio.fail_after(TIMEOUT):
        assert (await g.primary(not_on="alpha")) is beta
    handed_off_at = g.log_head()
    zombie = alpha.shard
    assert zombie is not None and zombie.is_primary and not zombie.finished

    # alpha still reads its source, consumes, and tries to commit.
    await g.publish(batch(100))
    with trio.fail_after(TIMEOUT):
        while zombie.error is None:
            await trio.sleep(0.01)
    chain = causes(zombie.error)
    assert any(isinstance(e, FencedError) for e in chain), chain
    assert any(
        isinstance(e, JournalError) and e.status == pb.Status.REGISTER_MISMATCH for e in chain
    ), chain

    # beta commits the same input; the log holds nothing of alpha after the hand-off.
    with trio.fail_after(TIMEOUT):
        await g.wait_consumed(not_on="alpha")
    ops = await g.log_ops()
    handoffs = [i for i, op in enumerate(ops) if is_noop(op)]
    handoff = ops[handoffs[-1]]
    assert handoff.first_offset < handed_off_at
    alpha_author = ops[handoffs[-2]].author  # alpha's own hand-off, on the empty log
    assert alpha_author != handoff.author
    assert any(op.author == alpha_author for op in ops[: handoffs[-1]])
    after = ops[handoffs[-1] :]
    assert len(after) > 1 and {op.author for op in after} == {handoff.author}
    assert await g.committed_counts(tmp_path / "check") == expected_counts(g.lines)

    # Reconnected, alpha learns its lease is gone and stops.
    alpha.etcd.heal()
    with trio.fail_after(TIMEOUT):
        await alpha.done.wait()
    assert isinstance(alpha.error, LeaseLost), alpha.error
