"""The Journal gRPC service: Gazette's `protocol.Journal` over the server core.

Each method is a Trio function registered with `gazette_trio.aio`; any
Gazette client (gazctl, Go consumers, our `GrpcJournalClient`) can call it.
This module owns the translation between RPC shapes and the core's methods,
chiefly the Append stream: a header message, content chunks, an empty chunk
that asks to commit, then the end of the stream. A stream that breaks, or
ends without the commit chunk, appends nothing.

Replicate answers UNIMPLEMENTED: this server is a single node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from grpclib.const import Cardinality

from ... import aio
from ...protocol import protocol as pb
from ...protocol.validation import ValidationError
from .. import fast_codec  # noqa: F401  (registers the content codecs)
from .core import JournalServerCore
from .requests import validate_append_chunk

SERVICE = "protocol.Journal"


def journal_service(core: JournalServerCore) -> aio.Service:
    """The `protocol.Journal` service backed by `core`."""

    async def list_journals(
        request: pb.ListRequest, send: Callable[[pb.ListResponse], Awaitable[None]]
    ) -> None:
        await core.list(request, send)

    async def apply(request: pb.ApplyRequest) -> pb.ApplyResponse:
        return await core.apply(request)

    async def list_fragments(request: pb.FragmentsRequest) -> pb.FragmentsResponse:
        return await core.list_fragments(request)

    async def fragment_store_health(
        request: pb.FragmentStoreHealthRequest,
    ) -> pb.FragmentStoreHealthResponse:
        return await core.fragment_store_health(request)

    async def read(
        request: pb.ReadRequest, send: Callable[[pb.ReadResponse], Awaitable[None]]
    ) -> None:
        await core.read(request, send)

    async def append(requests: AsyncIterator[pb.AppendRequest]) -> pb.AppendResponse:
        header: pb.AppendRequest | None = None
        chunks: list[bytes] = []
        committed = False
        async for request in requests:
            if header is None:
                header = request
                continue
            if committed:
                raise aio.InvalidArgument("expected EOF after empty Content chunk")
            try:
                validate_append_chunk(request)
            except ValidationError as exc:
                raise aio.InvalidArgument(str(exc)) from None
            if request.content:
                chunks.append(request.content)
            else:
                committed = True
        if header is None:
            raise aio.InvalidArgument("Append stream ended before its first request")
        if not committed:
            raise aio.InvalidArgument(
                f"journal {header.journal}: Append stream ended without the final empty "
                "Content chunk that commits it; nothing was appended"
            )
        return await core.append(header, chunks)

    async def replicate(
        requests: AsyncIterator[pb.ReplicateRequest],
        send: Callable[[pb.ReplicateResponse], Awaitable[None]],
    ) -> None:
        raise aio.Unimplemented(
            "gazette-trio's journal server is a single node: it neither replicates "
            "to peers nor accepts replicas"
        )

    def method(
        name: str, card: Cardinality, req: type, resp: type, fn: Callable[..., Awaitable[object]]
    ) -> aio.Method:
        return aio.Method(f"/{SERVICE}/{name}", card, req, resp, fn)

    return aio.Service(
        [
            method("List", Cardinality.UNARY_STREAM, pb.ListRequest, pb.ListResponse, list_journals),
            method("Apply", Cardinality.UNARY_UNARY, pb.ApplyRequest, pb.ApplyResponse, apply),
            method("Read", Cardinality.UNARY_STREAM, pb.ReadRequest, pb.ReadResponse, read),
            method("Append", Cardinality.STREAM_UNARY, pb.AppendRequest, pb.AppendResponse, append),
            method(
                "Replicate",
                Cardinality.STREAM_STREAM,
                pb.ReplicateRequest,
                pb.ReplicateResponse,
                replicate,
            ),
            method(
                "ListFragments",
                Cardinality.UNARY_UNARY,
                pb.FragmentsRequest,
                pb.FragmentsResponse,
                list_fragments,
            ),
            method(
                "FragmentStoreHealth",
                Cardinality.UNARY_UNARY,
                pb.FragmentStoreHealthRequest,
                pb.FragmentStoreHealthResponse,
                fragment_store_health,
            ),
        ]
    )
