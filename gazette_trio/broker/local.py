"""LocalJournalClient: the `JournalClient` seam as direct calls into a server core.

A consumer running in the same process as the embedded journal server (the
single-machine default, and the deterministic simulation) talks to journals
without encoding anything: requests and responses are the same message
objects the gRPC transport would decode. Behaviour matches
`GrpcJournalClient` against the same core, including errors
(`gazette_trio.aio.InvalidArgument` for malformed requests), which the
contract tests check by running one suite over both.

This module owns only the adaptation: a Read or List runs in a task of the
caller's `async with`, and an Append gathers its content before handing it over, so a
content iterator that fails, or a cancelled caller, appends nothing.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Generic, TypeVar

import trio

from .._scope import background_nursery
from ..protocol import protocol as pb
from .server.core import JournalServerCore

T = TypeVar("T")


async def gather_content(content: Iterable[bytes] | AsyncIterable[bytes]) -> list[bytes]:
    """Every non-empty chunk of `content`, which may be sync or async."""
    chunks: list[bytes] = []
    if isinstance(content, (bytes, bytearray, memoryview)):
        raise TypeError("content must be an iterable of bytes chunks, e.g. [data], not bytes")
    if isinstance(content, AsyncIterable):
        async for chunk in content:
            if chunk:
                chunks.append(bytes(chunk))
    else:
        for chunk in content:
            if chunk:
                chunks.append(bytes(chunk))
        await trio.lowlevel.checkpoint()
    return chunks


class _Responses(Generic[T]):
    """Responses of one server-streaming call, produced by a task that the
    call's context manager owns."""

    def __init__(self, receive: trio.MemoryReceiveChannel[T | BaseException]) -> None:
        self._receive = receive

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        if isinstance(item, BaseException):
            raise item
        return item


@contextlib.asynccontextmanager
async def _server_stream(
    serve: Callable[[Callable[[T], Awaitable[None]]], Awaitable[None]], buffer: int
) -> AsyncIterator[AsyncIterator[T]]:
    """Run `serve(send)` in a task for as long as the caller's block lasts,
    and yield its responses, as a gRPC server stream would deliver them."""
    send, receive = trio.open_memory_channel[T | BaseException](buffer)

    async def run() -> None:
        async with send:
            try:
                await serve(send.send)
            except trio.Cancelled:
                raise
            except trio.BrokenResourceError:
                return  # the caller left its block before we were cancelled
            except Exception as exc:
                # Delivered in order after the responses, as a stream error
                # arrives over gRPC.
                await send.send(exc)

    # run never raises anything but Cancelled: what leaves is the block's own.
    async with background_nursery() as nursery:
        nursery.start_soon(run)
        async with receive:
            yield _Responses(receive)


class LocalJournalClient:
    """`JournalClient` over an in-process `JournalServerCore`."""

    def __init__(self, core: JournalServerCore, *, read_buffer: int = 8) -> None:
        self.core = core
        self._read_buffer = read_buffer

    def list(
        self, request: pb.ListRequest
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[pb.ListResponse]]:
        return _server_stream(functools.partial(self.core.list, request), 4)

    async def apply(self, request: pb.ApplyRequest) -> pb.ApplyResponse:
        return await self.core.apply(request)

    async def list_fragments(self, request: pb.FragmentsRequest) -> pb.FragmentsResponse:
        return await self.core.list_fragments(request)

    async def fragment_store_health(
        self, request: pb.FragmentStoreHealthRequest
    ) -> pb.FragmentStoreHealthResponse:
        return await self.core.fragment_store_health(request)

    def read(
        self, request: pb.ReadRequest
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[pb.ReadResponse]]:
        return _server_stream(functools.partial(self.core.read, request), self._read_buffer)

    async def append(
        self,
        request: pb.AppendRequest,
        content: Iterable[bytes] | AsyncIterable[bytes],
    ) -> pb.AppendResponse:
        chunks = await gather_content(content)
        header = pb.AppendRequest.parse(bytes(request)) if request.content else request
        if request.content:
            header.content = b""
        return await self.core.append(header, chunks)
