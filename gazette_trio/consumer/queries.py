"""JSON query routes: an application's read API without a protobuf toolchain.

An application declares routes with the `query` decorator on methods of its
class:

    @query("views", shard=lambda shards, params: shards.owning(EVENTS, params["user"]))
    async def views(self, shard: Shard, store: SQLiteStore, params: QueryParams) -> object:
        return {"views": await self.value(store, params["user"]) or 0}

and `gazette-trio serve` answers `GET /query/views?user=ann` (or `POST
/query/views` with a JSON object) on the member's HTTP port:

- the shard is the one `shard(shards, params)` names (a shard id, or an
  awaitable of one; `QueryShards` finds the shard reading a journal, or
  owning a key the way `gazette-trio publish -k` and the client's publisher
  map it), or the request's `shard` parameter when the route has no
  resolver;
- the shard is resolved as the Shard API's `Stat` resolves it: at its ready
  primary the handler runs, after a transaction read through the request's
  `read_through` offsets (`read_through=<journal>:<offset>`, repeatable, or
  an object in a JSON body); a member that is not the primary forwards the
  query once, over the gRPC port the primary announces in its ConsumerSpec
  (the endpoint the Shard API proxies to), with its resolution's header, so
  the primary checks it is the intended one and does not forward again.
  Members need to know nothing of each other's HTTP ports;
- the answer is `{"shard": ..., "member": "zone/suffix", "result": ...}`
  with the handler's JSON value; errors are `{"error": "..."}` with 400 for
  bad input (naming the parameter), 404 for an unknown route or shard, 503
  for a shard without a ready primary (or journals that cannot be listed),
  502 when the primary cannot be reached, 504 when `read_through` was not
  reached in `QUERY_TIMEOUT` seconds, 500 for a handler's own failure.

Handlers run on the shard's primary, between transactions' awaits, and read
the store as its transactions leave it (as the gRPC services of
`examples/word_count` do); a handler raises `QueryError` for an answer
other than 200.

Auth: the HTTP port's rules apply (`runtime.http`: a token with READ from
another machine), and a token's selector scopes the shards it may query, as
for `Stat`; the forwarded call carries a token the member signs, verified by
the primary like any application service (READ).

This module owns the declaration, resolution and forwarding of queries; HTTP
itself is `runtime.http`'s.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import parse_qsl, unquote

import betterproto2
import grpclib.const
import trio

from .. import aio
from ..auth.claims import Claims
from ..errors import ConsumerError
from ..message.mapping import Partitions, modulo_mapping, rendezvous_mapping
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from .service import ResolveError
from .shard import ShardStopped

if TYPE_CHECKING:
    from ..broker.client import JournalClient
    from .member import Consumer

__all__ = ["QueryError", "QueryParams", "QueryShards", "query"]

log = logging.getLogger(__name__)

PREFIX = "/query/"
"""Where query routes are served on the HTTP port."""
FORWARD_PATH = "/gazette_trio.Query/Call"
"""The gRPC method a member forwards a query to the shard's primary with."""
QUERY_TIMEOUT = 60.0
"""Seconds a query may wait for its shard (readiness, `read_through`)."""
PARTITIONS_REFRESH = 30.0
"""Seconds `QueryShards.owning` keeps a listing of a selector's journals."""
RESERVED = ("shard", "read_through")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class QueryError(ConsumerError):
    """A query's answer other than 200: `status` (an HTTP status) and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class QueryParams(dict[str, Any]):
    """A query's parameters; a missing one is a 400 naming it."""

    def __missing__(self, key: str) -> NoReturn:
        raise QueryError(400, f"missing parameter {key!r}")


ShardResolver = Callable[["QueryShards", QueryParams], "str | Awaitable[str]"]


@dataclass(frozen=True)
class QueryRoute:
    """One declared route: its name, handler and shard resolver."""

    name: str
    handler: Callable[..., Awaitable[Any]]
    shard: ShardResolver | None


_ATTRIBUTE = "__gazette_trio_query__"


