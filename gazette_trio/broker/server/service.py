"""The Journal gRPC service: Gazette's `protocol.Journal` over the server core.

Each method is a Trio function registered with `gazette_trio.aio`; any
Gazette client (gazctl, Go consumers, our `GrpcJournalClient`) can call it.
This module owns the translation between RPC shapes and the core's methods,
chiefly the Append stream: a header message, content chunks, an empty chunk
that asks to commit, then the end of the stream. A stream that breaks, or
ends without the commit chunk, appends nothing. Content is held until the
commit chunk, so it is bounded (`gazette_trio.limits`): an append past
`max_append_size` is refused with RESOURCE_EXHAUSTED, and one that would
take all appends in progress past four times that with UNAVAILABLE.

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

    max_append_size = limits.current().max_append_size
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
        header: pb.AppendRequest | None = None
        chunks: list[bytes] = []
        held = 0
        committed = False
        try:
            async for request in requests:
                if header is None:
                    header = request
                    try:
                        # Checked before any content is taken in, not at the end.
                        validate_append_header(header)
                    except ValidationError as exc:
                        raise aio.InvalidArgument(str(exc)) from None
                    if hidden(header.journal, claims):
                        # Answered before any content is read: nothing is appended.
                        return pb.AppendResponse(
                            status=pb.Status.JOURNAL_NOT_FOUND, header=core.header()
                        )
                    continue
                if committed:
                    raise aio.InvalidArgument("expected EOF after empty Content chunk")
                try:
                    validate_append_chunk(request)
                except ValidationError as exc:
                    raise aio.InvalidArgument(str(exc)) from None
                if not request.content:
                    committed = True
                    continue
                size = len(request.content)
                if held + size > max_append_size:
                    # The content is held until the commit chunk: past the
                    # limit the append is refused whole, nothing written.
                    raise aio.ResourceExhausted(
                        f"journal {header.journal}: append exceeds the server's limit of "
                        f"{max_append_size} bytes (max_append_size); nothing was appended"
                    )
                if held_by_all[0] + size > max_held:
                    # Many appends at once, each within its limit, could still
                    # hold any amount together: a busy server asks for a retry
                    # instead (publishers retry UNAVAILABLE).
                    raise aio.Unavailable(
                        f"journal {header.journal}: the server holds {held_by_all[0]} bytes "
                        f"of uncommitted appends, near its limit of {max_held} "
                        "(4 x max_append_size); nothing was appended, retry later"
                    )
                held += size
                held_by_all[0] += size
                chunks.append(request.content)
            if header is None:
                raise aio.InvalidArgument("Append stream ended before its first request")
            if not committed:
                raise aio.InvalidArgument(
                    f"journal {header.journal}: Append stream ended without the final empty "
                    "Content chunk that commits it; nothing was appended"
                )
            return await core.append(header, chunks)
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
