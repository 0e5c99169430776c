"""GrpcJournalClient: the `JournalClient` seam over gRPC, to any Gazette broker.

Speaks Gazette's `protocol.Journal` service through `gazette_trio.aio`, so it
works against gazette-trio's own journal server and against Gazette's Go
brokers alike. Appends follow Gazette's stream protocol: a header message
(journal, offset, registers), the content in chunks, an empty chunk that
asks the broker to commit, then the end of the stream; leaving early (an
error, a cancellation) resets the stream, and the broker appends nothing.

This module owns only that mapping. Retries, batching and status handling
live in the reader and the append service.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence

from .. import aio
from ..protocol import protocol as pb
from . import fast_codec  # noqa: F401  (registers the content codecs)

SERVICE = "/protocol.Journal"

MAX_CHUNK = 1 << 18
"""Content is sent in messages of at most 256 KiB: well under any broker's
message size limit, large enough that per-message costs stay small."""

MIN_MESSAGE = 1 << 16
"""Smaller chunks are joined until a message holds at least 64 KiB."""


def _header_of(request: pb.AppendRequest) -> pb.AppendRequest:
    if not request.content:
        return request
    return pb.AppendRequest(
        header=request.header,
        journal=request.journal,
        do_not_proxy=request.do_not_proxy,
        offset=request.offset,
        check_registers=request.check_registers,
        union_registers=request.union_registers,
        subtract_registers=request.subtract_registers,
    )


class GrpcJournalClient:
    """`JournalClient` over an `aio.Channel` to a Gazette-protocol broker."""

    def __init__(
        self,
        channel: aio.Channel,
        *,
        timeout: float | None = None,
        read_buffer: int = 32,
    ) -> None:
        self.channel = channel
        self.timeout = timeout
        self._read_buffer = read_buffer

    @contextlib.asynccontextmanager
    async def list(self, request: pb.ListRequest) -> AsyncIterator[AsyncIterator[pb.ListResponse]]:
        # A unary listing is bounded by the timeout; a watch lives until the
        # caller leaves the block.
        async with aio.server_stream(
            self.channel,
            f"{SERVICE}/List",
            request,
            pb.ListResponse,
            buffer=4,
            timeout=None if request.watch else self.timeout,
        ) as call:
            yield call.__aiter__()

    async def apply(self, request: pb.ApplyRequest) -> pb.ApplyResponse:
        return await aio.unary(
            self.channel, f"{SERVICE}/Apply", request, pb.ApplyResponse, timeout=self.timeout
        )

    async def list_fragments(self, request: pb.FragmentsRequest) -> pb.FragmentsResponse:
        return await aio.unary(
            self.channel,
            f"{SERVICE}/ListFragments",
            request,
            pb.FragmentsResponse,
            timeout=self.timeout,
        )

    async def fragment_store_health(
        self, request: pb.FragmentStoreHealthRequest
    ) -> pb.FragmentStoreHealthResponse:
        return await aio.unary(
            self.channel,
            f"{SERVICE}/FragmentStoreHealth",
            request,
            pb.FragmentStoreHealthResponse,
            timeout=self.timeout,
        )

    @contextlib.asynccontextmanager
    async def read(self, request: pb.ReadRequest) -> AsyncIterator[AsyncIterator[pb.ReadResponse]]:
        # No timeout: blocking reads live until the caller leaves the block.
        async with aio.server_stream(
            self.channel,
            f"{SERVICE}/Read",
            request,
            pb.ReadResponse,
            buffer=self._read_buffer,
        ) as call:
            yield call.__aiter__()

    async def append(
        self,
        request: pb.AppendRequest,
        content: Iterable[bytes] | AsyncIterable[bytes],
    ) -> pb.AppendResponse:
        if isinstance(content, (bytes, bytearray, memoryview)):
            raise TypeError("content must be an iterable of bytes chunks, e.g. [data], not bytes")
        path = f"{SERVICE}/Append"
        async with aio.client_stream(
            self.channel,
            path,
            pb.AppendRequest,
            pb.AppendResponse,
            timeout=self.timeout,
            # Authorized by the header message, as Gazette's appender does.
            metadata=self.channel.call_metadata(path, request),
        ) as call:
            await call.send(_header_of(request))
            coalescer = _Coalescer()
            if isinstance(content, AsyncIterable):
                async for chunk in content:
                    for message in coalescer.add(chunk):
                        await call.send(pb.AppendRequest(content=message))
            else:
                for chunk in content:
                    for message in coalescer.add(chunk):
                        await call.send(pb.AppendRequest(content=message))
            for message in coalescer.flush():
                await call.send(pb.AppendRequest(content=message))
            await call.send(pb.AppendRequest())  # asks the broker to commit
            response: pb.AppendResponse = await call.finish()
            return response


_NONE: tuple[bytes, ...] = ()


class _Coalescer:
    """Cuts content into messages of `MIN_MESSAGE` to `MAX_CHUNK` bytes: many
    small chunks (a batch of small appends) are joined, large ones split.
    Per-message costs (framing, the pipe to asyncio, HTTP/2) dominate small
    messages. Sans-IO and synchronous, because a batch may hold thousands of
    chunks and an `await` per chunk cost more than the joining."""

    __slots__ = ("_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> Sequence[bytes]:
        """Take `chunk`; return the messages now complete (usually none)."""
        size = len(chunk)
        if not size:
            return _NONE
        if type(chunk) is not bytes:
            chunk = bytes(chunk)  # the caller may reuse a bytearray or view
        if size < MAX_CHUNK and self._size + size <= MAX_CHUNK:
            self._parts.append(chunk)
            self._size += size
            return self.flush() if self._size >= MIN_MESSAGE else _NONE
        out = list(self.flush())
        if size >= MAX_CHUNK:
            out.extend(chunk[start : start + MAX_CHUNK] for start in range(0, size, MAX_CHUNK))
        else:
            self._parts.append(chunk)
            self._size = size
            if size >= MIN_MESSAGE:
                out.extend(self.flush())
        return out

    def flush(self) -> tuple[bytes, ...]:
        """The remaining content as one message, if any."""
        if not self._parts:
            return _NONE
        parts = self._parts
        content = parts[0] if len(parts) == 1 else b"".join(parts)
        self._parts = []
        self._size = 0
        return (content,)
