"""RoutedJournalClient: reads and appends sent to the broker a journal's route names.

A Gazette broker cluster assigns each journal to a few brokers (its *route*:
members, their endpoints, and which one is primary). Any broker answers any
request, by proxying it to the right one; a client that knows the route
skips that hop and its doubled traffic, as Gazette's Go clients do with their
dispatcher. Routes come with every listing (`ListResponse.Journal.route`) and
in the header of every Read and Append response, and go stale when the
cluster moves a journal.

`RoutedJournalClient` keeps the latest route of each journal it has seen and
sends an Append to the route's primary and a Read to a member in its own zone
(else the primary), each over a channel of its own per endpoint. Without a
route, or after a routing error (WRONG_ROUTE, NOT_JOURNAL_PRIMARY_BROKER, a
broken connection), a request goes to the default endpoint, whose broker
proxies it, and the route it answers with is taken up for next time. List,
Apply and the rest always go to the default endpoint.

This module owns the route table and the choice of endpoint; the RPCs are
`GrpcJournalClient`'s.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Generic, TypeVar

import trio

from .. import aio
from ..protocol import protocol as pb
from .grpc_client import GrpcJournalClient

log = logging.getLogger(__name__)

T = TypeVar("T")

STALE_ROUTE = frozenset(
    {
        pb.Status.WRONG_ROUTE,
        pb.Status.NOT_JOURNAL_PRIMARY_BROKER,
        pb.Status.NOT_JOURNAL_BROKER,
        pb.Status.NO_JOURNAL_PRIMARY_BROKER,
        pb.Status.JOURNAL_NOT_FOUND,
    }
)
"""Statuses after which a journal's route is forgotten: the broker it named
no longer serves the journal (or never did)."""

UNREACHABLE_FOR = 30.0
"""Seconds a broker that could not be reached is passed over (requests go
to the default endpoint meanwhile), so that a route naming an address this
client can't reach costs one failure, not one per request."""

MAX_ROUTES = 100_000
"""Routes kept at most; past it the table is cleared (routes are relearned
from the next responses), so a client that touches many journals stays bounded."""


