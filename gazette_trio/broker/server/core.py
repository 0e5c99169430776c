"""The journal server core: Gazette's Journal API semantics for one node.

`JournalServerCore` implements List, Apply, Read, Append and ListFragments
as plain Trio methods over a `Storage`. The gRPC service (`service.py`) and
the in-process client (`gazette_trio.broker.local`) are thin adapters over
it, so both transports behave identically.

What it promises, as Gazette's brokers do:

- Specs are created, updated and deleted by Apply, all changes of a request
  or none, guarded by `expect_mod_revision` (0: must not exist; -1: any).
  Each successful Apply takes the next revision of a counter kept in storage.
- An Append lands atomically and contiguously at the write head, or not at
  all. Register checks and updates are applied with it, atomically. A large
  append is streamed: what arrives past the first piece is written to
  storage as it comes, with the journal's lock held, and becomes durable
  and visible only when the stream commits. The
  response carries the commit fragment (begin, end and SHA-1 of exactly the
  appended bytes) and the registers after the append.
- A Read streams, for each fragment it touches, a metadata response (status,
  offset, write head, fragment) followed by content chunks. At the write head
  it blocks (woken by the next append) or answers OFFSET_NOT_YET_AVAILABLE.
  Where content was removed it jumps to the next available offset.
- Fragments roll when the spool reaches the spec's fragment length.
- List sends a snapshot in responses of at most 1,000 journals; a watched
  List sends a new snapshot (ended by an empty response) on every change.
  Reads and appends naming a `min_etcd_revision` wait until specs reach it.
- Suspension follows Gazette's append FSM: an append with SUSPEND_IF_FLUSHED
  or SUSPEND_NOW suspends an empty journal FULLy (reads and appends then
  answer SUSPENDED), SUSPEND_NOW suspends one with content PARTIALly, an
  ordinary append resumes it, SUSPEND_NO_RESUME refuses to, SUSPEND_KEEP
  leaves it be; a resume offset ahead of the write head moves the head there.

Deviations, because there is exactly one node and no fragment stores: routes
always name this server; content is stored uncompressed whatever the spec's
codec; `flush_interval`, `retention`, `stores` and `max_append_rate` are
stored but not acted on; an offset jump never waits for a store to catch up.
Fragments never reach a store, so SUSPEND_IF_FLUSHED (which waits for them
to) never suspends a journal with content, and FragmentStoreHealth probes
only `file://` stores under `file_root`.
Deleting a journal's spec keeps its fragments: re-creating it resumes at its
old write head, as with Gazette's fragment stores.

Determinism: the core reads no clock, iterates only ordered collections, and
calls the `Faults` hooks at fixed points, so a simulation on a mock clock
replays exactly.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import logging
import os
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import trio

from ... import aio
from ...etcd import MEMORY_CLUSTER_ID
from ...protocol import labels as L
from ...protocol import protocol as pb
from ...protocol.validation import ValidationError, split_meta
from ..fragments import sha1_sum
from ..journal_spec import may_read, may_write
from . import requests as R
from .faults import Faults
from .storage import (
    FragmentFile,
    JournalDamage,
    MemoryStorage,
    RecoveredJournal,
    SpecRecord,
    Storage,
)

log = logging.getLogger(__name__)

READ_CHUNK_SIZE = 1 << 17
"""Content responses carry at most 128 KiB, as Gazette's brokers send."""

DEFAULT_PAGE_LIMIT = 1000
"""Fragments per ListFragments page when the request names no limit."""

LIST_PAGE = 1000
"""Journals per List response; a larger snapshot spans several, as Gazette's
brokers send them."""

_EMPTY_SHA1 = hashlib.sha1(b"").digest()

STREAM_BATCH = 1 << 20
"""A streamed append is written to storage in batches of about this many
bytes: large enough to amortize a worker thread's hop, small enough that
what one append holds in memory stays bounded."""

MIN_APPEND_RATE = 1 << 16
"""Bytes per second a streamed append's client must sustain while it holds
its journal (Gazette's `MinAppendRate`): one that stalls is cut off, so that
the appends queued behind it can proceed."""

UNDERFLOW = "append stream: client stream didn't sustain the minimum append data rate"
"""What a client cut off for stalling is told (Gazette's wording)."""

SendRead = Callable[[pb.ReadResponse], Awaitable[None]]
SendList = Callable[[pb.ListResponse], Awaitable[None]]


class MoreContent(Protocol):
    """The rest of an Append stream's content, read as it arrives."""

    async def next_chunk(self) -> bytes | None:
        """The next non-empty content chunk; None once the stream has sent
        its commit chunk and ended. Raises (an `aio.RpcError`) if the stream
        breaks, ends uncommitted or exceeds a limit: nothing is appended."""
        ...


