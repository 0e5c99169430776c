"""BlockingWorker runs a connection's blocking calls one at a time, in order,
and never leaves a cancelled call half-known."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from gazette_trio.consumer.stores.errors import StoreStateError
from gazette_trio.consumer.stores.worker import BlockingWorker


async def test_calls_run_one_at_a_time_in_the_order_they_were_made() -> None:
    worker = BlockingWorker("test worker")
    running = 0
    overlap = False
    order: list[int] = []

    def job(i: int) -> None:
        nonlocal running, overlap
        running += 1
        overlap |= running > 1
        time.sleep(0.002)
        order.append(i)
        running -= 1

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(worker.call, lambda i=i: job(i))
            await trio.lowlevel.checkpoint()  # fix the call order
    assert order == list(range(20))
    assert not overlap


async def test_a_call_cancelled_before_it_started_never_runs_and_breaks_nothing() -> None:
    worker = BlockingWorker("test worker")
    release = threading.Event()
    ran: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.call, lambda: release.wait(5))
        await trio.sleep(0.02)
        with trio.move_on_after(0.02):
            await worker.call(lambda: ran.append("cancelled call"))
        release.set()
    assert await worker.call(lambda: "still usable") == "still usable"
    assert ran == []


async def test_a_call_cancelled_while_running_is_interrupted_and_breaks_the_worker() -> None:
    stop = threading.Event()
    worker = BlockingWorker("test worker", interrupt=stop.set)
    with trio.move_on_after(0.05):
        await worker.call(lambda: stop.wait(30))
    assert stop.is_set(), "the driver was asked to interrupt the running call"
    assert worker.broken is not None
    with pytest.raises(StoreStateError, match="cancelled while running in test worker"):
        await worker.call(lambda: None)


async def test_close_waits_for_the_running_call_then_releases_once() -> None:
    worker = BlockingWorker("test worker")
    release = threading.Event()
    closed: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.call, lambda: release.wait(5))
        await trio.sleep(0.02)
        worker.close(lambda: closed.append("closed"))
        worker.close(lambda: closed.append("closed twice"))
        assert closed == [], "the connection is still in use"
        release.set()
    assert closed == ["closed"]
    with pytest.raises(StoreStateError, match="closed"):
        await worker.call(lambda: None)