class RoutedJournalClient:
    """A `JournalClient` over `default` that dispatches reads and appends by route.

    `zone` is this process's zone, preferred for reads. Open channels to
    other brokers are closed by `aclose()` (or leaving `open_routed_client`).
    """

    def __init__(self, default: GrpcJournalClient, *, zone: str = "") -> None:
        self.default = default
        self.zone = zone
        self._routes: dict[str, pb.Route] = {}
        self._clients: dict[str, GrpcJournalClient] = {}
        self._unreachable: dict[str, float] = {}  # endpoint -> until (trio time)

    # ------------------------------------------------------------------
    # The route table

    def route(self, journal: str) -> pb.Route | None:
        """The route last seen for `journal`, if any."""
        return self._routes.get(journal)

    def update_route(self, journal: str, route: pb.Route | None) -> None:
        """Remember `route` for `journal` (None, or a route without members,
        forgets it)."""
        if route is None or not route.members:
            self._routes.pop(journal, None)
            return
        if len(self._routes) >= MAX_ROUTES and journal not in self._routes:
            self._routes.clear()
        self._routes[journal] = route

    def _endpoint(self, journal: str, *, primary: bool) -> str | None:
        route = self._routes.get(journal)
        if route is None:
            return None
        index = route.primary
        if not primary and self.zone:
            for i, member in enumerate(route.members):
                if member.zone == self.zone:
                    index = i
                    break
        if index < 0 and not primary and route.members:
            index = 0
        if not 0 <= index < len(route.endpoints) or not route.endpoints[index]:
            return None
        endpoint = route.endpoints[index]
        until = self._unreachable.get(endpoint)
        if until is not None:
            if trio.current_time() < until:
                return None
            del self._unreachable[endpoint]
        return endpoint

    def _failed(self, journal: str, client: GrpcJournalClient) -> None:
        if client is not self.default:
            self.update_route(journal, None)
            self._unreachable[client.channel.endpoint] = trio.current_time() + UNREACHABLE_FOR
            log.warning(
                "broker %s (routed for %s) failed; using %s for %.0fs",
                client.channel.endpoint,
                journal,
                self.default.channel.endpoint,
                UNREACHABLE_FOR,
            )

    def _client_for(self, endpoint: str | None) -> GrpcJournalClient:
        if endpoint is None or _same(endpoint, self.default.channel.endpoint):
            return self.default
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = GrpcJournalClient(
                aio.Channel(endpoint), timeout=self.default.timeout
            )
        return client

    def _learn(self, journal: str, status: int, header: pb.Header | None) -> None:
        if status in STALE_ROUTE:
            self.update_route(journal, None)
        elif header is not None and header.route is not None and header.route.members:
            self.update_route(journal, header.route)

    # ------------------------------------------------------------------
    # The Journal API

    @contextlib.asynccontextmanager
    async def list(self, request: pb.ListRequest) -> AsyncIterator[AsyncIterator[pb.ListResponse]]:
        async with self.default.list(request) as responses:
            yield _Tapped(responses, self._routes_of)

    def _routes_of(self, response: pb.ListResponse) -> None:
        for journal in response.journals:
            if journal.spec is not None:
                self.update_route(journal.spec.name, journal.route)

    async def apply(self, request: pb.ApplyRequest) -> pb.ApplyResponse:
        return await self.default.apply(request)

    async def list_fragments(self, request: pb.FragmentsRequest) -> pb.FragmentsResponse:
        return await self.default.list_fragments(request)

    async def fragment_store_health(
        self, request: pb.FragmentStoreHealthRequest
    ) -> pb.FragmentStoreHealthResponse:
        return await self.default.fragment_store_health(request)

    @contextlib.asynccontextmanager
    async def read(self, request: pb.ReadRequest) -> AsyncIterator[AsyncIterator[pb.ReadResponse]]:
        endpoint = self._endpoint(request.journal, primary=False)
        client = self._client_for(endpoint)
        try:
            async with client.read(request) as responses:
                yield _Tapped(responses, self._learning(request.journal))
        except (aio.Unavailable, aio.DeadlineExceeded):
            self._failed(request.journal, client)
            raise

    def _learning(self, journal: str) -> Callable[[pb.ReadResponse], None]:
        def learn(response: pb.ReadResponse) -> None:
            if not response.content:
                self._learn(journal, response.status, response.header)

        return learn

    async def append(
        self,
        request: pb.AppendRequest,
        content: Iterable[bytes] | AsyncIterable[bytes],
    ) -> pb.AppendResponse:
        client = self._client_for(self._endpoint(request.journal, primary=True))
        try:
            response = await client.append(request, content)
        except (aio.Unavailable, aio.DeadlineExceeded):
            self._failed(request.journal, client)
            raise
        self._learn(request.journal, response.status, response.header)
        return response

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.channel.aclose()


def _same(a: str, b: str) -> bool:
    """Whether two endpoints name the same address (`http://h:p` is `h:p`)."""
    try:
        return a == b or aio.parse_endpoint(a) == aio.parse_endpoint(b)
    except ValueError:
        return False


class _Tapped(Generic[T]):
    """A response stream whose items are shown to `tap` on their way by. A
    class, not an async generator, so that a cancelled `anext` leaves it
    readable."""

    def __init__(self, responses: AsyncIterator[T], tap: Callable[[T], None]) -> None:
        self._responses = responses
        self._tap = tap

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        response = await anext(self._responses)
        self._tap(response)
        return response


@contextlib.asynccontextmanager
async def open_routed_client(
    endpoint: str, *, zone: str = "", timeout: float | None = None
) -> AsyncIterator[RoutedJournalClient]:
    """A `RoutedJournalClient` whose default is `endpoint`, closed with the
    block (needs the asyncio island)."""
    async with aio.Channel(endpoint) as channel:
        client = RoutedJournalClient(GrpcJournalClient(channel, timeout=timeout), zone=zone)
        try:
            yield client
        finally:
            await client.aclose()