class _MinimumRate:
    """Polices a streamed append's client, as Gazette's append flow control
    does: a credit of one second's worth of `rate` bytes drains at `rate`
    while the server waits for the client, and each chunk refills it (up to
    that second's worth). A client whose credit runs dry is cut off.

    Only time spent waiting for the client counts: the server's own writes
    to storage between chunks are not the client's fault.
    """

    def __init__(self, more: MoreContent, rate: int) -> None:
        self._more = more
        self._rate = rate
        self._credit = float(rate)

    async def next_chunk(self) -> bytes | None:
        started = trio.current_time()
        with trio.move_on_after(self._credit / self._rate):
            chunk = await self._more.next_chunk()
            waited = trio.current_time() - started
            if chunk is not None:
                self._credit = min(
                    float(self._rate), self._credit - waited * self._rate + len(chunk)
                )
            return chunk
        raise aio.UnknownError(UNDERFLOW)


def _copy_spec(spec: pb.JournalSpec) -> pb.JournalSpec:
    return pb.JournalSpec.parse(bytes(spec))


AppendSuspend = pb.AppendRequestSuspend


def _suspend_level(spec: pb.JournalSpec) -> pb.JournalSpecSuspendLevel:
    return spec.suspend.level if spec.suspend is not None else pb.JournalSpecSuspendLevel.NONE


def probe_file_store(root: str | None, store: str, delete_prefix: str | None) -> str:
    """Write, read back and remove a probe object in a `file://` store under
    `root`; the error that stopped it, or "" if the store is healthy."""
    url = urlsplit(store)
    if url.scheme != "file":
        return f"this journal server keeps fragments on its own disk and reaches no {url.scheme}:// store"
    if root is None:
        return "this journal server has no file:// store root configured"
    where = os.path.join(root, url.path.lstrip("/"), (delete_prefix or "").lstrip("/"))
    probe = os.path.join(where, f".health-probe-{os.getpid()}")
    try:
        with open(probe, "wb") as f:
            f.write(b"gazette-trio health probe")
        with open(probe, "rb") as f:
            if f.read() != b"gazette-trio health probe":
                return f"probe object read back wrong in {store}"
        os.unlink(probe)
    except OSError as exc:
        # The store's own path, not the server's absolute one.
        return f"{store}: {exc.strerror or type(exc).__name__}"
    return ""


def _invalid(exc: ValidationError) -> aio.InvalidArgument:
    return aio.InvalidArgument(str(exc))


@dataclass(slots=True)
class _Journal:
    """Content state of one journal: rolled fragments, the spool, registers."""

    name: str
    fragments: list[FragmentFile] = field(default_factory=list)
    begins: list[int] = field(default_factory=list)
    spool_begin: int = 0
    spool_open: bool = False
    write_head: int = 0
    registers: pb.LabelSet = field(default_factory=pb.LabelSet)
    lock: trio.Lock = field(default_factory=trio.Lock)
    changed: trio.Event = field(default_factory=trio.Event)
    # SHA-1 of the spool is computed lazily, up to `hashed_to`, when a
    # response or a roll needs it: appends then hash their bytes only once.
    hasher: Any = field(default_factory=hashlib.sha1)
    hashed_to: int = 0

    @classmethod
    def recovered(cls, name: str, state: RecoveredJournal) -> _Journal:
        j = cls(name, fragments=list(state.fragments), registers=state.registers)
        j.begins = [f.begin for f in j.fragments]
        j.write_head = state.write_head
        j.spool_open = state.spool_begin is not None
        j.spool_begin = state.spool_begin if state.spool_begin is not None else state.write_head
        j.hashed_to = j.spool_begin
        return j

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


@dataclass(frozen=True, slots=True)
class _Span:
    """A fragment (rolled or the spool) as a read sees it."""

    begin: int
    end: int
    sum: bytes
    mod_time: int


@dataclass
class ServerStats:
    """Running totals of what the server did, for its metrics (read, never
    reset: a Prometheus collector exports them as counters)."""

    appends: int = 0
    """Appends that committed content (empty appends and refusals not counted)."""
    append_bytes: int = 0
    fragments: int = 0
    """Spools rolled into fragments."""
    reads: int = 0
    """Reads admitted."""
    read_bytes: int = 0
    """Content bytes sent to readers."""


