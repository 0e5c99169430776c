"""The append service: asynchronous, ordered, batched, retried appends.

Consumers write to journals from inside transactions and must not wait for
each write; instead they collect futures and make later steps wait on them
(the store commit waits on every write of the transaction, ACKs wait on the
commit). `AppendService.append(journal, content)` enqueues an append and
returns an `OpFuture` of its `AppendResponse` at once. Guarantees:

- appends to one journal are written in call order, each contiguously;
- adjacent queued appends to the same journal without register options may
  be batched into one Append RPC; each still gets its own commit range
  (`commit.begin`, `commit.end`), and the broker's SHA-1 `commit.sum` only
  if it was sent alone;
- `depends_on=future` holds the append (and the ones queued after it on the
  same journal) until `future` resolves; if it failed, the append fails with
  `DependencyFailed` and is never written;
- transport failures and transient broker statuses are retried with backoff,
  so a resolved future means "written at least once" (as Gazette's append
  service: a lost acknowledgement followed by a retry writes twice);
- any other status (JOURNAL_NOT_FOUND, NOT_ALLOWED, REGISTER_MISMATCH, ...)
  fails the future with `JournalError` and is not retried;
- a journal whose append failed for good (its dependency failed, or its
  RPC did, other than by a register mismatch) is *failed*: every append
  queued behind it, and every later call for that journal, fails with
  `JournalFailed` without being written, for the rest of the service's
  life. Later appends must not land after a hole in what the caller meant
  to write in order (a recovery log's ops, a transaction's messages before
  its ACK). This is Gazette's rule: its service fails "all queued appends to
  this journal which follow" a failed dependency and keeps the journal's
  error for good, so a service should live no longer than the work a
  failure invalidates (the runtime opens one per shard assignment, as
  Gazette scopes one to the shard's context). `pending()` reports each
  failed journal as a failed future, so a barrier built from it (a store
  commit) fails too, as Gazette's `PendingExcept` does;
- a REGISTER_MISMATCH fails only its own append: every later append
  carrying the same check is refused by the broker in turn, so no hole
  opens in that writer's sequence, while appends without the check belong
  to other writers (the player that fenced a recorder) and must go on.
  (Gazette's service retries every RPC error, so it has no such case.)

The service runs in a nursery the caller owns (`open_append_service`, or
`await nursery.start(service.run)`): one task per journal with queued
appends, started on demand and ended when its queue drains. When the service
stops, unresolved futures fail with `AppendServiceClosed`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import islice

import trio

from .._scope import background_nursery
from ..errors import BrokerError
from ..opfuture import OpFuture, OpFutures, wait_all
from ..protocol import protocol as pb
from .appender import append_request
from .client import JournalClient
from .errors import JournalError
from .reader import Backoff, is_retryable

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_BYTES = 1 << 21
"""Batched appends to one journal stop growing at 2 MiB."""


class DependencyFailed(BrokerError):
    """An append was not written because the future it depended on failed
    (the failure is the `__cause__`)."""

    def __init__(self, journal: str, cause: BaseException) -> None:
        super().__init__(f"journal {journal!r}: append not written; its dependency failed: {cause}")
        self.journal = journal
        self.__cause__ = cause


class JournalFailed(BrokerError):
    """An append was not written because an earlier append to the same
    journal failed for good (the first failure is the `__cause__`): it would
    have landed after a hole."""

    def __init__(self, journal: str, cause: BaseException) -> None:
        super().__init__(
            f"journal {journal!r}: append not written; an earlier append to this journal "
            f"failed: {cause}"
        )
        self.journal = journal
        self.__cause__ = cause


class AppendServiceClosed(BrokerError):
    """The service stopped before this append was known to be written."""


@dataclass(eq=False, slots=True)
class _Op:
    journal: str
    content: bytes
    check_registers: pb.LabelSelector | None
    union_registers: pb.LabelSet | None
    subtract_registers: pb.LabelSet | None
    depends_on: OpFuture[object] | None
    future: OpFuture[pb.AppendResponse]

    @property
    def plain(self) -> bool:
        return (
            self.check_registers is None
            and self.union_registers is None
            and self.subtract_registers is None
        )

    @property
    def ready(self) -> bool:
        """May be batched behind another op without waiting."""
        d = self.depends_on
        return d is None or (d.done() and d.error() is None)


@dataclass(slots=True)
class _Queue:
    ops: deque[_Op] = field(default_factory=deque)
    running: bool = False
    last: OpFuture[pb.AppendResponse] | None = None
    failure: BaseException | None = None
    """The first append of the journal that failed for good; once set, the
    journal accepts nothing more."""


class AppendService:
    """Ordered, batched, retried appends; see the module docstring."""

    def __init__(
        self,
        client: JournalClient,
        *,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.max_batch_bytes = max_batch_bytes
        self.backoff = backoff or Backoff()
        self._queues: dict[str, _Queue] = {}
        self._nursery: trio.Nursery | None = None
        self.rpcs = 0
        """Append RPCs made so far (batching makes this fewer than appends)."""

    # -- lifetime

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve appends until cancelled; then fail what is unresolved."""
        if self._nursery is not None:
            raise RuntimeError("AppendService is already running")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            closed = AppendServiceClosed("the append service stopped before this append resolved")
            for queue in self._queues.values():
                while queue.ops:
                    op = queue.ops.popleft()
                    if not op.future.done():
                        op.future.fail(closed)
                queue.running = False

    # -- the API

    def append(
        self,
        journal: str,
        content: bytes,
        *,
        check_registers: pb.LabelSelector | None = None,
        union_registers: pb.LabelSet | None = None,
        subtract_registers: pb.LabelSet | None = None,
        depends_on: OpFuture[object] | None = None,
    ) -> OpFuture[pb.AppendResponse]:
        """Queue an append of `content` to `journal`; see the module docstring."""
        if self._nursery is None:
            raise RuntimeError(
                "AppendService is not running: use `async with open_append_service(client)` "
                "or `await nursery.start(service.run)`"
            )
        if not isinstance(content, bytes):
            content = bytes(content)
        future: OpFuture[pb.AppendResponse] = OpFuture()
        queue = self._queues.get(journal)
        if queue is None:
            queue = self._queues[journal] = _Queue()
        if queue.failure is not None:
            future.fail(JournalFailed(journal, queue.failure))
            queue.last = future
            return future
        queue.ops.append(
            _Op(
                journal,
                content,
                check_registers,
                union_registers,
                subtract_registers,
                depends_on,
                future,
            )
        )
        queue.last = future
        if not queue.running:
            queue.running = True
            self._nursery.start_soon(self._serve, journal, queue, name=f"append-service:{journal}")
        return future

    def pending(self) -> OpFutures:
        """Futures of every append not yet resolved, across journals, plus a
        failed future for each failed journal (so whoever waits on this set
        learns that something it meant to write was not)."""
        out: OpFutures = {op.future for queue in self._queues.values() for op in queue.ops}
        for journal, queue in self._queues.items():
            if queue.failure is not None:
                out.add(OpFuture.failed(JournalFailed(journal, queue.failure)))
        return out

    def failure(self, journal: str) -> BaseException | None:
        """Why `journal` is failed (its first append that failed for good),
        or None while it accepts appends."""
        queue = self._queues.get(journal)
        return queue.failure if queue is not None else None

    def last_op(self, journal: str) -> OpFuture[pb.AppendResponse] | None:
        """The future of the latest append queued to `journal`, or None."""
        queue = self._queues.get(journal)
        return queue.last if queue is not None else None

    async def drain(self) -> None:
        """Wait until every append queued so far has resolved (raising the
        first failure, after all have resolved, or a failed journal's)."""
        await wait_all(self.pending())

    # -- the per-journal task

    async def _serve(self, journal: str, queue: _Queue) -> None:
        while queue.ops:
            head = queue.ops[0]
            if queue.failure is not None:
                queue.ops.popleft()
                head.future.fail(JournalFailed(journal, queue.failure))
                continue
            if head.depends_on is not None:
                try:
                    await head.depends_on.wait()
                except trio.Cancelled:
                    raise
                except BaseException as exc:
                    queue.ops.popleft()
                    failure = DependencyFailed(journal, exc)
                    queue.failure = failure
                    head.future.fail(failure)
                    continue
            batch = [head]
            size = len(head.content)
            if head.plain:
                for op in islice(queue.ops, 1, None):
                    if (
                        not op.plain
                        or not op.ready
                        or size + len(op.content) > self.max_batch_bytes
                    ):
                        break
                    batch.append(op)
                    size += len(op.content)
            try:
                response = await self._append(journal, batch)
            except trio.Cancelled:
                raise
            except BaseException as exc:
                if not _is_register_mismatch(exc):
                    queue.failure = exc
                for op in batch:
                    queue.ops.popleft()
                    op.future.fail(exc)
                continue
            for op, op_response in zip(batch, _split(response, batch), strict=True):
                queue.ops.popleft()
                op.future.resolve(op_response)
        queue.running = False

    async def _append(self, journal: str, batch: list[_Op]) -> pb.AppendResponse:
        head = batch[0]
        request = append_request(
            journal,
            check_registers=head.check_registers,
            union_registers=head.union_registers,
            subtract_registers=head.subtract_registers,
        )
        chunks = [op.content for op in batch if op.content]
        attempt = 0
        while True:
            self.rpcs += 1
            try:
                response = await self.client.append(request, chunks)
                if response.status == pb.Status.OK:
                    return response
                raise JournalError(journal, response.status, "append", response=response)
            except Exception as exc:
                if not is_retryable(exc) or attempt >= self.backoff.attempts:
                    raise
                attempt += 1
                delay = self.backoff.delay(attempt)
                log.info(
                    "journal %s: append of %d bytes failed (%s); retrying in %.2fs",
                    journal,
                    sum(len(c) for c in chunks),
                    exc,
                    delay,
                )
                await trio.sleep(delay)


