"""OpFuture resolves once, wakes every waiter, and barriers wait for all."""

from __future__ import annotations

import pytest
import trio

from gazette_trio.opfuture import OpFuture, wait_all


async def test_every_waiter_sees_the_value() -> None:
    future: OpFuture[int] = OpFuture()
    seen: list[int] = []
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(lambda: _append(seen, future))
        await trio.lowlevel.checkpoint()
        assert not future.done()
        future.resolve(7)
    assert seen == [7, 7, 7]
    assert await future == 7


async def _append(seen: list[int], future: OpFuture[int]) -> None:
    seen.append(await future)


async def test_an_error_is_raised_to_each_waiter() -> None:
    future: OpFuture[None] = OpFuture.failed(ValueError("commit failed"))
    for _ in range(2):
        with pytest.raises(ValueError, match="commit failed"):
            await future
    assert isinstance(future.error(), ValueError)


def test_a_future_resolves_only_once() -> None:
    future: OpFuture[None] = OpFuture.resolved()
    with pytest.raises(RuntimeError, match="twice"):
        future.resolve()
    with pytest.raises(RuntimeError, match="twice"):
        future.fail(ValueError())


def test_result_of_a_pending_future_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not done"):
        OpFuture().result()


async def test_wait_all_waits_for_every_future_even_after_a_failure() -> None:
    failed: OpFuture[None] = OpFuture.failed(KeyError("first"))
    slow: OpFuture[None] = OpFuture()
    released = False

    async def barrier() -> None:
        nonlocal released
        with pytest.raises(KeyError):
            await wait_all([failed, slow])
        released = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(barrier)
        await trio.sleep(0.01)
        # The barrier must not release while `slow` is still in flight.
        assert not released
        slow.resolve()
    assert released
