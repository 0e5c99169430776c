"""A client of Gazette's Shard API (`consumer.Shard`), for tools.

Any member of a consumer group answers the Shard API for the whole group
(List, Apply and Unassign read and write etcd; Stat and GetHints are proxied
to the shard's primary). This is the thin typed client the operator CLI
uses: one method per RPC over `gazette_trio.aio.unary`, returning Gazette's
response messages unchanged. A response whose `status` is not OK is returned
as is, for the caller to explain; transport failures raise `aio.RpcError`
subclasses (`aio.Unavailable` when the member cannot be reached).

It must be used inside the asyncio island (`aio.asyncio_island()`), like
every gRPC call in gazette-trio.
"""

from __future__ import annotations

from ..aio import Channel, unary
from ..protocol import consumer as pc

__all__ = ["SHARD_SERVICE", "ShardClient"]

SHARD_SERVICE = "/consumer.Shard/"


class ShardClient:
    """Calls the Shard API of one member."""

    def __init__(self, channel: Channel, *, timeout: float | None = 30.0) -> None:
        self.channel = channel
        self.timeout = timeout

    async def list(self, request: pc.ListRequest) -> pc.ListResponse:
        return await unary(
            self.channel, SHARD_SERVICE + "List", request, pc.ListResponse, timeout=self.timeout
        )

    async def apply(self, request: pc.ApplyRequest) -> pc.ApplyResponse:
        return await unary(
            self.channel, SHARD_SERVICE + "Apply", request, pc.ApplyResponse, timeout=self.timeout
        )

    async def stat(self, request: pc.StatRequest) -> pc.StatResponse:
        return await unary(
            self.channel, SHARD_SERVICE + "Stat", request, pc.StatResponse, timeout=self.timeout
        )

    async def get_hints(self, request: pc.GetHintsRequest) -> pc.GetHintsResponse:
        return await unary(
            self.channel,
            SHARD_SERVICE + "GetHints",
            request,
            pc.GetHintsResponse,
            timeout=self.timeout,
        )

    async def unassign(self, request: pc.UnassignRequest) -> pc.UnassignResponse:
        return await unary(
            self.channel,
            SHARD_SERVICE + "Unassign",
            request,
            pc.UnassignResponse,
            timeout=self.timeout,
        )