def query(name: str, *, shard: ShardResolver | None = None) -> Callable[[F], F]:
    """Declare the decorated method `async def f(self, shard, store, params)`
    as the JSON query route `name`, answered on the primary of the shard
    `shard(shards, params)` names (see the module docstring)."""
    if not name or "/" in name or name != name.strip():
        raise ValueError(f"query route {name!r}: expected a non-empty name without '/'")

    def decorate(fn: F) -> F:
        setattr(fn, _ATTRIBUTE, QueryRoute(name, fn, shard))
        return fn

    return decorate


def routes_of(app: object) -> dict[str, QueryRoute]:
    """The query routes `app`'s class declares, by name."""
    routes: dict[str, QueryRoute] = {}
    for klass in reversed(type(app).__mro__):
        for attribute in vars(klass).values():
            route = getattr(attribute, _ATTRIBUTE, None)
            if isinstance(route, QueryRoute):
                routes[route.name] = route
    return routes


class QueryShards:
    """What a route's shard resolver may ask: which shard reads a journal,
    or owns a key."""

    def __init__(self, app: object, consumer: Consumer) -> None:
        self.app = app
        self._consumer = consumer
        self._partitions: dict[str, tuple[Partitions, float]] = {}

    @property
    def journals(self) -> JournalClient:
        return self._consumer.api.journals

    def reading(self, journal: str) -> str:
        """The id of the (first) shard reading `journal`; 404 if none does."""
        readers = self._consumer.service.resolver.shards_with_source(journal)
        if not readers:
            raise QueryError(404, f"no shard reads journal {journal}")
        return readers[0].id

    async def owning(self, selector: str, key: object, *, mapping: str = "rendezvous") -> str:
        """The shard reading the journal that `key` maps to among the journals
        matching `selector`, by `mapping` ("rendezvous" or "modulo") of the
        key's text, as `gazette-trio publish -k` and `open_publisher` map."""
        if mapping not in ("rendezvous", "modulo"):
            raise ValueError(f"mapping {mapping!r}: expected 'rendezvous' or 'modulo'")
        cached = self._partitions.get(selector)
        now = time.monotonic()
        if cached is None or now - cached[1] > PARTITIONS_REFRESH:
            partitions = Partitions(self.journals, selector)
            await partitions.refresh()
            self._partitions[selector] = cached = (partitions, now)
        text = key if isinstance(key, str) else json.dumps(key, separators=(",", ":"))
        pick = rendezvous_mapping if mapping == "rendezvous" else modulo_mapping
        try:
            journal, _ = pick(cached[0], key=lambda _: text)(None)
        except LookupError:
            raise QueryError(503, f"no journal matches {selector}") from None
        return self.reading(journal)


# -- the forwarded call, as betterproto2 messages written by hand (no protoc)


@dataclass(eq=False, repr=False)
class ForwardedQuery(betterproto2.Message):
    header: bytes = betterproto2.field(1, betterproto2.TYPE_BYTES)
    """The forwarding member's resolution: an encoded protocol.Header."""
    route: str = betterproto2.field(2, betterproto2.TYPE_STRING)
    shard: str = betterproto2.field(3, betterproto2.TYPE_STRING)
    params: bytes = betterproto2.field(4, betterproto2.TYPE_BYTES)
    """A JSON object."""
    read_through: bytes = betterproto2.field(5, betterproto2.TYPE_BYTES)
    """A JSON object of journal → offset."""


@dataclass(eq=False, repr=False)
class QueryAnswer(betterproto2.Message):
    status: int = betterproto2.field(1, betterproto2.TYPE_INT32)
    body: bytes = betterproto2.field(2, betterproto2.TYPE_BYTES)
    """The JSON answer, as the HTTP port sends it."""


Forward = Callable[[str, "ForwardedQuery"], Awaitable["QueryAnswer"]]
"""How a query reaches the primary at an endpoint (gRPC unless told otherwise)."""


