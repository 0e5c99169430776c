"""What a client is told when a server fails, and what a publisher does then.

A gRPC server of ours answers a handler's failure with a status a client can
act on: a full disk is RESOURCE_EXHAUSTED (here, a real ENOSPC from writing
to /dev/full), any other failure INTERNAL, described without the server's
absolute paths (the file's own name is kept). A publisher (the
AppendService) reports RESOURCE_EXHAUSTED to its caller at once instead of
retrying it forever; here against a `gazette-trio broker serve` whose
append limit the append exceeds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from grpclib.const import Cardinality

from gazette_trio import aio
from gazette_trio.broker.append_service import open_append_service
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.protocol.protocol import Label

from .hostile_support import append, create_journals, read_back, start_broker

FULL = "/test.Hostile/WriteToFullDevice"
MISSING = "/test.Hostile/OpenMissingFile"
HUGE = "/test.Hostile/HugeReply"


def failing_service(missing: Path) -> aio.Service:
    def write_full(data: bytes) -> None:
        with open("/dev/full", "wb", buffering=0) as device:
            device.write(data)

    async def write_to_full_device(request: Label) -> Label:
        await trio.to_thread.run_sync(write_full, request.value.encode())
        return request

    async def open_missing_file(request: Label) -> Label:
        content = await trio.to_thread.run_sync((missing / request.value).read_text)
        return Label(name="content", value=content)

    async def huge_reply(request: Label) -> Label:
        return Label(name="huge", value="h" * int(request.value))

    return aio.Service(
        [
            aio.Method(HUGE, Cardinality.UNARY_UNARY, Label, Label, huge_reply),
            aio.Method(FULL, Cardinality.UNARY_UNARY, Label, Label, write_to_full_device),
            aio.Method(MISSING, Cardinality.UNARY_UNARY, Label, Label, open_missing_file),
        ]
    )


@pytest.fixture
async def failing(island: None, tmp_path: Path) -> AsyncIterator[tuple[aio.Channel, Path]]:
    secret = tmp_path / "server-only" / "layout"
    async with trio.open_nursery() as nursery:
        port = await nursery.start(aio.serve, [failing_service(secret)], "127.0.0.1", 0)
        async with aio.Channel(f"127.0.0.1:{port}") as channel:
            yield channel, secret
        nursery.cancel_scope.cancel()


async def test_a_full_disk_answers_resource_exhausted(
    failing: tuple[aio.Channel, Path],
) -> None:
    channel, _ = failing
    with pytest.raises(aio.ResourceExhausted) as caught:
        await aio.unary(channel, FULL, Label(name="x", value="payload"), Label)
    assert caught.value.message == (
        "the server's storage is full (No space left on device); nothing was written"
    )


async def test_an_internal_error_names_no_server_path(
    failing: tuple[aio.Channel, Path], caplog: pytest.LogCaptureFixture
) -> None:
    channel, secret = failing
    with pytest.raises(aio.Internal) as caught:
        await aio.unary(channel, MISSING, Label(name="x", value="spool.bin"), Label)
    message = caught.value.message
    assert str(secret.parent) not in message
    assert message == "FileNotFoundError: [Errno 2] No such file or directory: 'spool.bin'"
    # The server's own log keeps the whole story.
    assert str(secret / "spool.bin") in caplog.text


async def test_a_publisher_reports_resource_exhausted_instead_of_retrying(
    island: None, tmp_path: Path
) -> None:
    server = await trio.to_thread.run_sync(
        lambda: start_broker(tmp_path, limits={"max_append_size": "1024"})
    )
    try:
        await trio.to_thread.run_sync(create_journals, server)
        await trio.to_thread.run_sync(append, server, "hostile/a", b"small\n")
        async with aio.Channel(server.endpoint) as channel:
            client = GrpcJournalClient(channel)
            async with open_append_service(client) as appends:
                # Without the limit being final, this waited forever.
                with trio.fail_after(30):
                    with pytest.raises(aio.ResourceExhausted) as caught:
                        await appends.append("hostile/a", b"x" * 4096)
        assert "append exceeds the server's limit of 1024 bytes (max_append_size)" in str(
            caught.value
        )
        assert await trio.to_thread.run_sync(read_back, server.endpoint, "hostile/a") == (
            b"small\n"
        )
    finally:
        server.stop()


async def test_a_client_refuses_a_reply_over_its_limit_before_buffering_it(
    failing: tuple[aio.Channel, Path],
) -> None:
    channel, _ = failing
    within = await aio.unary(channel, HUGE, Label(value=str(1 << 20)), Label)
    assert len(within.value) == 1 << 20
    with pytest.raises(aio.ResourceExhausted) as caught:
        await aio.unary(channel, HUGE, Label(value=str(20 << 20)), Label)
    assert caught.value.message == (
        f"grpc: received message larger than max ({(20 << 20) + 11} vs. {16 << 20})"
    )
    # The channel goes on serving calls.
    assert (await aio.unary(channel, HUGE, Label(value="3"), Label)).value == "hhh"
