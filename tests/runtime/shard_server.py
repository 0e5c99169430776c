"""A small Shard API for the CLI tests, served over real gRPC on loopback.

The real Shard API belongs to the consumer runtime. The CLI's tests need a
server that behaves like it where the CLI can tell (selectors with the `id`
meta-label, Apply's all-or-nothing revision checks, Unassign's filters, the
status codes), so this module implements those RPCs in Trio over an
in-memory table of specs, revisions, routes and replica statuses, and serves
them with `gazette_trio.aio.serve` like any gRPC service.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from grpclib.const import Cardinality

from gazette_trio import aio
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import labels as lbl
from gazette_trio.protocol import protocol as pb


@dataclass
class ShardRecord:
    spec: pc.ShardSpec
    revision: int
    members: list[tuple[str, str]] = field(default_factory=list)  # (zone, suffix), primary first
    codes: list[pc.ReplicaStatusCode] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class ShardTable:
    """The in-memory state behind the test Shard API."""

    def __init__(self) -> None:
        self.revision = 100
        self.shards: dict[str, ShardRecord] = {}
        self.hints: dict[str, pc.GetHintsResponse] = {}
        self.fragments: dict[str, list[pb.Fragment]] = {}
        """Fragments of journals, for ListFragments (an embedded member serves both APIs)."""
        self.apply_requests: list[pc.ApplyRequest] = []
        self.unassign_requests: list[pc.UnassignRequest] = []

    def put(
        self,
        spec: pc.ShardSpec,
        members: list[tuple[str, str]] | None = None,
        codes: list[pc.ReplicaStatusCode] | None = None,
        errors: list[str] | None = None,
    ) -> ShardRecord:
        self.revision += 1
        record = ShardRecord(spec, self.revision, members or [], codes or [], errors or [])
        self.shards[spec.id] = record
        return record

    def _header(self) -> pb.Header:
        return pb.Header(
            etcd=pb.HeaderEtcd(cluster_id=1, member_id=1, revision=self.revision, raft_term=1)
        )

    async def list(self, request: pc.ListRequest) -> pc.ListResponse:
        out = []
        for shard_id in sorted(self.shards):
            record = self.shards[shard_id]
            if not lbl.matches(
                request.selector, record.spec.labels, lbl.label_set({"id": shard_id})
            ):
                continue
            route = pb.Route(
                members=[pb.ProcessSpecId(zone=z, suffix=s) for z, s in record.members],
                primary=0 if record.members else -1,
                endpoints=[f"http://{s}:8080" for _, s in record.members],
            )
            statuses = [
                pc.ReplicaStatus(
                    code=code, errors=record.errors if code == pc.ReplicaStatusCode.FAILED else []
                )
                for code in record.codes
            ]
            out.append(
                pc.ListResponseShard(
                    spec=record.spec, mod_revision=record.revision, route=route, status=statuses
                )
            )
        return pc.ListResponse(status=pc.Status.OK, header=self._header(), shards=out)

    async def apply(self, request: pc.ApplyRequest) -> pc.ApplyResponse:
        self.apply_requests.append(request)
        for change in request.changes:
            shard_id = change.delete or (change.upsert.id if change.upsert else "")
            if not shard_id:
                raise aio.InvalidArgument("a change must upsert or delete")
            current = self.shards.get(shard_id)
            expect = change.expect_mod_revision
            if expect == -1:
                continue
            if (current.revision if current else 0) != expect:
                return pc.ApplyResponse(
                    status=pc.Status.ETCD_TRANSACTION_FAILED, header=self._header()
                )
        self.revision += 1
        for change in request.changes:
            if change.delete:
                self.shards.pop(change.delete, None)
            elif change.upsert is not None:
                old = self.shards.get(change.upsert.id)
                self.shards[change.upsert.id] = ShardRecord(
                    change.upsert,
                    self.revision,
                    old.members if old else [],
                    old.codes if old else [],
                )
        return pc.ApplyResponse(status=pc.Status.OK, header=self._header())

    async def unassign(self, request: pc.UnassignRequest) -> pc.UnassignResponse:
        self.unassign_requests.append(request)
        done = []
        for shard_id in request.shards:
            record = self.shards.get(shard_id)
            if record is None or not record.members:
                continue
            if request.only_failed and pc.ReplicaStatusCode.FAILED not in record.codes:
                continue
            done.append(shard_id)
            if not request.dry_run:
                record.members, record.codes, record.errors = [], [], []
        return pc.UnassignResponse(status=pc.Status.OK, shards=done)

    async def get_hints(self, request: pc.GetHintsRequest) -> pc.GetHintsResponse:
        if request.shard not in self.shards:
            return pc.GetHintsResponse(status=pc.Status.SHARD_NOT_FOUND)
        return self.hints.get(request.shard, pc.GetHintsResponse(status=pc.Status.OK))

    async def list_fragments(self, request: pb.FragmentsRequest) -> pb.FragmentsResponse:
        if request.journal not in self.fragments:
            return pb.FragmentsResponse(status=pb.Status.JOURNAL_NOT_FOUND)
        # Pages of two, to exercise the client's paging.
        found = [f for f in self.fragments[request.journal] if f.begin >= request.next_page_token]
        page, rest = found[:2], found[2:]
        return pb.FragmentsResponse(
            status=pb.Status.OK,
            fragments=[pb.FragmentsResponseFragment(spec=f) for f in page],
            next_page_token=rest[0].begin if rest else 0,
        )

    def service(self) -> aio.Service:
        unary = Cardinality.UNARY_UNARY
        return aio.Service(
            [
                aio.Method(
                    "/consumer.Shard/List", unary, pc.ListRequest, pc.ListResponse, self.list
                ),
                aio.Method(
                    "/consumer.Shard/Apply", unary, pc.ApplyRequest, pc.ApplyResponse, self.apply
                ),
                aio.Method(
                    "/consumer.Shard/Unassign",
                    unary,
                    pc.UnassignRequest,
                    pc.UnassignResponse,
                    self.unassign,
                ),
                aio.Method(
                    "/protocol.Journal/ListFragments",
                    unary,
                    pb.FragmentsRequest,
                    pb.FragmentsResponse,
                    self.list_fragments,
                ),
                aio.Method(
                    "/consumer.Shard/GetHints",
                    unary,
                    pc.GetHintsRequest,
                    pc.GetHintsResponse,
                    self.get_hints,
                ),
            ]
        )


__all__ = ["ShardRecord", "ShardTable"]
