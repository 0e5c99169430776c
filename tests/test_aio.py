"""The Trio↔grpclib bridge: every call shape, errors, deadlines, cancellation.

An echo service made of Trio functions is served over real HTTP/2 on
loopback and called through `gazette_trio.aio`. Messages are `protocol.Label`
(name, value), a convenient two-string message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
from grpclib.const import Cardinality

from gazette_trio import aio
from gazette_trio.protocol.protocol import Label

UNARY = "/test.Echo/Unary"
SERVER_STREAM = "/test.Echo/Count"
CLIENT_STREAM = "/test.Echo/Join"
BIDI = "/test.Echo/Chat"


class EchoState:
    """What the server saw, for tests to inspect."""

    def __init__(self) -> None:
        self.cancelled = trio.Event()
        self.stream_ended_early = trio.Event()
        self.joined: list[str] = []


def echo_service(state: EchoState) -> aio.Service:
    async def unary(request: Label) -> Label:
        if request.name == "invalid":
            raise aio.InvalidArgument(f"bad name {request.name!r}")
        if request.name == "crash":
            raise ValueError("handler bug")
        if request.name == "sleep":
            await trio.sleep(float(request.value))
        return Label(name=request.name, value=request.value.upper())

    async def count(request: Label, send: Callable[[Label], Awaitable[None]]) -> None:
        try:
            for i in range(int(request.value)):
                value = "x" * 65536 if request.name == "big" else str(i)
                await send(Label(name=request.name, value=value))
            if request.name == "then-fail":
                raise aio.FailedPrecondition("failed after the replies")
            if request.name == "forever":
                await trio.sleep_forever()
        except trio.Cancelled:
            state.cancelled.set()
            raise

    async def join(requests: AsyncIterator[Label]) -> Label:
        values = []
        try:
            async for request in requests:
                values.append(request.value)
        except aio.RpcError:
            state.stream_ended_early.set()
            raise
        except trio.Cancelled:
            state.stream_ended_early.set()
            raise
        # Only a complete stream takes effect, as an append must.
        state.joined.append(",".join(values))
        return Label(name="joined", value=",".join(values))

    async def chat(
        requests: AsyncIterator[Label], send: Callable[[Label], Awaitable[None]]
    ) -> None:
        async for request in requests:
            if request.name == "invalid":
                raise aio.InvalidArgument(f"bad chat line {request.value!r}")
            await send(Label(name=request.name, value=request.value[::-1]))

    return aio.Service(
        [
            aio.Method(UNARY, Cardinality.UNARY_UNARY, Label, Label, unary),
            aio.Method(SERVER_STREAM, Cardinality.UNARY_STREAM, Label, Label, count),
            aio.Method(CLIENT_STREAM, Cardinality.STREAM_UNARY, Label, Label, join),
            aio.Method(BIDI, Cardinality.STREAM_STREAM, Label, Label, chat),
        ]
    )


@pytest.fixture
async def echo(island: None) -> AsyncIterator[tuple[aio.Channel, EchoState]]:
    state = EchoState()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(aio.serve, [echo_service(state)], "127.0.0.1", 0)
        async with aio.Channel(f"127.0.0.1:{port}") as channel:
            yield channel, state
        nursery.cancel_scope.cancel()


async def test_unary_call_returns_the_reply(echo: tuple[aio.Channel, EchoState]) -> None:
    channel, _ = echo
    reply = await aio.unary(channel, UNARY, Label(name="a", value="hello"), Label)
    assert reply == Label(name="a", value="HELLO")


async def test_server_stream_delivers_every_reply_in_order(
    echo: tuple[aio.Channel, EchoState],
) -> None:
    channel, _ = echo
    async with aio.server_stream(
        channel, SERVER_STREAM, Label(name="n", value="100"), Label
    ) as call:
        values = [reply.value async for reply in call]
    assert values == [str(i) for i in range(100)]


async def test_client_stream_sends_all_then_gets_one_reply(
    echo: tuple[aio.Channel, EchoState],
) -> None:
    channel, state = echo
    async with aio.client_stream(channel, CLIENT_STREAM, Label, Label) as call:
        for i in range(50):
            await call.send(Label(value=str(i)))
        reply = await call.finish()
    assert reply.value == ",".join(str(i) for i in range(50))
    assert state.joined == [reply.value]


async def test_bidi_stream_interleaves_requests_and_replies(
    echo: tuple[aio.Channel, EchoState],
) -> None:
    channel, _ = echo
    async with aio.bidi_stream(channel, BIDI, Label, Label) as call:
        for word in ["abc", "hello", "trio"]:
            await call.send(Label(name="w", value=word))
            reply = await call.receive()
            assert reply.value == word[::-1]
        call.end()
        with pytest.raises(trio.EndOfChannel):
            await call.receive()


async def test_status_codes_reach_trio_as_typed_exceptions(
    echo: tuple[aio.Channel, EchoState],
) -> None:
    channel, _ = echo
    with pytest.raises(aio.InvalidArgument, match="bad name 'invalid'"):
        await aio.unary(channel, UNARY, Label(name="invalid"), Label)
    with pytest.raises(aio.Internal, match="ValueError: handler bug"):
        await aio.unary(channel, UNARY, Label(name="crash"), Label)
    # grpclib answers an unknown method without a content-type, which its own
    # client reports as UNKNOWN rather than UNIMPLEMENTED.
    with pytest.raises((aio.Unimplemented, aio.UnknownError)):
        await aio.unary(channel, "/test.Echo/Missing", Label(), Label)
    # The server goes on after each of them.
    assert (await aio.unary(channel, UNARY, Label(name="ok", value="x"), Label)).value == "X"


async def test_an_error_after_stream_replies_arrives_after_them(
    echo: tuple[aio.Channel, EchoState],
) -> None:
    channel, _ = echo
    got = []
    with pytest.raises(aio.FailedPrecondition, match="failed after the replies"):
        async with aio.server_stream(
            channel, SERVER_STREAM, Label(name="then-fail", value="3"), Label
        ) as call:
            async for reply in call:
                got.append(reply.value)
    assert got == ["0", "1", "2"]


async def test_deadline_exceeded(echo: tuple[aio.Channel, EchoState]) -> None:
    channel, _ = echo
    with pytest.raises(aio.DeadlineExceeded):
        await aio.unary(channel, UNARY, Label(name="sleep", value="5"), Label, timeout=0.2)


async def test_cancelling_a_stream_from_trio_resets_it_on_the_server(
    echo: tuple[aio.Channel, EchoState],
) -> None:
    channel, state = echo
    with trio.move_on_after(10) as outer:
        async with aio.server_stream(
            channel, SERVER_STREAM, Label(name="forever", value="1"), Label
        ) as call:
            with trio.CancelScope() as scope:
                async for _ in call:
                    scope.cancel()
        # The server's handler was cancelled: the RST_STREAM reached it.
        await state.cancelled.wait()
    assert not outer.cancelled_caught
    # ...and the client's connection holds no stream open.
    for _ in range(100):
        if channel.open_stream_count() == 0:
            break
        await trio.sleep(0.01)
    assert channel.open_stream_count() == 0
    # The channel is still usable.
    assert (await aio.unary(channel, UNARY, Label(name="a", value="b"), Label)).value == "B"


async def test_leaving_a_client_stream_without_finish_breaks_it(
    echo: tuple[aio.Channel, EchoState],
) -> None:
    channel, state = echo
    async with aio.client_stream(channel, CLIENT_STREAM, Label, Label) as call:
        await call.send(Label(value="partial"))
        await trio.sleep(0.05)
    with trio.fail_after(10):
        await state.stream_ended_early.wait()
    assert state.joined == []
    for _ in range(100):
        if channel.open_stream_count() == 0:
            break
        await trio.sleep(0.01)
    assert channel.open_stream_count() == 0


async def test_cancelled_unary_call_leaves_no_stream(echo: tuple[aio.Channel, EchoState]) -> None:
    channel, _ = echo
    with trio.move_on_after(0.1):
        await aio.unary(channel, UNARY, Label(name="sleep", value="5"), Label)
    for _ in range(100):
        if channel.open_stream_count() == 0:
            break
        await trio.sleep(0.01)
    assert channel.open_stream_count() == 0


async def test_unreachable_endpoint_is_unavailable(island: None) -> None:
    from tests.services import free_port

    async with aio.Channel(f"127.0.0.1:{free_port()}") as channel:
        with pytest.raises(aio.Unavailable):
            await aio.unary(channel, UNARY, Label(), Label, timeout=5)


def test_endpoints_parse_like_gazettes() -> None:
    assert aio.parse_endpoint("http://127.0.0.1:8080") == ("127.0.0.1", 8080, None)
    assert aio.parse_endpoint("localhost:9000") == ("localhost", 9000, None)
    assert aio.parse_endpoint("unix:///tmp/sock") == (None, None, "/tmp/sock")
    with pytest.raises(ValueError, match="expected host:port"):
        aio.parse_endpoint("http://nohost")


async def test_calls_without_the_island_say_how_to_fix_it() -> None:
    with pytest.raises(RuntimeError, match="asyncio_island"):
        aio.Channel("127.0.0.1:1")


async def test_a_worker_thread_opens_its_own_island(echo: tuple[aio.Channel, EchoState]) -> None:
    """Context variables follow `trio.to_thread` into worker threads; a Trio
    run there must not mistake the parent thread's loop for its own."""
    channel, _ = echo
    port = aio.parse_endpoint(channel.endpoint)[1]

    def in_thread() -> str:
        async def call() -> str:
            async with aio.asyncio_island(), aio.Channel(f"127.0.0.1:{port}") as ch:
                reply = await aio.unary(ch, UNARY, Label(name="t", value="thread"), Label)
                return reply.value

        return trio.run(call)

    with trio.fail_after(10):
        assert await trio.to_thread.run_sync(in_thread) == "THREAD"


