"""The journal client seam: Gazette's Journal API as one Python protocol.

Consumers, publishers and recovery logs talk to journals only through
`JournalClient`. It mirrors the Journal gRPC service, one method per RPC, so
that two transports can implement it exactly:

- an in-process transport that calls the embedded journal server's core
  directly (the single-process default and the deterministic simulation);
- a grpclib transport that talks to any Gazette-protocol broker (ours, or
  Gazette's own brokers).

Gazette reports most outcomes as a `Status` inside the response (for
example JOURNAL_NOT_FOUND or OFFSET_NOT_YET_AVAILABLE), and so does this
seam; malformed requests raise `gazette_trio.aio.InvalidArgument` naming the
problem, and transport failures raise the other `gazette_trio.aio.RpcError`
subclasses (`Unavailable` for a lost connection). Both transports live in
sibling modules (`local.LocalJournalClient`, `grpc_client.GrpcJournalClient`)
and pass the same contract tests; so do the higher-level helpers built on
the seam (`reader`, `appender`, `append_service`, `list_apply`).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ..protocol import protocol as pb


class JournalClient(Protocol):
    """Gazette's Journal service, transport-neutral."""

    def list(
        self, request: pb.ListRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[pb.ListResponse]]:
        """Open a List stream of the journals matching the request's selector.

        As in Gazette, a snapshot spans one or more responses (the first
        carries status and header). Without `watch` the stream ends after
        it; with `watch`, an empty response ends each snapshot and a new one
        follows every change. `list_apply.list_journals` and `watch.WatchedList`
        read it for you.
        """
        ...

    async def apply(self, request: pb.ApplyRequest) -> pb.ApplyResponse:
        """Create, update or delete journal specs, all or nothing."""
        ...

    async def list_fragments(self, request: pb.FragmentsRequest) -> pb.FragmentsResponse:
        """Fragments of one journal."""
        ...

    async def fragment_store_health(
        self, request: pb.FragmentStoreHealthRequest
    ) -> pb.FragmentStoreHealthResponse:
        """Whether the broker can reach a fragment store."""
        ...

    def read(
        self, request: pb.ReadRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[pb.ReadResponse]]:
        """Open a Read stream; leaving the block ends it.

        As in Gazette, a metadata response (status, offset, write_head,
        fragment) precedes the content responses of each fragment.
        """
        ...

    async def append(
        self,
        request: pb.AppendRequest,
        content: Iterable[bytes] | AsyncIterable[bytes],
    ) -> pb.AppendResponse:
        """Append `content` atomically: all of it lands contiguously, or none.

        `request` carries the journal, the optional `offset` and the register
        checks/updates; its `content` field is ignored. `content` is an
        iterable of byte chunks (`[data]` for one buffer; a bare `bytes` is
        refused rather than iterated as integers). If iterating `content`
        raises, or the caller is cancelled, nothing is appended. Statuses come
        back in the response (see `appender.append` for a version that raises
        `JournalError`).
        """
        ...
