"""The Shard gRPC service (`consumer.Shard`): Stat, List, Apply, GetHints, Unassign.

Each RPC behaves as Gazette's default implementation (`shard_api.go`), so
`gazctl shards ...` and Gazette's clients can talk to a gazette-trio member:

- `Stat` resolves the shard; if another member is its primary, the request
  is proxied there (once: a proxied request carries the header of the
  resolution, and is not proxied again). At the primary it waits until a
  completed transaction read through the requested offsets, then answers
  with read-through and publish-at offsets. A primary that stops or fails
  meanwhile answers SHARD_STOPPED.
- `List` returns specs matching a label selector (with the meta-label `id`),
  their mod revisions, routes and replica statuses.
- `Apply` validates every change (INVALID_ARGUMENT naming the field),
  checks that source journals exist with a message framing and recovery
  logs with the recovery-log content type, then commits all changes, and
  the primary hints an upsert carries, in one etcd transaction guarded by
  each expected mod revision (ETCD_TRANSACTION_FAILED on a mismatch), and
  answers once this member's view includes the write. A request larger than
  an etcd transaction allows fails with etcd's own error, as Gazette's does
  (clients split it: `ApplyShardsInBatches`, `shards apply --max-txn-size`).
- `GetHints` reads the primary and backup FSMHints from etcd.
- `Unassign` removes FAILED assignments, and primaries unless `only_failed`,
  in one guarded transaction; `dry_run` only reports which shards would move.

Every header names this member (its process id), an unrouted route
(primary -1) unless a shard was resolved, and etcd's own response header:
cluster, member, raft term and the revision the answer reflects.

Every call is verified first, as Gazette's `VerifiedShardServer`: READ for
Stat and GetHints, LIST for List, APPLY for Apply and Unassign. The token's
selector scopes it (with the meta-label `id`): a shard it does not reach is
SHARD_NOT_FOUND to Stat and GetHints and absent from List; an Apply upsert
or deletion, or an Unassign, of one is UNAUTHENTICATED. A Stat proxied to
the primary carries a token this member signs for that shard.

This module owns the RPC semantics; resolution is the `Resolver`'s, writes
to etcd are the allocator's and the hint store's.
"""

from __future__ import annotations

import logging
from typing import Any

from grpclib.const import Cardinality

from .. import aio
from ..allocator import ApplyConflict, apply_shard_specs
from ..allocator.specs import validate_shard_id
from ..auth import capabilities as caps
from ..auth.claims import Claims
from ..auth.verifier import OPEN, Verifier
from ..broker.client import JournalClient
from ..broker.list_apply import get_journal
from ..etcd import Compare, Delete, Etcd, InvalidRequest
from ..message import framing_by_content_type
from ..message.framing import FramingError, content_type_of
from ..protocol import consumer as pc
from ..protocol import labels as lbl
from ..protocol import protocol as pb
from ..protocol.validation import ValidationError
from ..recoverylog import fetch_hints
from . import shard_spec
from .service import ResolveError, ShardService
from .shard import ShardStopped

log = logging.getLogger(__name__)

RECOVERY_LOG_CONTENT_TYPE = shard_spec.CONTENT_TYPE_RECOVERY_LOG