async def test_a_bidi_stream_error_reaches_trio_with_its_status(
    echo: tuple[aio.Channel, EchoState],
) -> None:
    channel, _ = echo
    with pytest.raises(aio.InvalidArgument, match="bad chat line 'x'"):
        async with aio.bidi_stream(channel, BIDI, Label, Label) as call:
            await call.send(Label(name="w", value="ok"))
            assert (await call.receive()).value == "ko"
            await call.send(Label(name="invalid", value="x"))
            await call.receive()


async def test_stopping_a_server_closes_its_open_connections(island: None) -> None:
    state = EchoState()
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await aio.serve([echo_service(state)], "127.0.0.1", 0, task_status=task_status)

        port = await nursery.start(run)
        async with aio.Channel(f"127.0.0.1:{port}") as channel:
            assert (await aio.unary(channel, UNARY, Label(name="a", value="b"), Label)).value == "B"
            scope.cancel()
            await trio.sleep(0.1)
            # The client notices the stop instead of being served on.
            with pytest.raises(aio.Unavailable):
                await aio.unary(channel, UNARY, Label(name="a", value="b"), Label, timeout=5)


def test_the_cheaper_hyperframe_repr_prints_the_same() -> None:
    import binascii

    import hyperframe.frame as hf

    def original(data: bytes | None) -> str:
        if not data:
            return "None"
        r = binascii.hexlify(data).decode("ascii")
        return "<hex:" + (r[:20] + "..." if len(r) > 20 else r) + ">"

    aio._patch_hyperframe_repr()
    for n in [0, 1, 9, 10, 11, 12, 16384]:
        data = bytes(range(256)) * 64
        assert hf._raw_data_repr(data[:n]) == original(data[:n])
    assert hf._raw_data_repr(None) == "None"


