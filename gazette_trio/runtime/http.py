"""The member's small HTTP/1.1 server: `/metrics`, `/status`, `/status.json`.

Served on Trio with h11 (the protocol as a state machine, sockets here), on
its own port (`[http]` in the config), one task per connection under the
server's nursery:

- `GET /metrics`: Prometheus text exposition of `metrics.REGISTRY`;
- `GET /status`: an HTML page of the group (members, shards, replicas,
  lag, rates) that refreshes itself by polling `/status.json`; its first
  render is embedded in the page, so it shows data without waiting for
  the first poll;
- `GET /status.json`: `status.snapshot_to_json` of the `StatusSource`;
- `GET /`: a redirect to `/status`;
- `GET` or `POST /query/<route>`: the application's JSON query routes, when
  it declares any (`consumer.queries`, which answers them; a POST's body,
  at most `MAX_BODY` bytes, is its JSON parameters).

Connections are kept alive between requests and closed after an idle
minute; at most `[limits] max_http_connections` are served at once (one
more is closed unread); only GET and HEAD are served, and POST to queries. A failing `StatusSource` answers 500
with the error, and the server carries on.

With auth keys (`verifier`), a request from another machine must carry
`Authorization: Bearer <token>` with the READ capability, Gazette's tokens
as on the gRPC port; a refused one is 401 with the reason. Requests from
loopback are served without a token: whoever is on the machine can read the
member's data directory anyway. A query with a token is scoped by its
selector, as the Shard API's Stat is. With `tls`, the port speaks HTTPS only.

This module owns HTTP; what is shown comes from `status` and `metrics`.
"""

from __future__ import annotations

import functools
import importlib.resources
import ipaddress
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import h11
import prometheus_client
import trio
from prometheus_client import CollectorRegistry

from .. import aio, limits
from ..auth import capabilities as caps
from ..auth.claims import Claims
from ..auth.verifier import OPEN, Verifier
from .metrics import REGISTRY
from .status import StatusSource, snapshot_to_json

__all__ = ["Response", "StatusServer"]

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 60.0
"""Seconds a kept-alive connection may wait for its next request."""
MAX_BUFFER = 64 * 1024
MAX_BODY = 1024 * 1024
"""Bytes of a request body (a query's JSON parameters) read at most; past it, 413."""
QUERY_PREFIX = "/query/"
_SERVER = b"gazette-trio"
_PLACEHOLDER = "/*__INITIAL_STATUS__*/null"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


class QueryRoutes(Protocol):
    """What answers `/query/...` (`consumer.queries.QueryRouter`)."""

    async def http(
        self, method: str, target: str, body: bytes, claims: Claims | None
    ) -> tuple[int, bytes]: ...


class _TooLarge(Exception):
    pass


def _page_template() -> str:
    return (
        importlib.resources.files("gazette_trio.runtime")
        .joinpath("status_page.html")
        .read_text(encoding="utf-8")
    )


def _embed(data: object) -> str:
    # Inside <script>, "<" must not start a closing tag or a comment.
    return json.dumps(data).replace("<", "\\u003c")


