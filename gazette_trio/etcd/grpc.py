"""`GrpcEtcd`: the Etcd seam served by a real etcd over gRPC (grpclib).

Unary calls (KV, lease grant/revoke/TTL) go through `aio.unary`; a watch and
a lease keep-alive are each one `aio.bidi_stream`, owned by a task of the
`watch` block or of the caller's nursery (`aio`'s bridge rules: the
grpclib stream lives on the asyncio side, messages cross through a bounded
pipe). A watch whose stream breaks reconnects with backoff and resumes after
the last revision it delivered; if that revision was compacted meanwhile it
raises `Compacted` to its reader. A keep-alive whose stream breaks retries
until the lease's own deadline passes, then raises `LeaseLost`.

This module owns the translation between our `types` and etcd's protobuf
messages and between gRPC statuses and our errors. It needs the asyncio
island (`gazette_trio.aio.asyncio_island`) to be open.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpclib.const
import trio

from .. import aio
from .._scope import background_nursery
from ..protocol import etcdserverpb as rpc
from ..protocol import mvccpb
from .types import (
    Compacted,
    Compare,
    CompareTarget,
    Delete,
    DeleteResult,
    EtcdError,
    FutureRevision,
    Get,
    InvalidRequest,
    Key,
    KeyValue,
    Lease,
    LeaseExists,
    LeaseInfo,
    LeaseLost,
    LeaseNotFound,
    Op,
    OpResult,
    Put,
    PutResult,
    RangeResult,
    ResponseHeader,
    TxnResult,
    Unavailable,
    WatchBatch,
)
from .wire import RangeReply, WatchReply

log = logging.getLogger(__name__)

T = TypeVar("T")

_KV = "/etcdserverpb.KV/"
_LEASE = "/etcdserverpb.Lease/"
_WATCH = "/etcdserverpb.Watch/Watch"

_RESULT = {
    "=": rpc.CompareCompareResult.EQUAL,
    "!=": rpc.CompareCompareResult.NOT_EQUAL,
    "<": rpc.CompareCompareResult.LESS,
    ">": rpc.CompareCompareResult.GREATER,
}


# --------------------------------------------------------------------------
# Translation


def _kv(m: mvccpb.KeyValue | None) -> KeyValue | None:
    if m is None:
        return None
    return KeyValue(m.key, m.value, m.create_revision, m.mod_revision, m.version, m.lease)


def _kvs(ms: Sequence[mvccpb.KeyValue]) -> list[KeyValue]:
    return [
        KeyValue(m.key, m.value, m.create_revision, m.mod_revision, m.version, m.lease) for m in ms
    ]


def _range_request(get: Get) -> rpc.RangeRequest:
    return rpc.RangeRequest(
        key=get.key,
        range_end=get.range_end or b"",
        revision=get.revision,
        limit=get.limit,
        keys_only=get.keys_only,
    )


def _compare(c: Compare) -> rpc.Compare:
    m = rpc.Compare(
        result=_RESULT[c.op], target=rpc.CompareCompareTarget(c.target.value), key=c.key
    )
    if c.target is CompareTarget.VERSION:
        m.version = int(c.operand)  # type: ignore[arg-type]
    elif c.target is CompareTarget.CREATE:
        m.create_revision = int(c.operand)  # type: ignore[arg-type]
    elif c.target is CompareTarget.MOD:
        m.mod_revision = int(c.operand)  # type: ignore[arg-type]
    elif c.target is CompareTarget.VALUE:
        m.value = bytes(c.operand)  # type: ignore[arg-type]
    else:
        m.lease = int(c.operand)  # type: ignore[arg-type]
    return m


def _request_op(op: Op) -> rpc.RequestOp:
    if isinstance(op, Get):
        return rpc.RequestOp(request_range=_range_request(op))
    if isinstance(op, Put):
        return rpc.RequestOp(
            request_put=rpc.PutRequest(
                key=op.key,
                value=op.value,
                lease=op.lease,
                ignore_lease=op.ignore_lease,
                prev_kv=op.prev_kv,
            )
        )
    return rpc.RequestOp(
        request_delete_range=rpc.DeleteRangeRequest(
            key=op.key, range_end=op.range_end or b"", prev_kv=op.prev_kv
        )
    )


def _revision(header: rpc.ResponseHeader | None) -> int:
    return header.revision if header is not None else 0


def _header(header: rpc.ResponseHeader | None) -> ResponseHeader | None:
    if header is None:
        return None
    return ResponseHeader(header.cluster_id, header.member_id, header.revision, header.raft_term)


def _range_result(m: rpc.RangeResponse) -> RangeResult:
    return RangeResult(_revision(m.header), _kvs(m.kvs), m.more, m.count)


def _op_result(m: rpc.ResponseOp, revision: int) -> OpResult:
    if m.response_range is not None:
        r = _range_result(m.response_range)
        return RangeResult(revision, r.kvs, r.more, r.count)
    if m.response_put is not None:
        return PutResult(revision, _kv(m.response_put.prev_kv))
    d = m.response_delete_range
    if d is None:
        raise EtcdError("nested transactions are not supported")
    return DeleteResult(revision, d.deleted, _kvs(d.prev_kvs))


def _is_transport_error(exc: aio.RpcError) -> bool:
    return exc.status in (grpclib.const.Status.UNAVAILABLE, grpclib.const.Status.DEADLINE_EXCEEDED)


def _etcd_error(exc: aio.RpcError, lease_id: int = 0) -> EtcdError:
    """Map a gRPC status from etcd onto our error classes."""
    msg = exc.message
    if _is_transport_error(exc):
        return Unavailable(str(exc))
    if "compacted" in msg:
        return Compacted(0, msg)
    if "future revision" in msg:
        return FutureRevision(msg)
    if "lease not found" in msg:
        return LeaseNotFound(lease_id)
    if "lease already exists" in msg:
        return LeaseExists(msg)
    if exc.status == grpclib.const.Status.INVALID_ARGUMENT:
        return InvalidRequest(msg)
    return EtcdError(str(exc))


# --------------------------------------------------------------------------
# Watch


class _GrpcWatch:
    """The reader's side of a watch: batches sent by the pump task."""

    def __init__(self, receive: trio.MemoryReceiveChannel[WatchBatch | BaseException]) -> None:
        self._receive = receive

    def _unwrap(self, item: WatchBatch | BaseException) -> WatchBatch:
        if isinstance(item, BaseException):
            raise item
        return item

    async def receive(self) -> WatchBatch:
        return self._unwrap(await self._receive.receive())

    def receive_nowait(self) -> WatchBatch:
        return self._unwrap(self._receive.receive_nowait())

    def __aiter__(self) -> AsyncIterator[WatchBatch]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WatchBatch]:
        while True:
            yield await self.receive()