async def test_an_error_inside_the_island_reaches_the_caller_as_itself() -> None:
    with pytest.raises(aio.Unavailable, match="the broker is down"):
        async with aio.asyncio_island():
            raise aio.Unavailable("the broker is down")


async def test_a_stream_left_unread_does_not_stall_other_calls(
    echo: tuple[aio.Channel, EchoState],
) -> None:
    """A reader that stops reading (a consumer busy committing) holds its
    stream's flow-control window, but not the whole connection's: a call
    on the same channel still completes."""
    channel, _ = echo
    async with aio.server_stream(
        channel, SERVER_STREAM, Label(name="big", value="200"), Label, buffer=1
    ) as call:
        await call.receive()
        await trio.sleep(0.5)  # ~13 MiB queued behind us; we read no more
        with trio.fail_after(5):
            reply = await aio.unary(channel, UNARY, Label(name="a", value="b"), Label)
        assert reply.value == "B"


async def test_a_connection_that_closes_as_it_opens_is_unavailable_not_a_crash(
    echo: tuple[aio.Channel, EchoState], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server going away (a killed etcd, say) can close a connection in
    # the moment between its opening and the call's first stream on it.
    # grpclib then fails with an AttributeError; it must be a lost
    # connection, which callers retry, not INTERNAL, which they don't.
    channel, _ = echo
    grpc = channel.grpclib_channel
    create = grpc._create_connection

    async def closed_on_opening() -> object:
        protocol = await create()
        protocol.processor.close("closed by the test")
        return protocol

    monkeypatch.setattr(grpc, "_create_connection", closed_on_opening)
    with pytest.raises(aio.Unavailable, match="closed as soon as it opened"):
        await aio.unary(channel, UNARY, Label(name="a", value="b"), Label, timeout=5)
    monkeypatch.undo()
    reply = await aio.unary(channel, UNARY, Label(name="a", value="b"), Label, timeout=5)
    assert reply.name == "a"