class QueryRouter:
    """Answers the routes of one member's application; see the module docstring.

    `forward` replaces the gRPC call to the primary: in-process groups
    (`gazette_trio.testing`) hand the query to the other member's router."""

    def __init__(
        self,
        app: object,
        consumer: Consumer,
        *,
        forward: Forward | None = None,
    ) -> None:
        self.app = app
        self.consumer = consumer
        self.routes = routes_of(app)
        self.shards = QueryShards(app, consumer)
        self._forward_to = forward

    def grpc_service(self) -> aio.Service:
        """The method peers forward queries to (behind `guard`, READ)."""
        return aio.Service(
            [
                aio.Method(
                    FORWARD_PATH,
                    grpclib.const.Cardinality.UNARY_UNARY,
                    ForwardedQuery,
                    QueryAnswer,
                    self.forwarded,
                )
            ]
        )

    async def http(
        self, method: str, target: str, body: bytes, claims: Claims | None
    ) -> tuple[int, bytes]:
        """(status, JSON body) of an HTTP request for `target` under `PREFIX`."""
        try:
            path, _, query_string = target.partition("?")
            name = unquote(path[len(PREFIX) :])
            params, read_through = _parse(method, query_string, body)
            status, answer = await self._answer(name, params, read_through, None, claims)
        except QueryError as exc:
            status, answer = exc.status, {"error": exc.message}
        except Exception as exc:
            # Ours, not the handler's (that is caught closer): still an answer.
            log.exception("query %s failed", target)
            status, answer = 500, {"error": f"{type(exc).__name__}: {exc}"}
        return status, _encode(answer)

    async def ask(
        self, route: str, params: Mapping[str, Any], read_through: Mapping[str, int] | None = None
    ) -> tuple[int, Any]:
        """(status, JSON answer) of a query, as `/query/<route>` answers it."""
        try:
            return await self._answer(
                route, QueryParams(params), dict(read_through or {}), None, None
            )
        except QueryError as exc:
            return exc.status, {"error": exc.message}

    async def forwarded(self, request: ForwardedQuery) -> QueryAnswer:
        """Answer a query another member forwarded here."""
        try:
            header = pb.Header.parse(request.header)
            params = QueryParams(json.loads(request.params or b"{}"))
            read_through = json.loads(request.read_through or b"{}")
            params["shard"] = request.shard
            status, answer = await self._answer(request.route, params, read_through, header, None)
        except QueryError as exc:
            status, answer = exc.status, {"error": exc.message}
        except ValueError as exc:
            raise aio.InvalidArgument(f"forwarded query: {exc}") from None
        return QueryAnswer(status=status, body=_encode(answer))

    async def _answer(
        self,
        name: str,
        params: QueryParams,
        read_through: dict[str, int],
        proxy_header: pb.Header | None,
        claims: Claims | None,
    ) -> tuple[int, object]:
        route = self.routes.get(name)
        if route is None:
            known = ", ".join(sorted(self.routes)) or "none"
            raise QueryError(404, f"no query route {name!r} (routes: {known})")
        _check_offsets(read_through)
        shard_id = params.pop("shard", None)
        if shard_id is None:
            if route.shard is None:
                raise QueryError(400, f"missing parameter 'shard' (route {name!r} names no shard)")
            try:
                chosen = route.shard(self.shards, params)
                shard_id = await chosen if inspect.isawaitable(chosen) else chosen
            except QueryError:
                raise
            except aio.RpcError as exc:
                # Listing the journals a key maps over failed: the broker's out of reach.
                raise QueryError(503, f"finding the shard of query {name!r}: {exc}") from None
            except Exception as exc:
                log.exception("finding the shard of query %s failed", name)
                raise QueryError(
                    500, f"finding the shard of query {name!r}: {type(exc).__name__}: {exc}"
                ) from None
        if not isinstance(shard_id, str) or not shard_id:
            raise QueryError(400, f"parameter 'shard': expected a shard id, got {shard_id!r}")
        resolver = self.consumer.service.resolver
        item = self.consumer.service.state.item_by_id.get(shard_id)
        if (
            claims is not None
            and self.consumer.api.verifier.enabled
            and (item is None or not claims.matches_shard(shard_id, item.spec.labels))
        ):
            raise QueryError(404, f"no shard {shard_id}")
        with trio.move_on_after(QUERY_TIMEOUT):
            try:
                res = await resolver.resolve(
                    shard_id,
                    may_proxy=proxy_header is None,
                    proxy_header=proxy_header,
                    read_through=read_through,
                )
            except ShardStopped as exc:
                raise QueryError(503, f"shard {shard_id}: {exc}") from None
            except ResolveError as exc:
                raise QueryError(409, f"shard {shard_id}: {exc}") from None
            if res.status == pc.Status.SHARD_NOT_FOUND:
                raise QueryError(404, f"no shard {shard_id}")
            if res.status != pc.Status.OK:
                raise QueryError(503, f"shard {shard_id}: {res.status.name}")
            if res.shard is None:
                return await self._forward(res.header, name, shard_id, params, read_through)
            store = res.shard.store
            if store is None:
                raise QueryError(503, f"shard {shard_id}: its store is not open")
            try:
                result = await route.handler(self.app, res.shard, store, params)
            except QueryError:
                raise
            except Exception as exc:
                log.exception("query %s on shard %s failed", name, shard_id)
                raise QueryError(
                    500, f"query {name!r} failed: {type(exc).__name__}: {exc}"
                ) from None
            try:
                json.dumps(result)
            except (TypeError, ValueError) as exc:
                raise QueryError(
                    500, f"query {name!r} answered what JSON cannot hold: {exc}"
                ) from None
            member = res.header.process_id
            return 200, {
                "shard": shard_id,
                "member": f"{member.zone}/{member.suffix}" if member else "",
                "result": result,
            }
        waited = f" to read through {read_through}" if read_through else " to be ready"
        raise QueryError(504, f"shard {shard_id}: waited {QUERY_TIMEOUT:g} s{waited}")

    async def _forward(
        self,
        header: pb.Header,
        name: str,
        shard_id: str,
        params: QueryParams,
        read_through: dict[str, int],
    ) -> tuple[int, object]:
        route = header.route
        assert route is not None and route.primary >= 0
        endpoint = route.endpoints[route.primary] if route.endpoints else ""
        if not endpoint:
            raise QueryError(503, f"shard {shard_id}: its primary announces no endpoint")
        request = ForwardedQuery(
            header=bytes(header),
            route=name,
            shard=shard_id,
            params=_encode(dict(params)),
            read_through=_encode(read_through),
        )
        try:
            if self._forward_to is not None:
                answer = await self._forward_to(endpoint, request)
            else:
                answer = await aio.unary(
                    self.consumer.api.channel(endpoint),
                    FORWARD_PATH,
                    request,
                    QueryAnswer,
                    timeout=QUERY_TIMEOUT + 5,
                )
        except aio.RpcError as exc:
            raise QueryError(502, f"shard {shard_id}: its primary {endpoint}: {exc}") from None
        return answer.status, json.loads(answer.body)


def _parse(method: str, query_string: str, body: bytes) -> tuple[QueryParams, dict[str, int]]:
    params = QueryParams()
    read_through: dict[str, int] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key == "read_through":
            journal, colon, offset = value.rpartition(":")
            if not colon or not journal or not offset.isdigit():
                raise QueryError(
                    400, f"parameter 'read_through': {value!r} (expected <journal>:<offset>)"
                )
            read_through[journal] = int(offset)
        elif key in params:
            raise QueryError(400, f"parameter {key!r} given twice")
        else:
            params[key] = value
    if method == "POST" and body.strip():
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise QueryError(400, f"body: not JSON ({exc})") from None
        if not isinstance(document, dict):
            raise QueryError(400, f"body: expected a JSON object, not {type(document).__name__}")
        offsets = document.pop("read_through", {})
        if not isinstance(offsets, dict):
            raise QueryError(400, "body: 'read_through' must be an object of journal → offset")
        read_through.update(offsets)
        params.update(document)
    return params, read_through


def _check_offsets(read_through: Mapping[str, object]) -> None:
    for journal, offset in read_through.items():
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise QueryError(
                400,
                f"read_through[{journal}]: invalid offset {offset!r} (expected an integer >= 0)",
            )


def _encode(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
