"""The one bridge between Trio and asyncio, where grpclib lives.

Everything in gazette-trio runs on Trio except grpclib, which is asyncio. This
module is the only one that touches asyncio. It runs one asyncio loop (an
"island", opened with `trio_asyncio.open_loop`) at the root of the process and
offers Trio code four kinds of call (unary, server stream, client stream, bidi
stream) and a server whose handlers are Trio functions.

The rules it follows were measured (docs/architecture.md, Concurrency):

- A grpclib stream lives its whole life inside one asyncio coroutine, entered
  once through `aio_as_trio`. Messages cross between the two worlds through a
  bounded `_Pipe` with synchronous put/get on both sides; a side awaits only
  when the pipe is full (producer) or empty (consumer), and always on its own
  loop's primitive. Crossing the loop boundary per message instead costs a
  third of stream throughput.
- No asyncio primitive is awaited from Trio and no Trio primitive is awaited
  from asyncio; waking the other side is a synchronous call.
- A Trio cancel scope that ends a call cancels the asyncio coroutine, and
  grpclib's `async with` exit then resets the HTTP/2 stream: the server sees
  the cancellation and the connection keeps no half-open stream.

Errors reach Trio callers as `RpcError` subclasses named for their gRPC
status; transport failures are `Unavailable`. Trio handlers raise the same
classes to answer with a status; any other exception answers INTERNAL (a full
disk RESOURCE_EXHAUSTED, running out of descriptors UNAVAILABLE), described
without the server's absolute paths, and the server goes on.

Servers and clients hold peers to the process's `gazette_trio.limits`: a
message's length prefix is checked before any of it is read, and bytes that
do not decode as the method's type answer INVALID_ARGUMENT; a server caps its
connections (one past the cap is closed on accept; EMFILE on accept only
pauses accepting), the calls per connection, the request data a call may
send that its handler has not read (its HTTP/2 window) and the bytes a
streaming call queues, closes idle connections, and releases what a closed
connection's calls held. docs/limits.md has the figures.

Credentials are plumbing here and policy elsewhere: a `Channel` dials an
`https://` endpoint with TLS and gives each call the metadata its
`DialCredentials` hook returns (the process's, set once with
`set_dial_credentials`); a handler reads its call's metadata and peer with
`incoming_call()`; `serve` takes a TLS context. Which token a call carries
and what a server accepts are `gazette_trio.auth`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import ctypes.util
import errno
import gc
import logging
import os
import re
import socket
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

import grpclib.client
import grpclib.config
import grpclib.const
import grpclib.exceptions
import grpclib.protocol
import grpclib.server
import h2.connection
import h2.exceptions
import h2.settings
import trio
import trio_asyncio

from . import limits
from ._scope import background_nursery
from .errors import GazetteTrioError
from .protocol.codec import CODEC

log = logging.getLogger(__name__)

T = TypeVar("T")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


# --------------------------------------------------------------------------
# Errors


class RpcError(GazetteTrioError):
    """A gRPC call ended with a non-OK status."""

    status: grpclib.const.Status = grpclib.const.Status.UNKNOWN

    def __init__(self, message: str = "", *, status: grpclib.const.Status | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return f"{self.status.name}: {self.message}" if self.message else self.status.name


class CancelledError(RpcError):
    status = grpclib.const.Status.CANCELLED


class UnknownError(RpcError):
    status = grpclib.const.Status.UNKNOWN


class InvalidArgument(RpcError):
    status = grpclib.const.Status.INVALID_ARGUMENT


class DeadlineExceeded(RpcError):
    status = grpclib.const.Status.DEADLINE_EXCEEDED


class NotFound(RpcError):
    status = grpclib.const.Status.NOT_FOUND


class AlreadyExists(RpcError):
    status = grpclib.const.Status.ALREADY_EXISTS


class PermissionDenied(RpcError):
    status = grpclib.const.Status.PERMISSION_DENIED


class ResourceExhausted(RpcError):
    status = grpclib.const.Status.RESOURCE_EXHAUSTED


class FailedPrecondition(RpcError):
    status = grpclib.const.Status.FAILED_PRECONDITION


class Aborted(RpcError):
    status = grpclib.const.Status.ABORTED


class OutOfRange(RpcError):
    status = grpclib.const.Status.OUT_OF_RANGE


class Unimplemented(RpcError):
    status = grpclib.const.Status.UNIMPLEMENTED


class Internal(RpcError):
    status = grpclib.const.Status.INTERNAL


class Unavailable(RpcError):
    status = grpclib.const.Status.UNAVAILABLE


class DataLoss(RpcError):
    status = grpclib.const.Status.DATA_LOSS


class Unauthenticated(RpcError):
    status = grpclib.const.Status.UNAUTHENTICATED


_BY_STATUS: dict[grpclib.const.Status, type[RpcError]] = {
    cls.status: cls
    for cls in (
        CancelledError,
        UnknownError,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def _as_rpc_error(exc: BaseException) -> RpcError:
    """Translate what grpclib or the transport raised into our error classes."""
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _as_rpc_error(exc.exceptions[0])
    if isinstance(exc, grpclib.exceptions.GRPCError):
        cls = _BY_STATUS.get(exc.status, RpcError)
        return cls(exc.message or "", status=exc.status)
    if isinstance(exc, asyncio.TimeoutError):
        return DeadlineExceeded("deadline exceeded")
    if isinstance(exc, (grpclib.exceptions.StreamTerminatedError, ConnectionError, OSError)):
        return Unavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, grpclib.exceptions.ProtocolError):
        return Unavailable(f"protocol error: {exc}")
    return Internal(f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------
# The island


@contextlib.asynccontextmanager
async def asyncio_island() -> AsyncIterator[None]:
    """Run the asyncio loop grpclib needs for the duration of the block.

    Open it once, at the root (a `serve` process, a test fixture). Nested uses
    reuse the loop that is already open.
    """
    if _island_here():
        yield
        return
    _patch_hyperframe_repr()
    block_error: BaseException | None = None
    try:
        async with trio_asyncio.open_loop() as loop:
            loop.set_exception_handler(_loop_exception_handler)
            token = _ISLAND_THREAD.set(threading.get_ident())
            try:
                yield
            except BaseException as exc:
                block_error = exc
                raise
            finally:
                _ISLAND_THREAD.reset(token)
    except BaseExceptionGroup as group:
        # trio_asyncio's nurseries wrap the block's own error; the caller
        # should see it as itself (an `except aio.RpcError` must work).
        if block_error is not None and _only(group) is block_error:
            raise block_error from None
        raise


class _Every:
    """Says yes at most once per `period` seconds: for warnings about a
    condition that repeats many times a second."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._last = -float("inf")

    def now(self) -> bool:
        at = time.monotonic()
        if at - self._last < self._period:
            return False
        self._last = at
        return True