def _is_register_mismatch(exc: BaseException) -> bool:
    """A refused register check judges only appends carrying that check, and
    the broker judges each of them the same way, so it opens no hole in their
    sequence; appends without it are other writers' (a player's hand-off
    after it fenced a recorder) and go on."""
    return isinstance(exc, JournalError) and exc.status == pb.Status.REGISTER_MISMATCH


def _split(response: pb.AppendResponse, batch: list[_Op]) -> list[pb.AppendResponse]:
    """One response per op of a batch, each with the commit range of its own
    content. (Gazette's append service hands every op the whole batch's
    response; exact ranges let a caller record where its bytes landed.) The
    SHA-1 `sum` describes what the broker committed, so it is kept only when
    the op was sent alone; hashing every op again would cost a full pass over
    the content for a figure no caller needs."""
    if len(batch) == 1:
        return [response]
    commit = response.commit or pb.Fragment()
    # A batch of small appends holds thousands of ops, and the generated
    # constructors (~1 us for a response and its fragment) were a tenth of a
    # 1 KiB append's cost. So one response and fragment are built normally
    # and each op's are copies of their fields with its own range: the same
    # classes, the same field values, a third of the time.
    fragment_fields = vars(
        pb.Fragment(journal=commit.journal, compression_codec=commit.compression_codec)
    )
    response_fields = vars(
        pb.AppendResponse(
            status=response.status, header=response.header, registers=response.registers
        )
    )
    new = object.__new__
    fragment_cls, response_cls = pb.Fragment, pb.AppendResponse
    begin = commit.begin
    out = []
    for op in batch:
        end = begin + len(op.content)
        fragment = new(fragment_cls)
        fields = fragment_fields.copy()
        fields["begin"] = begin
        fields["end"] = end
        fragment.__dict__ = fields
        op_response = new(response_cls)
        fields = response_fields.copy()
        fields["commit"] = fragment
        op_response.__dict__ = fields
        out.append(op_response)
        begin = end
    return out


@contextlib.asynccontextmanager
async def open_append_service(
    client: JournalClient,
    *,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    backoff: Backoff | None = None,
) -> AsyncIterator[AppendService]:
    """Run an `AppendService` for the duration of the block.

    Leaving the block normally waits for queued appends to resolve; leaving
    it with an error (or cancellation) stops the service at once, failing
    unresolved appends with `AppendServiceClosed`.
    """
    service = AppendService(client, max_batch_bytes=max_batch_bytes, backoff=backoff)
    async with background_nursery() as nursery:
        await nursery.start(service.run)
        yield service
        with contextlib.suppress(Exception):
            # Failures are on the futures; their owners see them.
            await service.drain()