class JournalServerCore:
    """Gazette's Journal API over a `Storage`, for one node.

    Build it on `MemoryStorage()` (the default) or `FileStorage(data_dir)`;
    state is recovered from the storage at construction. `endpoint` (set it
    once the server listens) is advertised in the routes of responses.
    """

    def __init__(
        self,
        storage: Storage | None = None,
        *,
        faults: Faults | None = None,
        process_id: pb.ProcessSpecId | None = None,
        endpoint: str = "",
        read_chunk_size: int = READ_CHUNK_SIZE,
        file_root: str | None = None,
        min_append_rate: int = MIN_APPEND_RATE,
    ) -> None:
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.faults = faults
        self.process_id = process_id or pb.ProcessSpecId(zone="local", suffix="gazette-trio")
        self.endpoint = endpoint
        self.read_chunk_size = read_chunk_size
        self.min_append_rate = min_append_rate
        """Bytes per second a streamed append must sustain (0: no minimum)."""
        self.file_root = file_root
        """Where `file://` fragment store paths are rooted, or None: none is reachable."""
        recovered = self.storage.recover()
        # Revision 1 is the empty state, as etcd's first revision: Gazette's
        # clients reject a header with revision 0.
        self._revision = max(recovered.revision, 1)
        self._specs: dict[str, SpecRecord] = dict(recovered.specs)
        self._journals: dict[str, _Journal] = {
            name: _Journal.recovered(name, state) for name, state in recovered.journals.items()
        }
        self.stats = ServerStats()
        self._apply_lock = trio.Lock()
        # Set (and replaced) by every Apply that changes the specs: watched
        # Lists wait on it.
        self._specs_changed = trio.Event()

    def close(self) -> None:
        """Release the storage's files (blocked reads must be cancelled first)."""
        self.storage.close()

    # ------------------------------------------------------------------
    # Introspection (tests, status pages, the simulator's invariants)

    @property
    def revision(self) -> int:
        return self._revision

    def spec(self, journal: str) -> pb.JournalSpec | None:
        record = self._specs.get(journal)
        return _copy_spec(record.spec) if record is not None else None

    def journal_names(self) -> builtins.list[str]:
        """Names of the journals with specs, in order."""
        return sorted(self._specs)

    def write_head(self, journal: str) -> int:
        j = self._journals.get(journal)
        return j.write_head if j is not None else 0

    def registers(self, journal: str) -> pb.LabelSet:
        j = self._journals.get(journal)
        return pb.LabelSet.parse(bytes(j.registers)) if j is not None else pb.LabelSet()

    # ------------------------------------------------------------------
    # Headers

    def route(self) -> pb.Route:
        return pb.Route(
            members=[self.process_id],
            primary=0,
            endpoints=[self.endpoint] if self.endpoint else [],
        )

    def header(self, *, routed: bool = True) -> pb.Header:
        """A response header. Answers about one journal carry its route;
        List, Apply and store health are about no journal, and carry an
        empty route (primary -1), as Gazette's brokers' unrouted headers."""
        return pb.Header(
            process_id=self.process_id,
            route=self.route() if routed else pb.Route(primary=-1),
            etcd=pb.HeaderEtcd(
                cluster_id=MEMORY_CLUSTER_ID,
                member_id=1,
                revision=self._revision,
                raft_term=1,
            ),
        )

    # ------------------------------------------------------------------
    # List and Apply

    async def list(
        self,
        request: pb.ListRequest,
        send: SendList,
        *,
        scope: Callable[[str, pb.LabelSet | None], bool] | None = None,
    ) -> None:
        """Serve a List: send a snapshot of the matching journals, in name
        order, as one or more responses of at most `LIST_PAGE` journals.
        With `scope` (a caller's authorization), journals it refuses are
        left out as if they did not exist.

        Without `watch` the RPC ends after the snapshot. With it, each
        snapshot is followed by an empty response that marks its end, and a
        new snapshot follows whenever the matching set changes (a journal is
        created, updated or deleted), until the caller is cancelled. A
        `watch_resume` header skips snapshots at or before its revision.
        """
        await trio.lowlevel.checkpoint()
        try:
            R.validate_list_request(request)
        except ValidationError as exc:
            raise _invalid(exc) from None
        min_revision = 0
        if request.watch_resume is not None and request.watch_resume.etcd is not None:
            min_revision = request.watch_resume.etcd.revision + 1
        # (count, greatest mod revision) of the last snapshot sent: a create
        # or update raises the latter and a delete lowers the former, so an
        # unchanged pair means an unchanged listing.
        last: tuple[int, int] | None = None
        match = L.journal_matcher(request.selector)
        while True:
            while self._revision < min_revision:
                await self._specs_changed.wait()
            min_revision = self._revision + 1
            matched = [
                (name, record)
                for name, record in sorted(self._specs.items())
                if match(name, record.spec.labels)
                and (scope is None or scope(name, record.spec.labels))
            ]
            shape = (len(matched), max((r.mod_revision for _, r in matched), default=-1))
            if shape != last:
                last = shape
                journals = [
                    pb.ListResponseJournal(
                        spec=_copy_spec(record.spec),
                        mod_revision=record.mod_revision,
                        create_revision=record.create_revision,
                        route=self.route(),
                    )
                    for _, record in matched
                ]
                # The header is taken before sending: a slow client must not
                # see a revision newer than its snapshot.
                response = pb.ListResponse(
                    status=pb.Status.OK,
                    header=self.header(routed=False),
                    journals=journals[:LIST_PAGE],
                )
                await send(response)
                for i in range(LIST_PAGE, len(journals), LIST_PAGE):
                    await send(pb.ListResponse(journals=journals[i : i + LIST_PAGE]))
                if not request.watch:
                    return
                await send(pb.ListResponse())

    async def apply(self, request: pb.ApplyRequest) -> pb.ApplyResponse:
        try:
            R.validate_apply_request(request)
            for change in request.changes:
                if change.upsert is not None:
                    self.storage.check_journal_name(change.upsert.name)
        except ValidationError as exc:
            raise _invalid(exc) from None
        async with self._apply_lock:
            for change in request.changes:
                name = change.upsert.name if change.upsert is not None else change.delete
                current = self._specs.get(name)
                have = current.mod_revision if current is not None else 0
                if change.expect_mod_revision != -1 and change.expect_mod_revision != have:
                    return pb.ApplyResponse(
                        status=pb.Status.ETCD_TRANSACTION_FAILED, header=self.header(routed=False)
                    )
            if not request.changes:
                return pb.ApplyResponse(status=pb.Status.OK, header=self.header(routed=False))
            revision = self._revision + 1
            specs = dict(self._specs)
            deleted = []
            for change in request.changes:
                if change.upsert is not None:
                    name = change.upsert.name
                    prior = specs.get(name)
                    created = prior.create_revision if prior is not None else revision
                    specs[name] = SpecRecord(_copy_spec(change.upsert), created, revision)
                elif specs.pop(change.delete, None) is not None:
                    deleted.append(change.delete)
            await self._commit_specs(revision, specs)
            for name in deleted:
                j = self._journals.get(name)
                if j is not None:
                    j.wake()  # blocked readers see the journal is gone
            return pb.ApplyResponse(status=pb.Status.OK, header=self.header(routed=False))

    async def _admit(
        self,
        journal: str,
        validate: Callable[[Any], None],
        request: Any,
        *,
        min_revision: int = 0,
        reading: bool = False,
        refuse_suspended: bool = False,
    ) -> tuple[str, SpecRecord] | pb.Status:
        """The start every journal request shares: a checkpoint; `validate`
        (a malformed request is INVALID_ARGUMENT); the etcd revision the
        caller has seen; the journal's spec. Returns the journal's name and
        spec record, or the status that answers the request instead."""
        await trio.lowlevel.checkpoint()
        try:
            validate(request)
        except ValidationError as exc:
            raise _invalid(exc) from None
        await self._read_through(min_revision)
        name, _ = split_meta(journal)
        record = self._specs.get(name)
        if record is None:
            return pb.Status.JOURNAL_NOT_FOUND
        if refuse_suspended and _suspend_level(record.spec) == pb.JournalSpecSuspendLevel.FULL:
            return pb.Status.SUSPENDED
        if reading and not may_read(record.spec.flags):
            return pb.Status.NOT_ALLOWED
        return name, record

    async def _read_through(self, revision: int) -> None:
        """Wait until specs are at `revision` or later (a request's
        `min_etcd_revision`: the caller has seen that revision elsewhere)."""
        while self._revision < revision:
            await self._specs_changed.wait()

    async def _commit_specs(self, revision: int, specs: dict[str, SpecRecord]) -> None:
        """Make `specs` durable as `revision`, then the truth, and wake the
        watches. Shielded: once storage has them, a cancelled caller must
        not leave memory behind them."""
        with trio.CancelScope(shield=True):
            await self.storage.save_specs(revision, specs)
            self._specs = specs
            self._revision = revision
            self._specs_changed.set()
            self._specs_changed = trio.Event()

    async def _set_suspend(self, name: str, level: pb.JournalSpecSuspendLevel, offset: int) -> None:
        """Record a journal's suspension in its spec, as an Apply would (a
        new revision; watches see it)."""
        async with self._apply_lock:
            record = self._specs[name]
            spec = _copy_spec(record.spec)
            spec.suspend = pb.JournalSpecSuspend(level=level, offset=offset)
            revision = self._revision + 1
            specs = dict(self._specs)
            specs[name] = SpecRecord(spec, record.create_revision, revision)
            await self._commit_specs(revision, specs)
        log.info("journal %s: suspension is now %s at offset %d", name, level.name, offset)

    # ------------------------------------------------------------------
    # Fragments

    def _journal(self, name: str) -> _Journal:
        j = self._journals.get(name)
        if j is None:
            j = self._journals[name] = _Journal(name)
        return j

    def _spool_sum(self, j: _Journal) -> bytes:
        if j.write_head == j.spool_begin:
            return bytes(20)
        while j.hashed_to < j.write_head:
            n = min(j.write_head - j.hashed_to, 1 << 20)
            j.hasher.update(self._read_spool(j, j.hashed_to, n))
            j.hashed_to += n
        return bytes(j.hasher.digest())

    def _read_spool(self, j: _Journal, offset: int, n: int) -> bytes:
        """Exactly `n` bytes of `j`'s spool at `offset`, for its SHA-1."""
        data = self.storage.read(j.name, j.spool_begin, offset, n)
        if len(data) < n:
            # Damaged content follows: reading it raises DATA_LOSS with the
            # storage's own account of the damage.
            self.storage.read(j.name, j.spool_begin, offset + len(data), n - len(data))
            raise aio.DataLoss(f"journal {j.name}: content at {offset + len(data)} is damaged")
        return data

    def _spans(self, j: _Journal) -> builtins.list[_Span]:
        spans = [_Span(f.begin, f.end, f.sum, f.mod_time) for f in j.fragments]
        if j.write_head > j.spool_begin:
            spans.append(self._spool_span(j))
        return spans

    def _spool_span(self, j: _Journal) -> _Span:
        try:
            digest = self._spool_sum(j)
        except aio.DataLoss:
            # A damaged spool has no true sum to give (zero: unknown, as an
            # empty one's), but its content is served up to the damage.
            digest = bytes(20)
        return _Span(j.spool_begin, j.write_head, digest, 0)

    def _locate(self, j: _Journal, offset: int) -> tuple[_Span, int] | None:
        """The span covering `offset`, or the next one after it (an offset
        jump over removed content), with the offset to read from."""
        if j.spool_begin <= offset < j.write_head:
            return self._spool_span(j), offset
        i = bisect_right(j.begins, offset) - 1
        if i >= 0 and j.fragments[i].end > offset:
            f = j.fragments[i]
            return _Span(f.begin, f.end, f.sum, f.mod_time), offset
        if i + 1 < len(j.fragments):
            f = j.fragments[i + 1]
            return _Span(f.begin, f.end, f.sum, f.mod_time), f.begin
        if offset < j.spool_begin < j.write_head:
            return _Span(j.spool_begin, j.write_head, self._spool_sum(j), 0), j.spool_begin
        return None

    def _fragment(self, name: str, span: _Span) -> pb.Fragment:
        return pb.Fragment(
            journal=name,
            begin=span.begin,
            end=span.end,
            sum=sha1_sum(span.sum),
            compression_codec=pb.CompressionCodec.NONE,
            mod_time=span.mod_time,
        )

    async def list_fragments(self, request: pb.FragmentsRequest) -> pb.FragmentsResponse:
        admitted = await self._admit(
            request.journal, R.validate_fragments_request, request, reading=True
        )
        if isinstance(admitted, pb.Status):
            return pb.FragmentsResponse(status=admitted, header=self.header())
        name, _ = admitted
        limit = request.page_limit or DEFAULT_PAGE_LIMIT
        spans = self._spans(self._journal(name))
        start = next(
            (i for i, s in enumerate(spans) if s.begin >= request.next_page_token), len(spans)
        )
        out: builtins.list[pb.FragmentsResponseFragment] = []
        i = start
        while i < len(spans) and len(out) < limit:
            s = spans[i]
            i += 1
            if (s.mod_time != 0 and s.mod_time < request.begin_mod_time) or (
                request.end_mod_time != 0 and (s.mod_time == 0 or s.mod_time > request.end_mod_time)
            ):
                continue
            out.append(pb.FragmentsResponseFragment(spec=self._fragment(name, s)))
        return pb.FragmentsResponse(
            status=pb.Status.OK,
            header=self.header(),
            fragments=out,
            next_page_token=spans[i].begin if i < len(spans) else 0,
        )

    async def fragment_store_health(
        self, request: pb.FragmentStoreHealthRequest
    ) -> pb.FragmentStoreHealthResponse:
        """Whether a fragment store can be written, read and (asked for)
        deleted from, by a probe object, as Gazette's brokers check theirs.

        This server keeps fragments on its own disk, so it reaches only
        `file://` stores, under `file_root`; any other store answers
        FRAGMENT_STORE_UNHEALTHY saying so.
        """
        try:
            R.validate_fragment_store_health_request(request)
        except ValidationError as exc:
            raise _invalid(exc) from None
        error = await trio.to_thread.run_sync(
            functools.partial(
                probe_file_store,
                self.file_root,
                request.fragment_store,
                request.check_delete_prefix if request.check_delete else None,
            )
        )
        return pb.FragmentStoreHealthResponse(
            status=pb.Status.FRAGMENT_STORE_UNHEALTHY if error else pb.Status.OK,
            header=self.header(routed=False),
            store_health_error=error,
        )

    async def scrub(self, max_rate: int = 0) -> builtins.list[JournalDamage]:
        """Verify every rolled fragment's stored bytes against its SHA-1
        again, reading at most `max_rate` bytes a second (0: unbounded):
        restart verifies them, and this finds what rotted since. A fragment
        that fails makes its journal damaged from there on (reads at or past
        it and appends answer DATA_LOSS), as restart would; returns what was
        found. Reads and appends go on meanwhile."""
        found: builtins.list[JournalDamage] = []
        for name in sorted(self._journals):
            j = self._journals[name]
            for fragment in builtins.list(j.fragments):
                verify = functools.partial(
                    self.storage.verify, name, fragment, j.write_head, j.registers, max_rate
                )
                if self.storage.uses_threads:
                    # Abandoned on cancellation: a slow pass never holds up
                    # a shutdown, and its result no longer matters then.
                    damage = await trio.to_thread.run_sync(verify, abandon_on_cancel=True)
                else:
                    await trio.lowlevel.checkpoint()
                    damage = verify()
                if damage is not None:
                    found.append(damage)
                    break
        return found

    async def remove_fragments(self, journal: str, before: int) -> builtins.list[pb.Fragment]:
        """Delete rolled fragments of `journal` that end at or before offset
        `before` (never the spool); readers then jump over the hole. Returns
        what was removed."""
        j = self._journals.get(journal)
        if j is None:
            return []
        removed = []
        async with j.lock:
            keep = []
            for f in j.fragments:
                if f.end <= before:
                    with trio.CancelScope(shield=True):
                        await self.storage.remove(journal, f)
                    removed.append(
                        self._fragment(journal, _Span(f.begin, f.end, f.sum, f.mod_time))
                    )
                else:
                    keep.append(f)
            j.fragments = keep
            j.begins = [f.begin for f in keep]
        return removed

    # ------------------------------------------------------------------
    # Read

    async def read(self, request: pb.ReadRequest, send: SendRead) -> None:
        """Serve a Read: call `send` with each response until the read is
        complete (non-blocking at the head, `end_offset`, metadata only) or
        the caller is cancelled."""
        admitted = await self._admit(
            request.journal,
            R.validate_read_request,
            request,
            min_revision=request.min_etcd_revision,
            reading=True,
            # A fully suspended journal has no replica to read from.
            refuse_suspended=True,
        )
        if isinstance(admitted, pb.Status):
            await send(pb.ReadResponse(status=admitted, header=self.header()))
            return
        name, _ = admitted
        self.stats.reads += 1
        j = self._journal(name)
        offset = j.write_head if request.offset == -1 else request.offset
        end_offset = request.end_offset
        header: pb.Header | None = self.header()
        while True:
            changed = j.changed
            located = self._locate(j, offset)
            if located is None:
                if not request.block:
                    await send(
                        pb.ReadResponse(
                            status=pb.Status.OFFSET_NOT_YET_AVAILABLE,
                            header=header,
                            offset=offset,
                            write_head=j.write_head,
                        )
                    )
                    return
                await changed.wait()
                if name not in self._specs:
                    await send(
                        pb.ReadResponse(status=pb.Status.JOURNAL_NOT_FOUND, header=self.header())
                    )
                    return
                continue
            span, offset = located
            if request.begin_mod_time and span.mod_time and span.mod_time < request.begin_mod_time:
                # Persisted before the requested bound: skip past it.
                offset = span.end
                continue
            await send(
                pb.ReadResponse(
                    status=pb.Status.OK,
                    header=header,
                    offset=offset,
                    write_head=j.write_head,
                    fragment=self._fragment(name, span),
                )
            )
            header = None
            if request.metadata_only or (end_offset and offset >= end_offset):
                return
            stop = min(span.end, end_offset) if end_offset else span.end
            while offset < stop:
                n = min(self.read_chunk_size, stop - offset)
                if self.faults is not None:
                    await self.faults.before_read(name, offset, n)
                data = self.storage.read(name, span.begin, offset, n)
                await send(pb.ReadResponse(offset=offset, content=data))
                # (Short only just before damaged content, which the next
                # read reaches and answers with DATA_LOSS.)
                self.stats.read_bytes += len(data)
                offset += len(data)
            if end_offset and offset >= end_offset:
                return

    # ------------------------------------------------------------------
    # Append

    async def append(
        self,
        request: pb.AppendRequest,
        content: Sequence[bytes],
        more: MoreContent | None = None,
    ) -> pb.AppendResponse:
        """Append all of `content` to `request.journal` at its write head,
        with the request's register checks and updates, or nothing.

        `request` is the header of Gazette's Append stream (its `content` must
        be empty); `content` is the chunks the client sent, all of them unless
        `more` reads the rest. With `more`, `content` must not be empty, and
        the append is streamed into storage while the journal's lock is held.
        """
        admitted = await self._admit(
            request.journal,
            R.validate_append_header,
            request,
            min_revision=request.min_etcd_revision,
        )
        if isinstance(admitted, pb.Status):
            return pb.AppendResponse(status=admitted, header=self.header())
        name, _ = admitted
        chunks = [c for c in content if c]
        size = sum(len(c) for c in chunks)
        if more is not None and not size:
            raise ValueError("a streamed append begins with content")
        j = self._journal(name)
        async with j.lock:
            if self.faults is not None:
                await self.faults.before_append(name, j.write_head, size)
            record = self._specs.get(name)  # it may have been deleted while we waited
            if record is None:
                return pb.AppendResponse(status=pb.Status.JOURNAL_NOT_FOUND, header=self.header())
            spec = record.spec
            if (
                request.check_registers is not None
                and j.registers.labels
                and not L.matches(request.check_registers, j.registers)
            ):
                return pb.AppendResponse(
                    status=pb.Status.REGISTER_MISMATCH,
                    header=self.header(),
                    registers=pb.LabelSet.parse(bytes(j.registers)),
                )
            level = _suspend_level(spec)
            mode = request.suspend
            if level == pb.JournalSpecSuspendLevel.FULL and mode != AppendSuspend.RESUME:
                return pb.AppendResponse(status=pb.Status.SUSPENDED, header=self.header())
            resume_at = spec.suspend.offset if spec.suspend is not None else 0
            if j.write_head < resume_at and not await self._skip_to(j, resume_at):
                return pb.AppendResponse(
                    status=pb.Status.INDEX_HAS_GREATER_OFFSET, header=self.header()
                )
            if request.offset != 0 and request.offset != j.write_head:
                return pb.AppendResponse(status=pb.Status.WRONG_APPEND_OFFSET, header=self.header())
            if size and not may_write(spec.flags):  # (`size` is 0 only for an empty append)
                return pb.AppendResponse(status=pb.Status.NOT_ALLOWED, header=self.header())
            if size and mode != AppendSuspend.RESUME and mode != AppendSuspend.NO_RESUME:
                # Suspension requests, and SUSPEND_KEEP's head resets, carry no content.
                return pb.AppendResponse(status=pb.Status.NOT_ALLOWED, header=self.header())
            status = pb.Status.OK
            if mode == AppendSuspend.RESUME:
                if level != pb.JournalSpecSuspendLevel.NONE:
                    await self._set_suspend(name, pb.JournalSpecSuspendLevel.NONE, j.write_head)
            elif mode == AppendSuspend.NO_RESUME:
                if level != pb.JournalSpecSuspendLevel.NONE:
                    return pb.AppendResponse(status=pb.Status.SUSPENDED, header=self.header())
            elif mode in (AppendSuspend.IF_FLUSHED, AppendSuspend.NOW):
                # A journal holding no content suspends fully. One with
                # content suspends partially, on SUSPEND_NOW only: its
                # fragments live on this node and are never "flushed" to a
                # remote store, which SUSPEND_IF_FLUSHED waits for.
                if not j.fragments and j.write_head == j.spool_begin:
                    await self._set_suspend(name, pb.JournalSpecSuspendLevel.FULL, j.write_head)
                    return pb.AppendResponse(status=pb.Status.SUSPENDED, header=self.header())
                if level == pb.JournalSpecSuspendLevel.NONE and mode == AppendSuspend.NOW:
                    await self._set_suspend(name, pb.JournalSpecSuspendLevel.PARTIAL, j.write_head)
                    level = pb.JournalSpecSuspendLevel.PARTIAL
                if level == pb.JournalSpecSuspendLevel.PARTIAL:
                    status = pb.Status.SUSPENDED
            record = self._specs[name]
            spec = record.spec
            updates = request.union_registers is not None or request.subtract_registers is not None
            if not size and updates:
                raise aio.InvalidArgument(
                    f"journal {name}: register modification requires a non-empty append"
                )
            registers = j.registers
            if request.subtract_registers is not None:
                registers = L.subtract(registers, request.subtract_registers)
            if request.union_registers is not None:
                registers = L.union(request.union_registers, registers)

            begin = j.write_head
            digest = _EMPTY_SHA1
            if more is not None:
                digest, size = await self._commit_streamed(
                    j, spec, chunks, more, registers if updates else None
                )
                self.stats.appends += 1
                self.stats.append_bytes += size
            elif size:
                # From here the append either becomes durable and visible, or
                # storage rolls it back; a cancelled client cannot leave it
                # half-done.
                with trio.CancelScope(shield=True):
                    digest = await self._commit(j, spec, chunks, registers if updates else None)
                self.stats.appends += 1
                self.stats.append_bytes += size
            commit = pb.Fragment(
                journal=name,
                begin=begin,
                end=begin + size,
                sum=sha1_sum(digest),
                compression_codec=pb.CompressionCodec.NONE,
            )
            if self.faults is not None:
                await self.faults.after_append(name, commit)
            return pb.AppendResponse(
                status=status,
                header=self.header(),
                commit=commit,
                registers=pb.LabelSet.parse(bytes(j.registers)),
            )

    async def _commit(
        self,
        j: _Journal,
        spec: pb.JournalSpec,
        chunks: Sequence[bytes],
        registers: pb.LabelSet | None,
    ) -> bytes:
        """Make `chunks` durable at the write head; returns their SHA-1."""
        await self._prepare_spool(j, spec)
        size = sum(len(c) for c in chunks)
        # Both hashes of the content (the commit's, the spool's running one)
        # are taken from the chunks in hand, on a copy of the spool's hasher
        # that replaces it only once the append is durable. With file
        # storage they run in a thread alongside the storage's write and
        # fsync (hashlib releases the GIL): hashing was a third of the
        # server's time per append, and the fsync leaves a core idle.
        hasher = j.hasher.copy()
        digest = hashlib.sha1()
        append = functools.partial(
            self.storage.append, j.name, j.spool_begin, j.write_head, chunks, registers
        )
        hash_content = functools.partial(self._hash_content, j, hasher, j.hashed_to, digest, chunks)
        await self._alongside(append, hash_content)
        self._advance(j, size, hasher, registers)
        return digest.digest()

    async def _commit_streamed(
        self,
        j: _Journal,
        spec: pb.JournalSpec,
        first: Sequence[bytes],
        more: MoreContent,
        registers: pb.LabelSet | None,
    ) -> tuple[bytes, int]:
        """Write `first` and then all of `more` at the write head, batch by
        batch as it arrives, and make it durable; returns its SHA-1 and size.

        Reading the client is not shielded: if the stream breaks, ends
        uncommitted, stalls (`MIN_APPEND_RATE`) or is cancelled, what was
        written is discarded and the write head stays. The commit itself is
        shielded, as a whole append's.
        """
        with trio.CancelScope(shield=True):
            await self._prepare_spool(j, spec)
        pending = self.storage.begin_append(j.name, j.spool_begin, j.write_head)
        if self.min_append_rate:
            more = _MinimumRate(more, self.min_append_rate)
        hasher = j.hasher.copy()
        hashed_to = j.hashed_to
        digest = hashlib.sha1()
        size = 0
        try:
            batch = list(first)
            while batch:
                write = functools.partial(pending.write, batch)
                hash_batch = functools.partial(
                    self._hash_content, j, hasher, hashed_to, digest, batch
                )
                await self._alongside(write, hash_batch)
                hashed_to = j.write_head
                size += sum(len(c) for c in batch)
                batch = []
                held = 0
                while held < STREAM_BATCH:
                    chunk = await more.next_chunk()
                    if chunk is None:
                        break
                    batch.append(chunk)
                    held += len(chunk)
            with trio.CancelScope(shield=True):
                await pending.commit(registers)
        except BaseException:
            with trio.CancelScope(shield=True):
                await pending.abort()
            raise
        self._advance(j, size, hasher, registers)
        return digest.digest(), size

    async def _alongside(
        self, work: Callable[[], Awaitable[None]], compute: Callable[[], object]
    ) -> None:
        """Await `work` (storage's write) while `compute` (hashing) runs.

        With file storage the hashing runs in a worker thread alongside the
        storage's own (hashlib releases the GIL); with memory storage both
        stay on the Trio thread, so a simulation replays exactly. An error
        of either is raised as itself (after both have finished), not
        wrapped in a group: callers roll back on the storage's own error."""
        if not self.storage.uses_threads:
            compute()
            await work()
            return

        async def run_compute() -> None:
            await trio.to_thread.run_sync(compute)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_compute)
                await work()
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None

    def _advance(self, j: _Journal, size: int, hasher: Any, registers: pb.LabelSet | None) -> None:
        """Move the write head over a durable append of `size` bytes."""
        j.write_head += size
        j.hasher = hasher
        j.hashed_to = j.write_head
        if registers is not None:
            j.registers = registers
        j.wake()

    async def _prepare_spool(self, j: _Journal, spec: pb.JournalSpec) -> None:
        """Roll a spool that reached the spec's fragment length, and open
        one at the write head if none is."""
        length = spec.fragment.length if spec.fragment is not None else 0
        if j.spool_open and j.write_head > j.spool_begin and j.write_head - j.spool_begin >= length:
            await self._roll(j)
        if not j.spool_open:
            # (With none open, the spool's state already starts at the write
            # head: `_roll` and recovery leave it so.)
            await self.storage.start_spool(j.name, j.write_head, j.registers)
            j.spool_open = True

    async def _roll(self, j: _Journal) -> None:
        """Seal `j`'s spool, which ends at the write head, into a fragment."""
        rolled = await self.storage.roll(
            j.name, FragmentFile(j.spool_begin, j.write_head, self._spool_sum(j))
        )
        j.fragments.append(rolled)
        j.begins.append(rolled.begin)
        self.stats.fragments += 1
        j.spool_open = False
        j.spool_begin = j.hashed_to = j.write_head
        j.hasher = hashlib.sha1()

    async def _skip_to(self, j: _Journal, offset: int) -> bool:
        """Move `j`'s write head forward to `offset` (a suspended journal's
        resume offset), leaving no content between; False if it can't be
        moved because an empty spool is open at the old head."""
        if j.spool_open and j.write_head == j.spool_begin:
            log.warning(
                "journal %s: an empty spool at %d keeps the write head from its resume offset %d",
                j.name,
                j.write_head,
                offset,
            )
            return False
        if j.spool_open:
            with trio.CancelScope(shield=True):
                await self._roll(j)
        j.write_head = j.spool_begin = j.hashed_to = offset
        j.hasher = hashlib.sha1()
        j.wake()
        return True

    def _hash_content(
        self, j: _Journal, hasher: Any, hashed_to: int, digest: Any, chunks: Sequence[bytes]
    ) -> None:
        """Hash `chunks` into `digest` (the append's) and `hasher` (the
        spool's, at `hashed_to`, first brought up to the write head)."""
        while hashed_to < j.write_head:
            n = min(j.write_head - hashed_to, 1 << 20)
            hasher.update(self._read_spool(j, hashed_to, n))
            hashed_to += n
        for chunk in chunks:
            digest.update(chunk)
            hasher.update(chunk)

    def journals(self) -> Iterable[str]:
        """Names of journals with a spec, sorted."""
        return sorted(self._specs)
