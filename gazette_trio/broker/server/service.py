"""The Journal gRPC service: Gazette's `protocol.Journal` over the server core.

Each method is a Trio function registered with `gazette_trio.aio`; any
Gazette client (gazctl, Go consumers, our `GrpcJournalClient`) can call it.
This module owns the translation between RPC shapes and the core's methods,
chiefly the Append stream: a header message, content chunks, an empty chunk
that asks to commit, then the end of the stream. A stream that breaks, or
ends without the commit chunk, appends nothing. An append is held in memory
until its commit chunk if it fits in one message (`max_grpc_recv_size`),
which is almost always; a larger one is handed to the core with the rest of
its stream, and written to storage as it arrives, under the journal's lock.
Both are bounded (`gazette_trio.limits`): an append past `max_append_size`
is refused with RESOURCE_EXHAUSTED, and one that would take the content all
appends are holding past four times that with UNAVAILABLE.

Replicate answers UNIMPLEMENTED: this server is a single node.

Every call is verified first, as Gazette's `VerifiedJournalServer` does
(`gazette_trio.auth.verifier`): the capability each RPC requires, then the
token's selector. A journal the selector does not reach is JOURNAL_NOT_FOUND
to Read, Append and ListFragments and absent from List; Apply of one is
UNAUTHENTICATED. A Read ends when its token expires (DEADLINE_EXCEEDED), and
the reader resumes with a fresh one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from grpclib.const import Cardinality

from ... import aio, limits
from ...auth import capabilities as caps
from ...auth import claims as auth_claims
from ...auth.verifier import OPEN, Verifier, expiring
from ...protocol import protocol as pb
from ...protocol.validation import ValidationError
from .. import fast_codec  # noqa: F401  (registers the content codecs)
from .core import JournalServerCore
from .requests import validate_append_chunk, validate_append_header

SERVICE = "protocol.Journal"


def journal_service(core: JournalServerCore, verifier: Verifier = OPEN) -> aio.Service:
    """The `protocol.Journal` service backed by `core`, its calls verified by
    `verifier` (by default, none are)."""

    bounds = limits.current()
    max_append_size = bounds.max_append_size
    # An append is held whole up to one message's size, and streamed into
    # storage past that.
    stream_after = bounds.max_grpc_recv_size
    # Content all appends in progress hold (one cell, shared by the handlers).
    max_held = 4 * max_append_size
    held_by_all = [0]

    def hidden(journal: str, claims: auth_claims.Claims) -> bool:
        # A journal outside the token's selector is answered as missing.
        if not verifier.enabled:
            return False
        spec = core.spec(journal.split(";", 1)[0])
        return spec is not None and not claims.matches_journal(spec.name, spec.labels)

    async def list_journals(
        request: pb.ListRequest, send: Callable[[pb.ListResponse], Awaitable[None]]
    ) -> None:
        claims = verifier.verify(caps.LIST)
        with expiring(claims):
            await core.list(
                request, send, scope=claims.matches_journal if verifier.enabled else None
            )

    async def apply(request: pb.ApplyRequest) -> pb.ApplyResponse:
        claims = verifier.verify(caps.APPLY)
        for change in request.changes:
            if change.upsert is not None:
                if not claims.matches_journal(change.upsert.name, change.upsert.labels):
                    raise aio.Unauthenticated(f"not authorized to {change.upsert.name}")
            elif not claims.matches_name(change.delete):
                raise aio.Unauthenticated(f"not authorized to {change.delete}")
        return await core.apply(request)

    async def list_fragments(request: pb.FragmentsRequest) -> pb.FragmentsResponse:
        claims = verifier.verify(caps.READ)
        if hidden(request.journal, claims):
            return pb.FragmentsResponse(status=pb.Status.JOURNAL_NOT_FOUND, header=core.header())
        return await core.list_fragments(request)

    async def fragment_store_health(
        request: pb.FragmentStoreHealthRequest,
    ) -> pb.FragmentStoreHealthResponse:
        verifier.verify(caps.READ)
        return await core.fragment_store_health(request)

    async def read(
        request: pb.ReadRequest, send: Callable[[pb.ReadResponse], Awaitable[None]]
    ) -> None:
        claims = verifier.verify(caps.READ)
        if hidden(request.journal, claims):
            await send(pb.ReadResponse(status=pb.Status.JOURNAL_NOT_FOUND, header=core.header()))
            return
        with expiring(claims):
            await core.read(request, send)

    async def append(requests: AsyncIterator[pb.AppendRequest]) -> pb.AppendResponse:
        claims = verifier.verify(caps.APPEND)
        stream = requests.__aiter__()
        try:
            header = await stream.__anext__()
        except StopAsyncIteration:
            raise aio.InvalidArgument("Append stream ended before its first request") from None
        try:
            # Checked before any content is taken in, not at the end.
            validate_append_header(header)
        except ValidationError as exc:
            raise aio.InvalidArgument(str(exc)) from None
        if hidden(header.journal, claims):
            # Answered before any content is read: nothing is appended.
            return pb.AppendResponse(status=pb.Status.JOURNAL_NOT_FOUND, header=core.header())
        content = _AppendContent(stream, header.journal, max_append_size)
        chunks: list[bytes] = []
        held = 0
        try:
            while held < stream_after:
                chunk = await content.next_chunk()
                if chunk is None:
                    # All of it in hand: the journal's lock is taken only for
                    # the write, never while a client is still sending.
                    return await core.append(header, chunks)
                if held_by_all[0] + len(chunk) > max_held:
                    # Many appends buffering at once could still hold any
                    # amount together: a busy server asks for a retry
                    # instead (publishers retry UNAVAILABLE).
                    raise aio.Unavailable(
                        f"journal {header.journal}: the server holds {held_by_all[0]} bytes "
                        f"of uncommitted appends, near its limit of {max_held} "
                        "(4 x max_append_size); nothing was appended, retry later"
                    )
                held += len(chunk)
                held_by_all[0] += len(chunk)
                chunks.append(chunk)
            # A large append: the rest is written to storage as it arrives.
            return await core.append(header, chunks, more=content)
        finally:
            held_by_all[0] -= held

    async def replicate(
        requests: AsyncIterator[pb.ReplicateRequest],
        send: Callable[[pb.ReplicateResponse], Awaitable[None]],
    ) -> None:
        verifier.verify(caps.REPLICATE)
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
            method(
                "List", Cardinality.UNARY_STREAM, pb.ListRequest, pb.ListResponse, list_journals
            ),
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


class _AppendContent:
    """The content of an Append stream after its header: each content
    chunk, validated and counted against `max_append_size`, then None once
    the empty chunk that commits it has arrived and the stream has ended."""

    def __init__(
        self, stream: AsyncIterator[pb.AppendRequest], journal: str, max_append_size: int
    ) -> None:
        self._stream = stream
        self._journal = journal
        self._max_append_size = max_append_size
        self._size = 0
        self._committed = False

    async def next_chunk(self) -> bytes | None:
        while True:
            try:
                request = await self._stream.__anext__()
            except StopAsyncIteration:
                if self._committed:
                    return None
                raise aio.InvalidArgument(
                    f"journal {self._journal}: Append stream ended without the final empty "
                    "Content chunk that commits it; nothing was appended"
                ) from None
            if self._committed:
                raise aio.InvalidArgument("expected EOF after empty Content chunk")
            try:
                validate_append_chunk(request)
            except ValidationError as exc:
                raise aio.InvalidArgument(str(exc)) from None
            if not request.content:
                self._committed = True
                continue
            self._size += len(request.content)
            if self._size > self._max_append_size:
                raise aio.ResourceExhausted(
                    f"journal {self._journal}: append exceeds the server's limit of "
                    f"{self._max_append_size} bytes (max_append_size); nothing was appended"
                )
            return request.content