class ShardAPI:
    """Trio implementations of the Shard service for one member."""

    def __init__(
        self, service: ShardService, etcd: Etcd, journals: JournalClient, verifier: Verifier = OPEN
    ) -> None:
        self.service = service
        self.etcd = etcd
        self.journals = journals
        self.verifier = verifier
        self._channels: dict[str, aio.Channel] = {}

    def grpc_service(self) -> aio.Service:
        unary = Cardinality.UNARY_UNARY
        return aio.Service(
            [
                aio.Method(
                    "/consumer.Shard/Stat", unary, pc.StatRequest, pc.StatResponse, self.stat
                ),
                aio.Method(
                    "/consumer.Shard/List", unary, pc.ListRequest, pc.ListResponse, self.list
                ),
                aio.Method(
                    "/consumer.Shard/Apply", unary, pc.ApplyRequest, pc.ApplyResponse, self.apply
                ),
                aio.Method(
                    "/consumer.Shard/GetHints",
                    unary,
                    pc.GetHintsRequest,
                    pc.GetHintsResponse,
                    self.get_hints,
                ),
                aio.Method(
                    "/consumer.Shard/Unassign",
                    unary,
                    pc.UnassignRequest,
                    pc.UnassignResponse,
                    self.unassign,
                ),
            ]
        )

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.aclose()
        self._channels.clear()

    def channel(self, endpoint: str) -> aio.Channel:
        """A channel to a peer member's gRPC `endpoint`, kept until `aclose`:
        `Stat`'s proxy and forwarded queries (`queries`) share them."""
        channel = self._channels.get(endpoint)
        if channel is None:
            channel = self._channels[endpoint] = aio.Channel(endpoint)
        return channel

    # ------------------------------------------------------------------

    def _hidden(self, shard_id: str, claims: Claims) -> bool:
        if not self.verifier.enabled:
            return False
        item = self.service.state.item_by_id.get(shard_id)
        return item is not None and not claims.matches_shard(item.id, item.spec.labels)

    async def stat(self, request: pc.StatRequest) -> pc.StatResponse:
        claims = self.verifier.verify(caps.READ)
        if self._hidden(request.shard, claims):
            state = self.service.state
            return pc.StatResponse(
                status=pc.Status.SHARD_NOT_FOUND, header=self.service.resolver.header(state)
            )
        if not request.shard:
            raise aio.InvalidArgument("Shard: expected a shard id")
        for journal, offset in request.read_through.items():
            if offset < 0:
                raise aio.InvalidArgument(
                    f"ReadThrough[{journal}]: invalid offset ({offset}; expected >= 0)"
                )
        try:
            res = await self.service.resolver.resolve(
                request.shard,
                may_proxy=request.header is None,
                proxy_header=request.header,
                read_through=dict(request.read_through),
            )
        except ShardStopped as exc:
            log.info("stat of %s: %s", request.shard, exc)
            state = self.service.state
            return pc.StatResponse(
                status=pc.Status.SHARD_STOPPED, header=self.service.resolver.header(state)
            )
        except ResolveError as exc:
            raise aio.FailedPrecondition(str(exc)) from None
        if res.status != pc.Status.OK:
            return pc.StatResponse(status=res.status, header=res.header)
        if res.shard is None:
            # Another member is primary: proxy, carrying our resolution.
            route = res.header.route
            assert route is not None and res.header.process_id is not None
            endpoint = route.endpoints[route.primary] if route.endpoints else ""
            if not endpoint:
                return pc.StatResponse(status=pc.Status.NO_SHARD_PRIMARY, header=res.header)
            proxied = pc.StatRequest(
                header=res.header, shard=request.shard, read_through=dict(request.read_through)
            )
            return await aio.unary(
                self.channel(endpoint), "/consumer.Shard/Stat", proxied, pc.StatResponse
            )
        read_through, publish_at = res.shard.progress()
        return pc.StatResponse(
            status=pc.Status.OK, header=res.header, read_through=read_through, publish_at=publish_at
        )

    async def list(self, request: pc.ListRequest) -> pc.ListResponse:
        claims = self.verifier.verify(caps.LIST)
        selector = request.selector
        try:
            lbl.validate_selector(selector)
        except ValidationError as exc:
            raise aio.InvalidArgument(f"Selector.{exc}") from None
        state = self.service.state
        resolver = self.service.resolver
        response = pc.ListResponse(status=pc.Status.OK, header=resolver.header(state), shards=[])
        for item in state.items:
            if selector is not None and not lbl.matches(
                selector, item.spec.labels, shard_spec.meta_labels(item.spec)
            ):
                continue
            if self.verifier.enabled and not claims.matches_shard(item.id, item.spec.labels):
                continue
            route = resolver.route(state, item.id)
            assignments = sorted(state.assignments_by_item.get(item.id, ()), key=lambda a: a.member)
            response.shards.append(
                pc.ListResponseShard(
                    spec=item.spec,
                    mod_revision=item.kv.mod_revision,
                    create_revision=item.kv.create_revision,
                    route=route,
                    status=[a.status for a in assignments],
                )
            )
        return response

    async def apply(self, request: pc.ApplyRequest) -> pc.ApplyResponse:
        claims = self.verifier.verify(caps.APPLY)
        for change in request.changes:
            if change.upsert is not None:
                if not claims.matches_shard(change.upsert.id, change.upsert.labels):
                    raise aio.Unauthenticated(f"not authorized to {change.upsert.id}")
            elif not claims.matches_id(change.delete):
                raise aio.Unauthenticated(f"not authorized to {change.delete}")
        for i, change in enumerate(request.changes):
            if change.upsert is not None:
                try:
                    shard_spec.validate(change.upsert)
                except ValidationError as exc:
                    raise aio.InvalidArgument(f"Changes[{i}].Upsert.{exc}") from None
        await self._verify_referenced_journals(request)
        state = self.service.state
        resolver = self.service.resolver
        header = resolver.header(state)
        try:
            revision = await apply_shard_specs(self.etcd, state.root, request.changes)
        except ValidationError as exc:
            raise aio.InvalidArgument(str(exc)) from None
        except InvalidRequest as exc:
            # Too many operations for one transaction, as etcd words it.
            message = str(exc)
            if not message.startswith("etcdserver: "):
                message = "etcdserver: " + message
            raise aio.UnknownError(message) from None
        except ApplyConflict as exc:
            assert header.etcd is not None
            header.etcd.revision = exc.revision
            return pc.ApplyResponse(status=pc.Status.ETCD_TRANSACTION_FAILED, header=header)
        await self.service.ctx.session.wait_for_revision(revision)
        assert header.etcd is not None
        header.etcd.revision = revision
        return pc.ApplyResponse(status=pc.Status.OK, header=header)

    async def _verify_referenced_journals(self, request: pc.ApplyRequest) -> None:
        cache: dict[str, pb.JournalSpec | None] = {}

        async def lookup(name: str) -> pb.JournalSpec | None:
            if name not in cache:
                found = await get_journal(self.journals, name)
                cache[name] = found.spec if found is not None else None
            return cache[name]

        for change in request.changes:
            spec = change.upsert
            if spec is None:
                continue
            for source in spec.sources:
                journal = await lookup(source.journal)
                if journal is None:
                    raise aio.FailedPrecondition(
                        f"Shard[{spec.id}]: source journal {source.journal} does not exist"
                    )
                try:
                    framing_by_content_type(content_type_of(journal))
                except (FramingError, KeyError, ValueError) as exc:
                    raise aio.FailedPrecondition(
                        f"Shard[{spec.id}].Sources[{source.journal}] message framing: {exc}"
                    ) from None
            name = shard_spec.recovery_log(spec)
            if name:
                log_spec = await lookup(name)
                if log_spec is None:
                    raise aio.FailedPrecondition(
                        f"Shard[{spec.id}]: recovery log {name} does not exist"
                    )
                content_type = lbl.value_of(log_spec.labels, "content-type")
                if content_type != RECOVERY_LOG_CONTENT_TYPE:
                    raise aio.FailedPrecondition(
                        f"Shard[{spec.id}]: expected {name} to have content-type "
                        f"{RECOVERY_LOG_CONTENT_TYPE} but was '{content_type}'"
                    )

    async def get_hints(self, request: pc.GetHintsRequest) -> pc.GetHintsResponse:
        claims = self.verifier.verify(caps.READ)
        state = self.service.state
        header = self.service.resolver.header(state)
        item = state.item_by_id.get(request.shard)
        if item is None or self._hidden(request.shard, claims):
            return pc.GetHintsResponse(status=pc.Status.SHARD_NOT_FOUND, header=header)
        response = pc.GetHintsResponse(
            status=pc.Status.OK,
            header=header,
            primary_hints=pc.GetHintsResponseResponseHints(),
            backup_hints=[],
        )
        if not item.spec.recovery_log_prefix:
            return response
        fetched = await fetch_hints(self.etcd, item.spec)
        hints = fetched.hints
        response.primary_hints = pc.GetHintsResponseResponseHints(hints=hints[0])
        response.backup_hints = [pc.GetHintsResponseResponseHints(hints=h) for h in hints[1:]]
        return response

    async def unassign(self, request: pc.UnassignRequest) -> pc.UnassignResponse:
        claims = self.verifier.verify(caps.APPLY)
        for i, shard_id in enumerate(request.shards):
            try:
                validate_shard_id(shard_id)
            except ValidationError as exc:
                raise aio.InvalidArgument(f"Shards[{i}].{exc}") from None
            # As Gazette's, Unassign is authorized by the `id` label alone.
            if not claims.matches_id(shard_id):
                raise aio.Unauthenticated(f"not authorized to {shard_id}")
        state = self.service.state
        compares: list[Compare] = []
        ops: list[Any] = []
        moved: list[str] = []
        for shard_id in request.shards:
            for a in state.assignments_by_item.get(shard_id, ()):
                failed = a.status.code == pc.ReplicaStatusCode.FAILED
                if not failed and (request.only_failed or a.slot != 0):
                    continue
                compares.append(Compare.mod_revision(a.key, "=", a.kv.mod_revision))
                ops.append(Delete(a.key))
                if not moved or moved[-1] != shard_id:
                    moved.append(shard_id)
        response = pc.UnassignResponse(status=pc.Status.OK, shards=moved)
        if request.dry_run or not ops:
            return response
        result = await self.etcd.txn(compares, ops)
        if not result.succeeded:
            response.status = pc.Status.ETCD_TRANSACTION_FAILED
            return response
        await self.service.ctx.session.wait_for_revision(result.revision)
        return response
