"""What a server reads ahead of a handler that does not take its requests.

A client-streaming method whose handler waits before reading is sent
requests without a `content` field (an application's messages, say). The
server reads ahead of the handler into a queue of `stream_buffer` bytes,
weighed by each request's size as received, and past that grants the
client no more window; counted exactly by a raw HTTP/2 client. Once the
handler reads, every request arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import trio
from grpclib.const import Cardinality

from gazette_trio import aio, limits
from gazette_trio.protocol.protocol import Label

from .hostile.hostile_support import frame
from .hostile.test_unread_streams import CountingGrpc

HOLD = "/test.Hold/Hold"
KiB = 1024
MESSAGE = 16 * KiB
BUFFER = 64 * KiB
WINDOW = limits.MIN_WINDOW
COUNT = 64  # 1 MiB of requests: far more than the window and the queue


@pytest.fixture
def small_limits() -> Iterator[None]:
    before = limits.current()
    limits.configure(limits.Limits(stream_window=WINDOW, stream_buffer_bytes=BUFFER))
    try:
        yield
    finally:
        limits.configure(before)


def request(i: int) -> bytes:
    return frame(Label(name=str(i), value="v" * MESSAGE))


async def test_requests_without_content_are_queued_by_their_size(
    island: None, small_limits: None
) -> None:
    release = trio.Event()

    async def hold(requests: AsyncIterator[Label]) -> Label:
        await release.wait()
        names = [r.name async for r in requests]
        return Label(name="got", value=",".join(names))

    service = aio.Service([aio.Method(HOLD, Cardinality.STREAM_UNARY, Label, Label, hold)])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(aio.serve, [service], "127.0.0.1", 0)
        raw = await trio.to_thread.run_sync(CountingGrpc, port)
        try:
            sid = raw.open(HOLD)
            data = b"".join(request(i) for i in range(COUNT))

            def send_what_is_granted() -> int:
                sent = 0
                quiet = 0
                while quiet < 4:
                    room = min(raw.conn.local_flow_control_window(sid), 16 * KiB)
                    if room > 0:
                        raw.conn.send_data(sid, data[sent : sent + room])
                        raw._flush()
                        sent += room
                        quiet = 0
                    else:
                        raw.pump(timeout=0.25)
                        quiet += 1
                return sent

            sent = await trio.to_thread.run_sync(send_what_is_granted)
            granted = raw.stream_granted(sid)
            assert sent == granted
            # The window, the queue, the request the server holds waiting
            # for room in it, and what the server read of the next one.
            # Weighed at a fixed 64 bytes each, 32 requests (512 KiB) would
            # have been queued instead.
            assert granted <= WINDOW + BUFFER + 2 * (MESSAGE + 5 + 16)
            assert granted >= WINDOW + BUFFER // 2

            release.set()

            def send_the_rest() -> None:
                assert raw.send(sid, data[sent:], end=True)

            await trio.to_thread.run_sync(send_the_rest)
            outcome = await trio.to_thread.run_sync(raw.wait, sid)
            assert outcome.status == 0, outcome
            reply = Label().parse(next(outcome.messages()))
            assert reply.value == ",".join(str(i) for i in range(COUNT))
        finally:
            raw.close()
            nursery.cancel_scope.cancel()