def _backoff(attempt: int) -> float:
    return float(min(0.05 * (2**attempt), 2.0))


class GrpcEtcd:
    """A client of a real etcd. Open it with `async with GrpcEtcd.open(endpoint)`
    (inside the asyncio island).

    An `https://` endpoint is dialed with TLS: `tls` is etcd's own (its CA,
    and a client certificate if etcd requires one), apart from the Gazette
    services' settings; etcd calls never carry Gazette tokens."""

    def __init__(
        self, endpoint: str, *, timeout: float | None = 30.0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._channel = aio.Channel(endpoint, credentials=aio.DialCredentials(ssl=tls))

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, endpoint: str, *, timeout: float | None = 30.0, tls: ssl.SSLContext | None = None
    ) -> AsyncIterator[GrpcEtcd]:
        etcd = cls(endpoint, timeout=timeout, tls=tls)
        try:
            yield etcd
        finally:
            await etcd.aclose()

    async def aclose(self) -> None:
        await self._channel.aclose()

    async def _unary(self, method: str, request: Any, reply_type: type[T], lease_id: int = 0) -> T:
        try:
            return await aio.unary(self._channel, method, request, reply_type, timeout=self.timeout)
        except aio.RpcError as exc:
            raise _etcd_error(exc, lease_id) from exc

    # ------------------------------------------------------------------
    # KV

    async def range(
        self,
        key: Key,
        *,
        range_end: Key | None = None,
        prefix: bool = False,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
    ) -> RangeResult:
        get = Get(
            key,
            range_end=range_end,
            prefix=prefix,
            revision=revision,
            limit=limit,
            keys_only=keys_only,
        )
        reply = await self._unary(_KV + "Range", _range_request(get), RangeReply)
        return RangeResult(reply.revision, reply.kvs, reply.more, reply.count, reply.header)

    async def get(self, key: Key, *, revision: int = 0) -> KeyValue | None:
        result = await self.range(key, revision=revision)
        return result.kvs[0] if result.kvs else None

    async def put(
        self,
        key: Key,
        value: Key,
        *,
        lease: int = 0,
        ignore_lease: bool = False,
        prev_kv: bool = False,
    ) -> PutResult:
        op = Put(key, value, lease=lease, ignore_lease=ignore_lease, prev_kv=prev_kv)
        request = _request_op(op).request_put
        reply = await self._unary(_KV + "Put", request, rpc.PutResponse, lease)
        return PutResult(_revision(reply.header), _kv(reply.prev_kv))

    async def delete(
        self,
        key: Key,
        *,
        range_end: Key | None = None,
        prefix: bool = False,
        prev_kv: bool = False,
    ) -> DeleteResult:
        op = Delete(key, range_end=range_end, prefix=prefix, prev_kv=prev_kv)
        request = _request_op(op).request_delete_range
        reply = await self._unary(_KV + "DeleteRange", request, rpc.DeleteRangeResponse)
        return DeleteResult(_revision(reply.header), reply.deleted, _kvs(reply.prev_kvs))

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        request = rpc.TxnRequest(
            compare=[_compare(c) for c in compare],
            success=[_request_op(o) for o in success],
            failure=[_request_op(o) for o in failure],
        )
        leases = [o.lease for o in (*success, *failure) if isinstance(o, Put) and o.lease]
        reply = await self._unary(_KV + "Txn", request, rpc.TxnResponse, leases[0] if leases else 0)
        revision = _revision(reply.header)
        return TxnResult(
            reply.succeeded,
            revision,
            [_op_result(r, revision) for r in reply.responses],
            _header(reply.header),
        )

    async def compact(self, revision: int) -> None:
        await self._unary(
            _KV + "Compact", rpc.CompactionRequest(revision=revision), rpc.CompactionResponse
        )

    # ------------------------------------------------------------------
    # Watch

    @contextlib.asynccontextmanager
    async def watch(
        self,
        key: Key,
        *,
        range_end: Key | None = None,
        prefix: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
    ) -> AsyncIterator[_GrpcWatch]:
        get = Get(key, range_end=range_end, prefix=prefix)
        if start_revision <= 0:
            # "From now" must mean from this call, not from whenever the
            # server gets to creating the watch: pin the current revision.
            start_revision = (await self.range(get.key, limit=1, keys_only=True)).revision + 1
        send, receive = trio.open_memory_channel[WatchBatch | BaseException](16)
        # The pump never raises: what leaves is the block's own error.
        async with background_nursery() as nursery:
            nursery.start_soon(
                self._pump_watch, send, get, start_revision, prev_kv, progress_notify
            )
            yield _GrpcWatch(receive)

    async def _pump_watch(
        self,
        send: trio.MemorySendChannel[WatchBatch | BaseException],
        get: Get,
        start_revision: int,
        prev_kv: bool,
        progress_notify: bool,
    ) -> None:
        """Own the watch's stream: (re)open it, forward batches, report the end.

        Never raises: its outcome reaches the reader through the channel, so
        the `watch` block sees the error it expects rather than a group.
        """
        next_revision = start_revision
        attempt = 0
        async with send:
            while True:
                try:
                    async with aio.bidi_stream(
                        self._channel, _WATCH, rpc.WatchRequest, WatchReply
                    ) as call:
                        await call.send(
                            rpc.WatchRequest(
                                create_request=rpc.WatchCreateRequest(
                                    key=get.key,
                                    range_end=get.range_end or b"",
                                    start_revision=next_revision,
                                    progress_notify=progress_notify,
                                    prev_kv=prev_kv,
                                )
                            )
                        )
                        async for resp in call:
                            if resp.compact_revision:
                                await send.send(Compacted(resp.compact_revision))
                                return
                            if resp.canceled:
                                await send.send(EtcdError(f"watch cancelled: {resp.cancel_reason}"))
                                return
                            if resp.created:
                                if next_revision == 0:
                                    next_revision = resp.revision + 1
                                attempt = 0
                                continue
                            events = tuple(resp.events)
                            revision = events[-1].kv.mod_revision if events else resp.revision
                            await send.send(WatchBatch(revision, events, resp.header))
                            next_revision = revision + 1
                            attempt = 0
                    raise aio.Unavailable("watch stream ended")
                except aio.RpcError as exc:
                    error = _etcd_error(exc)
                    if not isinstance(error, Unavailable):
                        await send.send(error)
                        return
                    log.warning(
                        "etcd watch broke (%s); resuming at revision %d", exc, next_revision
                    )
                    await trio.sleep(_backoff(attempt))
                    attempt += 1
                except trio.Cancelled:
                    raise
                except Exception as exc:  # a bug: deliver it rather than lose it
                    await send.send(exc)
                    return

    # ------------------------------------------------------------------
    # Leases

    async def grant(self, ttl: int, *, lease_id: int = 0) -> Lease:
        reply = await self._unary(
            _LEASE + "LeaseGrant",
            rpc.LeaseGrantRequest(ttl=ttl, id=lease_id),
            rpc.LeaseGrantResponse,
        )
        if reply.error:
            raise EtcdError(reply.error)
        return Lease(reply.id, reply.ttl)

    async def revoke(self, lease_id: int) -> None:
        await self._unary(
            _LEASE + "LeaseRevoke",
            rpc.LeaseRevokeRequest(id=lease_id),
            rpc.LeaseRevokeResponse,
            lease_id,
        )

    async def time_to_live(self, lease_id: int, *, keys: bool = False) -> LeaseInfo:
        reply = await self._unary(
            _LEASE + "LeaseTimeToLive",
            rpc.LeaseTimeToLiveRequest(id=lease_id, keys=keys),
            rpc.LeaseTimeToLiveResponse,
            lease_id,
        )
        return LeaseInfo(reply.id, reply.ttl, reply.granted_ttl, tuple(reply.keys))

    async def _keep_alive_call(
        self, lease_id: int, body: Callable[[aio.BidiStreamCall[Any, Any]], Awaitable[T]]
    ) -> T:
        async with aio.bidi_stream(
            self._channel,
            _LEASE + "LeaseKeepAlive",
            rpc.LeaseKeepAliveRequest,
            rpc.LeaseKeepAliveResponse,
        ) as call:
            return await body(call)

    async def keep_alive_once(self, lease_id: int) -> int:
        async def once(call: aio.BidiStreamCall[Any, Any]) -> int:
            await call.send(rpc.LeaseKeepAliveRequest(id=lease_id))
            reply = await call.receive()
            return int(reply.ttl)

        try:
            with trio.fail_after(self.timeout or 30.0):
                ttl = await self._keep_alive_call(lease_id, once)
        except trio.TooSlowError:
            raise Unavailable("lease keep-alive timed out") from None
        except trio.EndOfChannel:
            raise Unavailable("lease keep-alive stream ended") from None
        except aio.RpcError as exc:
            raise _etcd_error(exc, lease_id) from exc
        if ttl <= 0:
            raise LeaseNotFound(lease_id)
        return ttl

    async def keep_alive(
        self,
        lease_id: int,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            ttl = await self.keep_alive_once(lease_id)
        except LeaseNotFound:
            raise LeaseLost(lease_id, "not found") from None
        deadline = trio.current_time() + ttl
        task_status.started()
        attempt = 0
        while True:
            try:

                async def renew(call: aio.BidiStreamCall[Any, Any]) -> None:
                    nonlocal deadline, attempt, ttl
                    # A fresh stream renews at once: the last renewal may be
                    # most of a TTL old after a reconnect.
                    first = attempt > 0
                    while True:
                        if not first:
                            await trio.sleep(max(ttl / 3, 0.2))
                        first = False
                        await call.send(rpc.LeaseKeepAliveRequest(id=lease_id))
                        with trio.move_on_at(deadline) as scope:
                            reply = await call.receive()
                        if scope.cancelled_caught:
                            raise aio.Unavailable("no keep-alive reply before the lease deadline")
                        if reply.ttl <= 0:
                            raise LeaseLost(lease_id, "expired")
                        ttl = int(reply.ttl)
                        deadline = trio.current_time() + ttl
                        attempt = 0

                await self._keep_alive_call(lease_id, renew)
            except (aio.RpcError, trio.EndOfChannel) as exc:
                if isinstance(exc, aio.RpcError) and not _is_transport_error(exc):
                    raise LeaseLost(lease_id, str(exc)) from exc
                if trio.current_time() >= deadline:
                    raise LeaseLost(
                        lease_id, f"could not renew before its deadline ({exc})"
                    ) from exc
                log.warning("etcd keep-alive of lease %#x broke (%s); retrying", lease_id, exc)
                await trio.sleep(min(_backoff(attempt), max(0.0, deadline - trio.current_time())))
                attempt += 1