class StatusServer:
    """Serves metrics and the status page of one member."""

    def __init__(
        self,
        source: StatusSource,
        registry: CollectorRegistry = REGISTRY,
        *,
        max_connections: int | None = None,
        verifier: Verifier = OPEN,
        tls: ssl.SSLContext | None = None,
        queries: QueryRoutes | None = None,
    ) -> None:
        self.source = source
        self.queries = queries
        self.registry = registry
        self.verifier = verifier
        self.tls = tls
        self.max_connections = (
            limits.current().max_http_connections if max_connections is None else max_connections
        )
        self._open = 0
        self._template = _page_template()
        self._routes: dict[str, Callable[[], Awaitable[Response]]] = {
            "/metrics": self._metrics,
            "/status": self._status_page,
            "/status.json": self._status_json,
            "/": self._root,
        }

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; `task_status.started` reports the bound port."""
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, self._connection, port, host=host)
            )
            bound = listeners[0].socket.getsockname()[1]
            scheme = "https" if self.tls is not None else "http"
            log.info(
                "serving /metrics and /status%s on %s://%s:%d",
                " and /query/ routes" if self.queries is not None else "",
                scheme,
                host,
                bound,
            )
            task_status.started(bound)

    # -- routes

    async def _metrics(self) -> Response:
        body = prometheus_client.generate_latest(self.registry)
        return Response(200, body, prometheus_client.CONTENT_TYPE_LATEST)

    async def _status_json(self) -> Response:
        data = snapshot_to_json(await self.source.snapshot())
        return Response(
            200,
            json.dumps(data).encode(),
            "application/json",
            (("cache-control", "no-store"),),
        )

    async def _status_page(self) -> Response:
        data = snapshot_to_json(await self.source.snapshot())
        page = self._template.replace(_PLACEHOLDER, _embed(data))
        return Response(
            200, page.encode(), "text/html; charset=utf-8", (("cache-control", "no-store"),)
        )

    async def _root(self) -> Response:
        return Response(302, b"", "text/plain", (("location", "/status"),))

    async def respond(
        self, method: str, target: str, body: bytes = b"", claims: Claims | None = None
    ) -> Response:
        """The response to one request (also usable without a socket)."""
        path = target.split("?", 1)[0]
        if path.startswith(QUERY_PREFIX):
            if self.queries is None:
                none = {"error": "this member's application declares no query routes"}
                return Response(404, json.dumps(none).encode(), "application/json")
            if method not in ("GET", "POST"):
                return Response(
                    405,
                    json.dumps({"error": "queries take GET or POST"}).encode(),
                    "application/json",
                    (("allow", "GET, POST"),),
                )
            status, answer = await self.queries.http(method, target, body, claims)
            return Response(status, answer, "application/json", (("cache-control", "no-store"),))
        route = self._routes.get(path)
        if route is None:
            return Response(404, f"no such page: {path}\n".encode(), "text/plain; charset=utf-8")
        if method not in ("GET", "HEAD"):
            return Response(
                405, b"only GET and HEAD\n", "text/plain; charset=utf-8", (("allow", "GET, HEAD"),)
            )
        try:
            return await route()
        except Exception as exc:
            log.exception("serving %s failed", path)
            body = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
            return Response(500, body, "application/json")

    # -- the connection loop

    async def _connection(self, stream: trio.SocketStream) -> None:
        if self._open >= self.max_connections:
            # Past the cap a connection is closed unread: the page is for
            # people and scrapers, a handful at a time.
            log.debug("HTTP connection refused: %d open", self._open)
            await stream.aclose()
            return
        self._open += 1
        try:
            peer = _peer_host(stream)
            if self.tls is None:
                await self._serve_connection(stream, peer)
                return
            secured = trio.SSLStream(stream, self.tls, server_side=True)
            with trio.move_on_after(10):
                try:
                    await secured.do_handshake()
                except trio.BrokenResourceError:
                    # Plaintext, or a certificate the port does not accept.
                    await stream.aclose()
                    return
                await self._serve_connection(secured, peer)  # type: ignore[arg-type]
        finally:
            self._open -= 1

    def _authorize(self, request: h11.Request, peer: str | None) -> Response | Claims | None:
        """401 for a request that needs a token and lacks a valid one; else
        the token's claims, or None for a request that needs none."""
        if not self.verifier.enabled or (peer is not None and _loopback(peer)):
            return None
        metadata = {
            name.decode().lower(): value.decode("latin-1") for name, value in request.headers
        }
        try:
            return self.verifier.verify_metadata(metadata, caps.READ)
        except aio.Unauthenticated as exc:
            return Response(
                401,
                f"unauthenticated: {exc.message}\n".encode(),
                "text/plain; charset=utf-8",
                (("www-authenticate", "Bearer"),),
            )

    def _refusal(self, request: h11.Request, peer: str | None) -> Response | None:
        """401 for a request that needs a token and lacks a valid one."""
        authorized = self._authorize(request, peer)
        return authorized if isinstance(authorized, Response) else None

    async def _serve_connection(self, stream: trio.SocketStream, peer: str | None = None) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BUFFER)
        try:
            while True:
                try:
                    received = await self._next_request(conn, stream)
                except _TooLarge:
                    too_large = Response(
                        413,
                        json.dumps({"error": f"request body over {MAX_BODY} bytes"}).encode(),
                        "application/json",
                        (("connection", "close"),),
                    )
                    await self._send(conn, stream, too_large)
                    return
                if received is None:
                    return
                request, body = received
                authorized = self._authorize(request, peer)
                if isinstance(authorized, Response):
                    response = authorized
                else:
                    response = await self.respond(
                        request.method.decode(), request.target.decode(), body, authorized
                    )
                await self._send(conn, stream, response, head=request.method == b"HEAD")
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return  # the client did not finish its request; nothing more to do
        except h11.RemoteProtocolError as exc:
            await self._send_error(conn, stream, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        finally:
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                await stream.aclose()

    async def _next_request(
        self, conn: h11.Connection, stream: trio.SocketStream
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        with trio.move_on_after(IDLE_TIMEOUT):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(MAX_BUFFER)
                    conn.receive_data(data)  # b"" marks the end of the stream
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_BODY:
                        raise _TooLarge
                elif isinstance(event, h11.EndOfMessage):
                    return (request, bytes(body)) if request is not None else None
                elif isinstance(event, h11.ConnectionClosed):
                    return None
        return None

    async def _send(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        response: Response,
        *,
        head: bool = False,
    ) -> None:
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            ("server", _SERVER.decode()),
            *response.headers,
        ]
        events: list[h11.Event] = [h11.Response(status_code=response.status, headers=headers)]
        if not head and response.body:
            events.append(h11.Data(data=response.body))
        events.append(h11.EndOfMessage())
        await stream.send_all(b"".join(conn.send(event) or b"" for event in events))

    async def _send_error(
        self, conn: h11.Connection, stream: trio.SocketStream, exc: h11.RemoteProtocolError
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"bad request: {exc}\n".encode()
        response = Response(
            exc.error_status_hint, body, "text/plain; charset=utf-8", (("connection", "close"),)
        )
        try:
            await self._send(conn, stream, response)
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _peer_host(stream: trio.SocketStream) -> str | None:
    try:
        return str(stream.socket.getpeername()[0])
    except (OSError, IndexError, AttributeError):
        return None


def _loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))