_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_accept_warnings = _Every(10)


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The island loop's handler of errors nothing else catches.

    asyncio reports a listening socket's accept failing for want of
    descriptors or memory here, and itself stops accepting on that socket
    for a second; trio_asyncio's default handler would make it fatal to the
    whole process. It is a moment of refusing connections: logged (once in
    a while, since it repeats), never raised. Anything else keeps the
    default handling.
    """
    exc = context.get("exception")
    if (
        isinstance(exc, OSError)
        and exc.errno in _ACCEPT_CAPACITY_ERRNOS
        and "accept" in str(context.get("message", ""))
    ):
        if _accept_warnings.now():
            log.warning(
                "not accepting connections for a moment: %s (raise the descriptor limit "
                "or lower [limits] max_connections)",
                exc,
            )
        return
    loop.default_exception_handler(context)


def _only(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The single leaf of nested one-error groups, or None."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


def _patch_hyperframe_repr() -> None:
    """Make h2's per-frame trace repr cheap, with identical output.

    h2 builds `repr(frame)` for every frame it receives, as the argument of a
    trace log call that is then discarded; hyperframe's repr hexlifies the
    whole payload and keeps 20 hex digits. On 16 KiB DATA frames that was
    15-26% of a receiving process's CPU. Hexlifying the first 11 bytes gives
    the same 20 digits and the same "...".
    """
    try:
        import hyperframe.frame as hf
    except ImportError:  # pragma: no cover - grpclib depends on h2/hyperframe
        return
    original = getattr(hf, "_raw_data_repr", None)
    if original is None or getattr(original, "_gazette_trio", False):
        return

    def raw_data_repr(data: bytes | None) -> str:
        return original(data[:11] if data else data)  # type: ignore[no-any-return]

    raw_data_repr._gazette_trio = True  # type: ignore[attr-defined]
    hf._raw_data_repr = raw_data_repr


# The loop lives in a context variable, which `trio.to_thread` copies into
# worker threads: a loop opened by another thread's Trio run is not ours.
_ISLAND_THREAD: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "gazette_trio_island_thread", default=None
)


def _island_here() -> bool:
    return (
        trio_asyncio.current_loop.get() is not None
        and _ISLAND_THREAD.get() == threading.get_ident()
    )


def _require_island() -> None:
    if not _island_here():
        raise RuntimeError(
            "gRPC calls need the asyncio island: wrap the program in "
            "`async with gazette_trio.aio.asyncio_island():`"
        )


# --------------------------------------------------------------------------
# The pipe between the two loops


class _Closed(Exception):
    """Raised by `_Pipe.get_nowait` once the pipe is closed and drained."""


def _weight(message: object) -> int:
    """What a message pins in a pipe, as far as it matters: its content
    bytes (journal reads and appends), plus a small fixed cost."""
    content = getattr(message, "content", None)
    if isinstance(content, (bytes, bytearray, memoryview)):
        return 64 + len(content)
    return 64


class _Pipe(Generic[T]):
    """A bounded FIFO with a producer on one loop and a consumer on the other.

    `put_nowait` and `get_nowait` are synchronous and may be called from
    either loop (both run on the same thread); each loop waits on its own
    primitive, woken synchronously by the other side.
    """

    def __init__(self, capacity: int, max_bytes: int = 0) -> None:
        self._items: deque[T] = deque()
        self._capacity = max(1, capacity)
        # With `max_bytes`, the pipe is also full once the content it holds
        # weighs that much (one item always fits): a reader that stops
        # reading then pins a bounded amount, whatever the message count.
        self._max_bytes = max_bytes
        self._bytes = 0
        # Each item's weight as it was put: a producer may know better than
        # `_weight` (a request's size as received).
        self._weights: deque[int] = deque()
        self._closed = False
        self._error: BaseException | None = None
        self._trio_lot = trio.lowlevel.ParkingLot()
        self._aio_waiters: list[asyncio.Future[None]] = []

    def _wake(self) -> None:
        if self._trio_lot:
            self._trio_lot.unpark_all()
        if self._aio_waiters:
            waiters, self._aio_waiters = self._aio_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def put_nowait(self, item: T, weight: int | None = None) -> bool:
        """Append `item`, weighing `weight` bytes (else `_weight(item)`);
        False if the pipe is full. Raises if closed."""
        if self._closed:
            raise _Closed("pipe is closed")
        if len(self._items) >= self._capacity:
            return False
        if self._max_bytes:
            if weight is None:
                weight = _weight(item)
            if self._items and self._bytes + weight > self._max_bytes:
                return False
            self._bytes += weight
            self._weights.append(weight)
        self._items.append(item)
        if len(self._items) == 1:
            self._wake()
        return True

    def get_nowait(self) -> T | None:
        """Pop the next item; None if empty. Raises the closing error, or
        `_Closed` once closed and drained."""
        if self._items:
            item = self._items.popleft()
            if self._max_bytes:
                self._bytes -= self._weights.popleft()
                self._wake()
            elif len(self._items) == self._capacity - 1:
                self._wake()
            return item
        if self._closed:
            if self._error is not None:
                raise self._error
            raise _Closed("pipe is closed")
        return None

    def close(self, error: BaseException | None = None) -> None:
        """End the pipe. A consumer drains what is buffered, then sees
        `error` (or the end)."""
        if not self._closed:
            self._closed = True
            self._error = error
            self._wake()

    def abort(self, error: BaseException) -> None:
        """End the pipe now, dropping what is buffered."""
        self._items.clear()
        self._weights.clear()
        self._bytes = 0
        self._closed = False
        self.close(error)

    async def trio_wait(self) -> None:
        await self._trio_lot.park()

    async def aio_wait(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._aio_waiters.append(fut)
        await fut

    # Trio side

    async def trio_put(self, item: T) -> None:
        while not self.put_nowait(item):
            await self.trio_wait()

    async def trio_get(self) -> T:
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            await self.trio_wait()

    # asyncio side

    async def aio_put(self, item: T, weight: int | None = None) -> None:
        while not self.put_nowait(item, weight):
            await self.aio_wait()

    async def aio_get(self) -> T:
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            await self.aio_wait()


class _PipeIterator(Generic[T]):
    """Trio-side iteration of a pipe. A class, not an async generator: a
    cancelled `anext` (a timeout around one receive) must leave the stream
    readable, where a generator would be finished by the Cancelled passing
    through it."""

    def __init__(self, pipe: _Pipe[T]) -> None:
        self._pipe = pipe

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self._pipe.trio_get()
        except _Closed:
            raise StopAsyncIteration from None


# --------------------------------------------------------------------------
# Client side


def parse_endpoint(endpoint: str) -> tuple[str | None, int | None, str | None]:
    """Split a Gazette endpoint into (host, port, unix path).

    Accepts `http://host:port`, `grpc://host:port`, `host:port` and
    `unix:///path/to/socket`, the forms Gazette's ProcessSpec.endpoint uses.
    """
    if endpoint.startswith("unix://"):
        return None, None, endpoint[len("unix://") :]
    url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if url.scheme not in ("http", "https", "grpc", "dns"):
        raise ValueError(f"endpoint {endpoint!r}: unsupported scheme {url.scheme!r}")
    if not url.hostname or url.port is None:
        raise ValueError(f"endpoint {endpoint!r}: expected host:port")
    return url.hostname, url.port, None


# grpclib returns HTTP/2 flow-control window only as the application reads,
# and by default a connection's window equals one stream's (4 MiB): one
# stream left unread (a journal read waiting on a busy consumer) would stall
# every other call on the connection, such as the recovery-log append a
# commit waits for. A client's streams keep their own windows (4 MiB); its
# connection's is made as large as HTTP/2 allows, as gRPC-Go effectively
# does: what it buffers is what it asked its servers for. A server's windows
# bound what its clients can make it hold, so they come from the process's
# limits (`_server_config`).
_CONNECTION_WINDOW = limits.MAX_WINDOW
_CLIENT_CONFIG = grpclib.config.Configuration(http2_connection_window_size=_CONNECTION_WINDOW)


def _server_config(bounds: limits.Limits) -> grpclib.config.Configuration:
    """A server's HTTP/2 windows: `stream_window` per call, and a connection
    window that never binds before its calls' windows do
    (`Limits.connection_window` says why)."""
    return grpclib.config.Configuration(
        http2_connection_window_size=bounds.connection_window(),
        http2_stream_window_size=bounds.stream_window,
    )


MetadataHook = Callable[[str, Any], Mapping[str, str] | None]


@dataclass(frozen=True)
class DialCredentials:
    """What a channel presents: a TLS context for `https://` endpoints (the
    CA bundle to trust, and an optional client certificate), and a hook
    giving each call's metadata from its path and request (the bearer token
    `gazette_trio.auth` signs). Plain `http://` endpoints never use TLS, as
    Gazette's dialer decides by the endpoint's scheme."""

    ssl: ssl.SSLContext | None = None
    metadata: MetadataHook | None = None


_DIAL = DialCredentials()


def set_dial_credentials(credentials: DialCredentials) -> DialCredentials:
    """Make `credentials` what channels created without their own use; returns
    the previous ones. A process sets them once, at its root, so every client
    it builds (journal, shard, routed, proxies) dials and signs the same way."""
    global _DIAL
    previous, _DIAL = _DIAL, credentials
    return previous


def dial_credentials() -> DialCredentials:
    """The credentials channels use by default."""
    return _DIAL


def _default_tls() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.set_alpn_protocols(["h2"])
    return context


_CLIENT_MAX_FRAME = 256 * 1024
"""The largest HTTP/2 frame a client lets its servers send
(SETTINGS_MAX_FRAME_SIZE; HTTP/2's default is 16 KiB)."""


class _ClientProtocol(grpclib.protocol.H2Protocol):  # type: ignore[misc]
    """A client connection that accepts DATA frames of up to
    `_CLIENT_MAX_FRAME`.

    A server writes each frame as it makes it, and at HTTP/2's default size
    a journal read's 128 KiB response is 8 frames of 16 KiB and a small
    one, each written on its own. Over TLS each of those writes is its own
    encryption call and send, and each 16 KiB frame plus its 9-byte header
    becomes a 16 KiB record and a 9-byte record. With frames as large as a
    response, a response is one write: full records, one send. (Reading 75
    MB over TLS, the reader's CPU went from about 0.25 s to 0.15 s, and the
    server's fell too; in plaintext, fewer frames cost a little less.) The
    frame is buffered whole before it is parsed, so this also bounds what a
    connection holds for a frame in progress.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.connection._connection.update_settings(
            {h2.settings.SettingCodes.MAX_FRAME_SIZE: _CLIENT_MAX_FRAME}
        )
        self.connection.flush()


_TLS_READ_BUFFER = 256 * 1024
"""Bytes a TLS client connection decrypts into at once (asyncio's own read size)."""


class _TLSClientProtocol(_ClientProtocol, asyncio.BufferedProtocol):  # type: ignore[misc]
    """A client connection over TLS that is handed its decrypted bytes in
    one buffer of its own, reused for every read.

    To a plain `Protocol`, asyncio's TLS transport gives each read as new
    bytes: a 256 KiB object allocated per TLS record, shrunk to the record,
    then the records joined. Reading a 75 MB journal, that churn cost 25,000
    to 40,000 page faults (allocations that large are mapped and unmapped
    each time) and about 0.1 s of CPU, twice the decryption's. A
    `BufferedProtocol` has the records decrypted straight into its buffer;
    h2 copies what it keeps before `data_received` returns, so nothing
    holds on to the buffer between reads.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._read_buffer = memoryview(bytearray(_TLS_READ_BUFFER))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        # Released on return: a reference kept by mistake would fail loudly
        # instead of seeing the next read's bytes. (grpclib annotates bytes;
        # it hands them to h2's `receive_data`, which takes any buffer.)
        with self._read_buffer[:nbytes] as data:
            self.data_received(data)  # type: ignore[arg-type]


class _GrpclibChannel(grpclib.client.Channel):  # type: ignore[misc]
    """grpclib's channel, with our client connections (`_ClientProtocol`,
    `_TLSClientProtocol` over TLS)."""

    def _protocol_factory(self) -> grpclib.protocol.H2Protocol:
        kind = _ClientProtocol if self._ssl is None else _TLSClientProtocol
        return kind(grpclib.client.Handler(), self._config, self._h2_config)

    async def __connect__(self) -> grpclib.protocol.H2Protocol:
        protocol = await super().__connect__()
        handler = cast(grpclib.client.Handler, protocol.handler)
        if handler.connection_lost:
            # It closed as it opened (a server going away sends GOAWAY at
            # once, or the socket dies): grpclib would open a stream on it
            # anyway and fail with an AttributeError, which is no server's
            # verdict. As a lost connection, the call is retried.
            raise ConnectionResetError("the connection closed as soon as it opened")
        return protocol


class Channel:
    """A gRPC channel to one endpoint, living on the asyncio island.

    Cheap to create; the connection opens on first use and re-opens after a
    failure. Close it with `aclose()` (or `async with`). An `https://`
    endpoint is dialed with TLS; `credentials` default to the process's
    (`set_dial_credentials`).
    """

    def __init__(self, endpoint: str, *, credentials: DialCredentials | None = None) -> None:
        _require_island()
        self.endpoint = endpoint
        self.credentials = _DIAL if credentials is None else credentials
        host, port, path = parse_endpoint(endpoint)
        tls: ssl.SSLContext | None = None
        if path is None and endpoint.startswith("https://"):
            tls = self.credentials.ssl or _default_tls()
        self._grpc = _GrpclibChannel(
            host=host, port=port, path=path, codec=CODEC, config=_CLIENT_CONFIG, ssl=tls
        )

    def explain(self, error: RpcError) -> RpcError:
        """`error` with a hint when a plaintext connection was dropped: what
        a TLS port does to a client that does not speak TLS."""
        if (
            isinstance(error, Unavailable)
            and self.endpoint.startswith(("http://", "grpc://"))
            and ("Connection lost" in error.message or "ConnectionReset" in error.message)
        ):
            secure = "https://" + self.endpoint.split("://", 1)[1]
            return Unavailable(
                f"{error.message} (the server closed the plaintext connection: "
                f"if it serves TLS, dial {secure})"
            )
        return error

    def call_metadata(self, path: str, request: Any) -> Mapping[str, str] | None:
        """The metadata a call of `path` with `request` carries (its token)."""
        hook = self.credentials.metadata
        return None if hook is None else hook(path, request)

    @property
    def grpclib_channel(self) -> grpclib.client.Channel:
        return self._grpc

    def open_stream_count(self) -> int:
        """Streams the HTTP/2 connection holds open (for tests and /status)."""
        proto = self._grpc._protocol
        connection = getattr(proto, "connection", None)
        if connection is None:
            return 0
        return int(connection._connection.open_outbound_streams)

    async def aclose(self) -> None:
        self._grpc.close()
        # Let the transport's close callbacks run before the island shuts.
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def unary(
    channel: Channel,
    path: str,
    request: Any,
    reply_type: type[Resp],
    *,
    timeout: float | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Resp:
    """Make a unary call and return its reply. Without `metadata`, the
    channel's credentials give it (`Channel.call_metadata`)."""
    if metadata is None:
        metadata = channel.call_metadata(path, request)

    async def call() -> Resp:
        try:
            async with channel.grpclib_channel.request(
                path,
                grpclib.const.Cardinality.UNARY_UNARY,
                type(request),
                reply_type,
                timeout=timeout,
                metadata=metadata,
            ) as stream:
                await stream.send_message(request, end=True)
                reply: Resp | None = await _recv_reply(stream)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise channel.explain(_as_rpc_error(exc)) from exc
        if reply is None:
            raise Unavailable(f"{path}: stream ended without a reply")
        return reply

    return await trio_asyncio.aio_as_trio(call)()  # type: ignore[no-any-return]


class _StreamCall(Generic[Req, Resp]):
    """Shared machinery of the three streaming calls: one asyncio coroutine
    owns the grpclib stream; pipes carry requests in and replies out."""

    def __init__(self, buffer: int) -> None:
        self._requests: _Pipe[Req] = _Pipe(buffer)
        self._replies: _Pipe[Resp] = _Pipe(buffer)

    async def _send_requests(self, stream: Any) -> None:
        while True:
            try:
                item = await self._requests.aio_get()
            except _Closed:
                await stream.end()
                return
            await stream.send_message(item)

    async def _recv_replies(self, stream: Any) -> None:
        while (reply := await _recv_reply(stream)) is not None:
            await self._replies.aio_put(reply)

    async def send(self, message: Req) -> None:
        """Send one request message (waiting while the buffer is full)."""
        try:
            await self._requests.trio_put(message)
        except _Closed:
            # The call already ended; its outcome is reported by the reply side.
            raise Unavailable("stream is closed") from None

    def end(self) -> None:
        """Half-close the request side: no more requests."""
        self._requests.close()

    async def receive(self) -> Resp:
        """The next reply. Raises `trio.EndOfChannel` at the end, or the call's error."""
        try:
            return await self._replies.trio_get()
        except _Closed:
            raise trio.EndOfChannel from None

    def __aiter__(self) -> AsyncIterator[Resp]:
        return _PipeIterator(self._replies)


@contextlib.asynccontextmanager
async def _run_stream(
    call: _StreamCall[Req, Resp],
    body: Callable[[Any], Awaitable[None]],
    channel: Channel,
    path: str,
    cardinality: grpclib.const.Cardinality,
    request_type: type[Req],
    reply_type: type[Resp],
    timeout: float | None,
    metadata: Mapping[str, str] | None = None,
) -> AsyncIterator[None]:
    """Run `body(stream)` on the asyncio side for the life of the block.

    The stream's outcome is delivered through the reply pipe: its error, or
    its end. Leaving the block early (or being cancelled) cancels the asyncio
    coroutine, which resets the HTTP/2 stream.
    """
    _require_island()

    async def pump() -> None:
        try:
            async with channel.grpclib_channel.request(
                path, cardinality, request_type, reply_type, timeout=timeout, metadata=metadata
            ) as stream:
                await stream.send_request()
                await body(stream)
        except asyncio.CancelledError:
            call._replies.close(CancelledError("call was cancelled"))
            raise
        except BaseException as exc:
            call._replies.abort(channel.explain(_as_rpc_error(exc)))
            call._requests.abort(_as_rpc_error(exc))
        else:
            call._replies.close()

    # The pump never raises (its outcome goes through the reply pipe): what
    # leaves is the block's own error. Whatever the block did, the stream
    # ends with it.
    async with background_nursery() as nursery:

        async def run_pump() -> None:
            await trio_asyncio.aio_as_trio(pump)()

        nursery.start_soon(run_pump)
        yield


class ServerStreamCall(_StreamCall[Any, Resp]):
    """Replies of a server-streaming call: `async for reply in call`."""


class ClientStreamCall(_StreamCall[Req, Any]):
    """A client-streaming call: `await call.send(m)` ..., then
    `await call.finish()` for the single reply."""

    async def finish(self) -> Any:
        self.end()
        try:
            return await self._replies.trio_get()
        except _Closed:
            raise Unavailable("stream ended without a reply") from None


class BidiStreamCall(_StreamCall[Req, Resp]):
    """A bidirectional call: `send`/`end` requests and iterate replies."""


@contextlib.asynccontextmanager
async def server_stream(
    channel: Channel,
    path: str,
    request: Any,
    reply_type: type[Resp],
    *,
    timeout: float | None = None,
    buffer: int = 32,
    metadata: Mapping[str, str] | None = None,
) -> AsyncIterator[ServerStreamCall[Resp]]:
    """Open a server-streaming call; iterate the yielded object for replies.
    Without `metadata`, the channel's credentials give it."""
    if metadata is None:
        metadata = channel.call_metadata(path, request)
    call: ServerStreamCall[Resp] = ServerStreamCall(buffer)
    call._requests.put_nowait(request)
    call.end()

    async def body(stream: Any) -> None:
        await call._send_requests(stream)
        await call._recv_replies(stream)

    async with _run_stream(
        call,
        body,
        channel,
        path,
        grpclib.const.Cardinality.UNARY_STREAM,
        type(request),
        reply_type,
        timeout,
        metadata,
    ):
        yield call


def _readable_after_graceful_reset(stream: Any, error: BaseException) -> None:
    """Let a reply be read from a stream the server reset with NO_ERROR
    after ending its side of it.

    HTTP/2 lets a server that has sent its whole response reset the
    request side it no longer wants (RST_STREAM NO_ERROR): Gazette's brokers
    do so when they refuse an append before reading all of its content.
    grpclib then fails every later read of the stream, though the response
    (headers, message, trailers) is already buffered; clearing its stream
    error lets that response be read. Any other reset stays an error: without
    the server's end of stream nothing more would ever arrive.
    """
    protocol_stream = getattr(stream, "_stream", None)
    buffer = getattr(protocol_stream, "buffer", None)
    wrapper = getattr(stream, "_wrapper", None)
    if (
        "error_code: 0" in str(error)
        and getattr(buffer, "_eof", False)
        and getattr(protocol_stream, "headers", None) is not None
        and wrapper is not None
    ):
        wrapper._error = None
        # Our side can't be ended any more (the stream is reset); grpclib
        # requires it before it reads the trailers, which are buffered too.
        stream._end_done = True


@contextlib.asynccontextmanager
async def client_stream(
    channel: Channel,
    path: str,
    request_type: type[Req],
    reply_type: type[Any],
    *,
    timeout: float | None = None,
    buffer: int = 32,
    metadata: Mapping[str, str] | None = None,
) -> AsyncIterator[ClientStreamCall[Req]]:
    """Open a client-streaming call. Leaving the block without `finish()`
    cancels the call, so the server sees a broken stream. The requests are
    not known when it opens: pass the call's `metadata` (e.g.
    `channel.call_metadata(path, first_request)`), or it carries none."""
    call: ClientStreamCall[Req] = ClientStreamCall(buffer)

    async def body(stream: Any) -> None:
        try:
            await call._send_requests(stream)
        except (grpclib.exceptions.StreamTerminatedError, ConnectionError) as send_error:
            # A server may answer (e.g. JOURNAL_NOT_FOUND) and reset the stream
            # before reading all content: its status is still the answer.
            _readable_after_graceful_reset(stream, send_error)
            try:
                reply = await _recv_reply(stream)
            except grpclib.exceptions.GRPCError:
                raise
            except Exception:
                raise send_error from None
        else:
            reply = await _recv_reply(stream)
        if reply is not None:
            await call._replies.aio_put(reply)

    async with _run_stream(
        call,
        body,
        channel,
        path,
        grpclib.const.Cardinality.STREAM_UNARY,
        request_type,
        reply_type,
        timeout,
        metadata,
    ):
        yield call


@contextlib.asynccontextmanager
async def bidi_stream(
    channel: Channel,
    path: str,
    request_type: type[Req],
    reply_type: type[Resp],
    *,
    timeout: float | None = None,
    buffer: int = 32,
    metadata: Mapping[str, str] | None = None,
) -> AsyncIterator[BidiStreamCall[Req, Resp]]:
    """Open a bidirectional call (with `metadata`, as `client_stream`)."""
    call: BidiStreamCall[Req, Resp] = BidiStreamCall(buffer)

    async def body(stream: Any) -> None:
        # The sender is owned here and always awaited before the body ends.
        # (An asyncio.TaskGroup would wrap the reply side's GRPCError in an
        # ExceptionGroup on Python 3.11, hiding the status.)
        sender = asyncio.ensure_future(call._send_requests(stream))
        try:
            await call._recv_replies(stream)
        finally:
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async with _run_stream(
        call,
        body,
        channel,
        path,
        grpclib.const.Cardinality.STREAM_STREAM,
        request_type,
        reply_type,
        timeout,
        metadata,
    ):
        yield call


# --------------------------------------------------------------------------
# Server side

UnaryFn = Callable[[Any], Awaitable[Any]]
SendFn = Callable[[Any], Awaitable[None]]
ServerStreamFn = Callable[[Any, SendFn], Awaitable[None]]
ClientStreamFn = Callable[[AsyncIterator[Any]], Awaitable[Any]]
BidiStreamFn = Callable[[AsyncIterator[Any], SendFn], Awaitable[None]]


@dataclass(frozen=True)
class Method:
    """One RPC of a service, implemented by a Trio function.

    The function's shape follows the cardinality:
    - UNARY_UNARY:   `async def f(request) -> reply`
    - UNARY_STREAM:  `async def f(request, send) -> None`
    - STREAM_UNARY:  `async def f(requests) -> reply`
    - STREAM_STREAM: `async def f(requests, send) -> None`
    where `requests` is an async iterator and `await send(reply)` streams one
    reply back.
    """

    path: str
    cardinality: grpclib.const.Cardinality
    request_type: type
    reply_type: type
    fn: Callable[..., Awaitable[Any]]


async def _read_message(stream: Any, limit: int, what: str) -> tuple[Any, int] | None:
    """The next message of a grpclib stream (a server's request or a
    client's reply), decoded and dispatched as grpclib's `recv_message`
    would, with its size as received (prefix included), or None at its end;
    grpclib's own reading with two guards.

    The length prefix is checked against `limit` before any of the message
    is read, so a peer claiming 4 GiB costs nothing (RESOURCE_EXHAUSTED, as
    gRPC-Go answers). Bytes that are not a `message_type` raise
    INVALID_ARGUMENT with the decoder's reason.
    """
    h2_stream = stream._stream
    message_type = stream._recv_type
    try:
        prefix = await h2_stream.recv_data(5)
        if not prefix:
            return None
        if len(prefix) < 5:
            raise AssertionError("short prefix")
        if prefix[0] == 1:
            raise grpclib.exceptions.GRPCError(
                grpclib.const.Status.UNIMPLEMENTED, "compressed messages are not supported"
            )
        if prefix[0] != 0:
            raise grpclib.exceptions.GRPCError(
                grpclib.const.Status.INVALID_ARGUMENT,
                f"invalid gRPC message flag {prefix[0]}",
            )
        length = int.from_bytes(prefix[1:5], "big")
        if length > limit:
            raise grpclib.exceptions.GRPCError(
                grpclib.const.Status.RESOURCE_EXHAUSTED,
                f"grpc: received message larger than max ({length} vs. {limit})",
            )
        data = await h2_stream.recv_data(length) if length else b""
    except AssertionError:
        # grpclib's buffer asserts when the stream ends inside a message.
        raise grpclib.exceptions.GRPCError(
            grpclib.const.Status.INVALID_ARGUMENT, f"{what} stream ended inside a message"
        ) from None
    try:
        decoded = stream._codec.decode(data, message_type)
    except Exception as exc:
        reason = _short(f"{type(exc).__name__}: {exc}")
        log.info("undecodable %s %s: %s", what, message_type.__name__, reason)
        raise grpclib.exceptions.GRPCError(
            grpclib.const.Status.INVALID_ARGUMENT,
            f"{what} is not a valid {message_type.__name__} message ({reason})",
        ) from None
    (message,) = await stream._dispatch.recv_message(decoded)
    return message, 5 + length


async def _recv_reply(stream: Any) -> Any | None:
    """The next reply of a client-side grpclib stream: its `recv_message`,
    reading through `_read_message` bounded by `max_grpc_client_recv_size`."""
    if not stream._recv_initial_metadata_done:
        await stream.recv_initial_metadata()
    with stream._wrapper:
        read = await _read_message(stream, limits.current().max_grpc_client_recv_size, "reply")
        return None if read is None else read[0]


def _short(text: str, limit: int = 200) -> str:
    """`text` without absolute paths, on one line, at most `limit` characters."""
    text = _ABSOLUTE_PATH.sub(lambda m: m.group(1) + os.path.basename(m.group(2)), text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# An absolute path in an error message: the server's layout is not the
# client's business (the file's own name is kept, it names the journal).
_ABSOLUTE_PATH = re.compile(r"""(^|[\s'"(=:])(/[^\s'"]+)""")

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_NO_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


@dataclass(frozen=True)
class IncomingCall:
    """The call a server handler is serving: its path, the metadata the
    client sent (lower-case keys; the last value of a repeated key), and the
    peer's address (None for a Unix socket)."""

    path: str
    metadata: Mapping[str, str]
    peer: tuple[str, int] | None


_INCOMING: contextvars.ContextVar[IncomingCall | None] = contextvars.ContextVar(
    "gazette_trio_incoming_call", default=None
)


def incoming_call() -> IncomingCall | None:
    """The call being served by the current Trio handler (and tasks it starts)."""
    return _INCOMING.get()


def _call_info(stream: Any, path: str) -> IncomingCall:
    metadata: dict[str, str] = {}
    for key, value in (getattr(stream, "metadata", None) or {}).items():
        if isinstance(value, str):
            metadata[key.lower()] = value
    peer: tuple[str, int] | None = None
    with contextlib.suppress(Exception):
        addr = stream.peer.addr()
        if isinstance(addr, tuple) and len(addr) >= 2:
            peer = (str(addr[0]), int(addr[1]))
    return IncomingCall(path, metadata, peer)


def _with_incoming_call(
    handler: Callable[[Any], Awaitable[None]], path: str
) -> Callable[[Any], Awaitable[None]]:
    """`handler` with the call's `IncomingCall` set first. grpclib runs each
    call in its own asyncio task, and `trio_as_aio` carries the task's
    context into the Trio handler, so the Trio side sees it too."""

    async def handle(stream: Any) -> None:
        _INCOMING.set(_call_info(stream, path))
        await handler(stream)

    return handle


def _grpc_error(exc: BaseException, path: str) -> grpclib.exceptions.GRPCError:
    """The status a handler's exception answers with.

    Statuses raised on purpose pass through. A full disk or quota is
    RESOURCE_EXHAUSTED and running out of descriptors UNAVAILABLE: both are
    the server's state, not a bug, and a client can tell them apart. Any
    other exception is a bug: INTERNAL, logged with its traceback, and
    described to the client without the server's file paths.
    """
    if isinstance(exc, RpcError):
        return grpclib.exceptions.GRPCError(exc.status, exc.message)
    if isinstance(exc, grpclib.exceptions.GRPCError):
        return exc
    os_error = _os_error(exc)
    if os_error is not None and os_error.errno in _NO_SPACE:
        log.error("%s: %s", path, os_error)
        return grpclib.exceptions.GRPCError(
            grpclib.const.Status.RESOURCE_EXHAUSTED,
            f"the server's storage is full ({os.strerror(os_error.errno or 0)}); "
            "nothing was written",
        )
    if os_error is not None and os_error.errno in _NO_DESCRIPTORS:
        log.error("%s: %s", path, os_error)
        return grpclib.exceptions.GRPCError(
            grpclib.const.Status.UNAVAILABLE, "the server is out of file descriptors; retry later"
        )
    log.exception("handler of %s failed", path, exc_info=exc)
    return grpclib.exceptions.GRPCError(
        grpclib.const.Status.INTERNAL, _short(f"{type(exc).__name__}: {exc}")
    )


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError `exc` is or was caused by, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        if isinstance(current, BaseExceptionGroup) and len(current.exceptions) == 1:
            current = current.exceptions[0]
            continue
        current = current.__cause__ or current.__context__
    return None


def _handler(method: Method, buffer: int) -> Callable[[Any], Awaitable[None]]:
    """Build the asyncio-side grpclib handler that calls `method.fn` on Trio."""
    fn = method.fn
    card = grpclib.const.Cardinality
    path = method.path
    bounds = limits.current()
    max_message = bounds.max_grpc_recv_size
    max_buffered = bounds.stream_buffer_bytes

    async def recv_one(stream: grpclib.server.Stream) -> Any:  # type: ignore[type-arg]
        received = await _read_message(stream, max_message, "request")
        if received is None:
            raise grpclib.exceptions.GRPCError(
                grpclib.const.Status.INVALID_ARGUMENT, "the call carried no request message"
            )
        return received[0]

    if method.cardinality is card.UNARY_UNARY:

        async def handle_unary(stream: grpclib.server.Stream) -> None:  # type: ignore[type-arg]
            request = await recv_one(stream)
            try:
                reply = await trio_asyncio.trio_as_aio(fn)(request)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                raise _grpc_error(exc, path) from None
            await stream.send_message(reply)

        return handle_unary

    async def serve_streams(
        stream: grpclib.server.Stream,  # type: ignore[type-arg]
        call_fn: Callable[[_Pipe[Any], _Pipe[Any]], Awaitable[Any]],
        streaming_requests: bool,
        streaming_replies: bool,
    ) -> None:
        requests: _Pipe[Any] = _Pipe(buffer, max_buffered)
        replies: _Pipe[Any] = _Pipe(buffer, max_buffered)
        outcome: list[Any] = []
        if not streaming_requests:
            # Received before the task group: an error raised in its body
            # would reach grpclib wrapped in an ExceptionGroup.
            requests.put_nowait(await recv_one(stream))
            requests.close()

        async def feed_requests() -> None:
            try:
                while True:
                    received = await _read_message(stream, max_message, "request")
                    if received is None:
                        requests.close()
                        return
                    # Weighed as received: a request of many small fields
                    # (an application's) pins its full size, not the
                    # fixed cost `_weight` gives a message without content.
                    await requests.aio_put(*received)
            except asyncio.CancelledError:
                requests.abort(CancelledError("request stream was cancelled"))
                raise
            except BaseException as exc:
                # The Trio handler sees a broken request stream as this error.
                requests.abort(_as_rpc_error(exc))

        async def run_fn() -> None:
            try:
                outcome.append(await call_fn(requests, replies))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                replies.abort(_grpc_error(exc, path))
            else:
                replies.close()

        failure: BaseException | None = None
        # Python 3.11's TaskGroup wraps an error raised in its body into an
        # ExceptionGroup, which grpclib would report as INTERNAL; so the body
        # only records the failure and raises it after the group.
        async with asyncio.TaskGroup() as group:
            feeder = None
            if streaming_requests:
                feeder = group.create_task(feed_requests())
            runner = group.create_task(run_fn())
            while True:
                try:
                    reply = await replies.aio_get()
                except _Closed:
                    break
                except BaseException as exc:
                    failure = exc
                    runner.cancel()
                    break
                await stream.send_message(reply)
            if feeder is not None and not feeder.done():
                # The handler finished without reading every request.
                feeder.cancel()
        if failure is not None:
            raise failure
        if not streaming_replies:
            await stream.send_message(outcome[0])

    if method.cardinality is card.UNARY_STREAM:

        async def call_server_stream(requests: _Pipe[Any], replies: _Pipe[Any]) -> None:
            async def trio_side() -> None:
                request = requests.get_nowait()
                await fn(request, replies.trio_put)

            await trio_asyncio.trio_as_aio(trio_side)()

        async def handle_server_stream(stream: grpclib.server.Stream) -> None:  # type: ignore[type-arg]
            await serve_streams(stream, call_server_stream, False, True)

        return handle_server_stream

    if method.cardinality is card.STREAM_UNARY:

        async def call_client_stream(requests: _Pipe[Any], replies: _Pipe[Any]) -> Any:
            async def trio_side() -> Any:
                return await fn(_PipeIterator(requests))

            return await trio_asyncio.trio_as_aio(trio_side)()

        async def handle_client_stream(stream: grpclib.server.Stream) -> None:  # type: ignore[type-arg]
            await serve_streams(stream, call_client_stream, True, False)

        return handle_client_stream

    async def call_bidi(requests: _Pipe[Any], replies: _Pipe[Any]) -> None:
        async def trio_side() -> None:
            await fn(_PipeIterator(requests), replies.trio_put)

        await trio_asyncio.trio_as_aio(trio_side)()

    async def handle_bidi(stream: grpclib.server.Stream) -> None:  # type: ignore[type-arg]
        await serve_streams(stream, call_bidi, True, True)

    return handle_bidi


class Service:
    """A set of `Method`s, registered with grpclib as one handler object."""

    def __init__(self, methods: Iterable[Method], *, buffer: int = 32) -> None:
        self.methods = list(methods)
        self._buffer = buffer

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return {
            m.path: grpclib.const.Handler(
                _with_incoming_call(_handler(m, self._buffer), m.path),
                m.cardinality,
                m.request_type,
                m.reply_type,
            )
            for m in self.methods
        }


class _Server(grpclib.server.Server):  # type: ignore[misc]
    """grpclib's server, which also closes its connections when asked, and
    holds its connections to the process's `limits`: at most
    `connection_cap()` at once (one past it is closed on accept),
    `max_concurrent_streams` calls each, and none idle for longer than
    `idle_timeout`."""

    def __init__(self, *args: Any, bounds: limits.Limits, **kwargs: Any) -> None:
        super().__init__(*args, config=_server_config(bounds), **kwargs)
        self._protocols: weakref.WeakSet[Any] = weakref.WeakSet()
        self._bounds = bounds
        self._cap = bounds.connection_cap()
        self._open = 0
        self._refused = 0
        self._refusal_warnings = _Every(10)
        self._collect_handle: asyncio.TimerHandle | None = None
        self._collected_at = 0.0

    def _protocol_factory(self) -> Any:
        if not self._admit():
            return _Refused()
        self.__gc_step__()
        handler = grpclib.server.Handler(
            self._mapping, self._codec, self._status_details_codec, self.__dispatch__
        )
        self._handlers.add(handler)
        protocol = _BoundedProtocol(self, handler, self._config, self._h2_config)
        self._protocols.add(protocol)
        return protocol

    def _admit(self) -> bool:
        if self._open >= self._cap:
            self._refused += 1
            if self._refusal_warnings.now():
                log.warning(
                    "gRPC connection refused: %d open, the limit (max_connections); "
                    "%d refused since the last warning",
                    self._open,
                    self._refused,
                )
                self._refused = 0
            return False
        self._open += 1
        return True

    def _release(self, handler: Any) -> None:
        self._open -= 1
        self._forget(handler)

    def _collect_soon(self) -> None:
        # What the calls held is garbage in reference cycles (exceptions,
        # their tracebacks, the frames that caught them); a quiet server
        # allocates too little for the collector to run by itself, and the
        # memory would stay taken. One collection after a burst of closed
        # connections, at most every `_COLLECT_EVERY` seconds.
        if self._collect_handle is not None:
            return
        delay = max(1.0, self._collected_at + _COLLECT_EVERY - time.monotonic())
        self._collect_handle = asyncio.get_running_loop().call_later(delay, self._collect)

    def _collect(self) -> None:
        self._collect_handle = None
        self._collected_at = time.monotonic()
        gc.collect()
        _trim_heap()

    def _forget(self, handler: Any) -> None:
        # grpclib keeps a closed connection's handler, and through its
        # cancelled tasks' tracebacks every buffer its calls held, until
        # ten more connections have come: let it go once its calls are done.
        if handler.check_closed():
            self._handlers.discard(handler)
            self._collect_soon()
        else:
            asyncio.get_running_loop().call_later(0.2, self._forget, handler)

    def close_connections(self) -> None:
        for protocol in list(self._protocols):
            processor = getattr(protocol, "processor", None)
            if processor is not None:
                processor.close("server stopped")


_COLLECT_EVERY = 5.0


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc only). Freed
    buffers of closed calls otherwise stay in the process's RSS for good."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class _BoundedProtocol(grpclib.protocol.H2Protocol):  # type: ignore[misc]
    """One server connection, counted against its server's cap, holding its
    client to the limits' HTTP/2 settings, and closed once it has carried no
    call for the idle timeout."""

    def __init__(self, server: _Server, *args: Any) -> None:
        super().__init__(*args)
        self._server = server
        self._admitted = True  # counted by `_Server._admit` when it made us
        self._idle_since: float | None = None
        self._idle_check: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # grpclib's own set-up, but with the limits in the connection's first
        # SETTINGS frame. Settings sent later are in force only once the
        # client acknowledges them, and a client that never does would keep
        # h2's defaults (100 streams) whatever the limits say. Settings sent
        # first are in force at once: a client cannot have used more than
        # HTTP/2's initial 65,535-byte window before reading them, and the
        # stream limit is one h2 applies from the start anyway.
        bounds = self._server._bounds
        sock = transport.get_extra_info("socket")
        if sock is not None:
            grpclib.protocol._set_nodelay(sock)
        h2_connection = h2.connection.H2Connection(config=self.h2_config)
        h2_connection.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: bounds.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.config.http2_stream_window_size,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: (
                    h2_connection.DEFAULT_MAX_HEADER_LIST_SIZE
                ),
            },
        )
        h2_connection.initiate_connection()
        # The connection's window is not a setting: it opens from 65,535
        # with a WINDOW_UPDATE.
        opened = self.config.http2_connection_window_size - limits.MIN_WINDOW
        if opened > 0:
            h2_connection.increment_flow_control_window(opened)
        self.connection = grpclib.protocol.Connection(
            h2_connection, cast(asyncio.Transport, transport), config=self.config
        )
        self.connection.flush()
        self.connection.initialize()
        self.processor = grpclib.protocol.EventsProcessor(self.handler, self.connection)
        if bounds.idle_timeout:
            self._idle_since = time.monotonic()
            self._schedule_idle_check(bounds.idle_timeout)

    def _schedule_idle_check(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._idle_check = loop.call_later(max(0.05, delay), self._check_idle)

    def _check_idle(self) -> None:
        self._idle_check = None
        timeout = self._server._bounds.idle_timeout
        if self.connection.is_closing():
            return
        now = time.monotonic()
        if self.processor.streams:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= timeout:
            log.debug("closing a gRPC connection idle for %.0f s", now - self._idle_since)
            # GOAWAY first, so a client knows to open a new connection for
            # its next call instead of failing it.
            with contextlib.suppress(Exception):
                self.connection._connection.close_connection()
                self.connection.flush()
            self.processor.close("idle timeout")
            return
        # Here the connection has been idle for less than `timeout`, if at all.
        waited = 0.0 if self._idle_since is None else now - self._idle_since
        self._schedule_idle_check(timeout - waited)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.connection.feed(data)
        except h2.exceptions.ProtocolError as exc:
            # A client past a window it was granted (FLOW_CONTROL_ERROR),
            # past the stream limit, or otherwise breaking HTTP/2: h2 has
            # queued the GOAWAY naming the error; grpclib would close the
            # socket without sending it.
            log.debug("closing a gRPC connection for a protocol error: %s", exc)
            with contextlib.suppress(Exception):
                self.connection.flush()
            self.processor.close(f"protocol error: {exc}")
            return
        self.connection.flush()
        for event in events:
            self.processor.process(event)
        self.connection.flush()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._idle_check is not None:
            self._idle_check.cancel()
            self._idle_check = None
        if self._admitted:
            self._admitted = False
            super().connection_lost(exc)
            self._server._release(self.handler)


class _Refused(asyncio.Protocol):
    """A connection past the cap: accepted only to be closed, so its client
    sees it end at once rather than wait in the listen backlog."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


async def serve(
    services: Iterable[Service],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    sock: socket.socket | None = None,
    tls: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `services` on host:port (or an already bound `sock`) until cancelled.

    `task_status.started` reports the bound port (useful with port 0). On
    cancellation the server stops accepting, lets in-flight calls see the
    shutdown, and closes. With `tls`, every connection is TLS (a plaintext
    client fails its handshake); the context must offer ALPN `h2`.
    """
    _require_island()
    # A serving process spends a descriptor per connection: take what the
    # operator's hard limit allows before the connection cap is derived.
    limits.raise_open_files_limit()
    server = _Server(list(services), codec=CODEC, bounds=limits.current())
    bound: list[int] = []
    started = trio.Event()

    async def run() -> None:
        if sock is not None:
            await server.start(sock=sock, ssl=tls)
        else:
            await server.start(host, port, reuse_address=True, ssl=tls)
        sockets = getattr(server._server, "sockets", None) or []
        bound.append(sockets[0].getsockname()[1] if sockets else port)
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            # Stop listening and cancel running handlers, give them a moment
            # to finish, then close every connection so clients see the stop.
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=5)
            server.close_connections()

    async with trio.open_nursery() as nursery:

        async def run_server() -> None:
            await trio_asyncio.aio_as_trio(run)()

        nursery.start_soon(run_server)
        await started.wait()
        task_status.started(bound[0])
