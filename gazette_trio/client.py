"""Publishing to and reading from journals from your own code.

An application's neighbours — a web service that records events, a script
that loads a file, a report that reads results — talk to journals without
running a consumer. This module gives them what the consumer runtime has,
with nothing to manage but an endpoint:

```python
async with open_publisher("localhost:8080", selector="topic=clicks",
                          key=lambda event: event["user"]) as publisher:
    for event in events:
        await publisher.publish(event)      # waits only while the buffer is full
# leaving the block commits what was published and waits for the brokers
```

- `open_publisher` maps each message to a journal (a fixed `journal`, or
  the journals matching `selector`, kept current by a watch, by
  `rendezvous` or `modulo` of `key(message)` as the consumer's own
  publishers map), stamps its UUID, frames it and appends it, batched.
  By default publishing is transactional: messages are written uncommitted
  and committed by ACKs every `txn_size` messages and when the block ends,
  so a publisher that dies mid-way leaves nothing half-visible to
  read-committed readers. `transactional=False` writes each message
  committed on its own.
- Memory is bounded: at most `max_in_flight` bytes are written but not yet
  acknowledged; `publish` waits while that is reached (backpressure).
- Retries are visible: while acknowledgements stall, a warning is logged
  every `warn_every` seconds (what is waiting, and where), and
  `on_progress` (if given) is called with a `PublishProgress` as
  acknowledgements arrive. After `give_up_after` seconds without progress,
  publishing fails with `PublishTimeout`, naming what is unacknowledged.
- `open_reader` reads one journal read-committed (each message once, in
  commit order) from an offset.
- `SyncPublisher` is the same publisher for code that is not async: it runs
  the async one in a thread of its own.

Each opens its own asyncio island and channel (`gazette_trio.aio`); nothing
else is needed. This module owns the neighbour-facing conveniences; the
parts are `message.Publisher`, `broker.AppendService`, `message.reader`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import trio

from . import aio
from ._scope import background_nursery
from .broker.append_service import AppendService, open_append_service
from .broker.client import JournalClient
from .broker.reader import Backoff
from .broker.routed import open_routed_client
from .errors import BrokerError
from .message.mapping import (
    Mapping,
    NoPartitions,
    fixed_mapping,
    modulo_mapping,
    open_partitions,
    rendezvous_mapping,
)
from .message.message import Envelope
from .message.publisher import Publisher as MessagePublisher
from .message.reader import CommittedReader, open_committed
from .opfuture import OpFuture
from .protocol import protocol as pb

__all__ = [
    "PublishProgress",
    "PublishTimeout",
    "SyncPublisher",
    "open_publisher",
    "open_reader",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 8 << 20
"""Bytes written but not yet acknowledged, at most, by default."""


class PublishTimeout(BrokerError):
    """Publishing made no progress for `give_up_after` seconds; `unacknowledged`
    counts, per journal, the messages written but not acknowledged."""

    def __init__(self, endpoint: str, seconds: float, unacknowledged: dict[str, int]) -> None:
        self.endpoint = endpoint
        self.unacknowledged = unacknowledged
        waiting = ", ".join(f"{n} to {j}" for j, n in sorted(unacknowledged.items()))
        super().__init__(
            f"{endpoint}: no acknowledgement for {seconds:g} s; giving up with "
            f"{sum(unacknowledged.values())} message(s) unacknowledged ({waiting})"
        )


@dataclass
class PublishProgress:
    """Counts of a publisher's work so far."""

    published: int = 0
    """Messages handed to `publish`."""
    acknowledged: int = 0
    """Messages whose append the broker acknowledged (committed ones: also
    their transaction's ACK)."""
    bytes_acknowledged: int = 0
    commits: int = 0
    """Transactions committed (ACKs acknowledged)."""
    journals: set[str] = field(default_factory=set)
    """Journals written to."""


@dataclass(slots=True)
class _InFlight:
    """One append: a batch of frames to one journal, or a commit marker."""

    journal: str
    size: int
    future: OpFuture[pb.AppendResponse]
    messages: int
    """Messages in the batch; for a commit marker, the messages it commits."""
    commit: bool = False
    shared: OpFuture[pb.AppendResponse] | None = None
    """The future the batch's messages were given, settled with `future`."""


@dataclass(slots=True)
class _Open:
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    messages: int = 0
    # The one future every message of the batch is given: publishing makes
    # a future per message, and a future per message in flight cost ~2 KB
    # each, where the frames themselves are tens of bytes.
    future: OpFuture[pb.AppendResponse] = field(default_factory=OpFuture)


class _Batcher:
    """Joins frames to one journal into one append, up to `BATCH_BYTES`,
    and hands each batch to the append service when it is full or flushed.
    Order within a journal is kept: batches go in the order they filled."""

    def __init__(self, appends: AppendService, sent: Callable[[_InFlight], None]) -> None:
        self._appends = appends
        self._sent = sent
        self._open: dict[str, _Open] = {}

    def append(self, journal: str, content: bytes) -> OpFuture[pb.AppendResponse]:
        batch = self._open.get(journal)
        if batch is None:
            batch = self._open[journal] = _Open()
        batch.chunks.append(content)
        batch.size += len(content)
        batch.messages += 1
        if batch.size >= BATCH_BYTES:
            self.flush(journal)
        return batch.future

    def flush(self, journal: str | None = None) -> None:
        for name in [journal] if journal is not None else list(self._open):
            batch = self._open.pop(name, None)
            if batch is None:
                continue
            future = self._appends.append(name, b"".join(batch.chunks))
            self._sent(_InFlight(name, batch.size, future, batch.messages, shared=batch.future))


BATCH_BYTES = 1 << 16
"""Frames to one journal are joined into appends of up to 64 KiB."""

LINGER = 0.05
"""Seconds a partial batch waits for more frames before it is sent."""


class Publisher:
    """A publisher for neighbours; create it with `open_publisher`."""

    def __init__(
        self,
        endpoint: str,
        appends: AppendService,
        mapping: Mapping,
        *,
        transactional: bool,
        txn_size: int,
        max_in_flight: int,
        give_up_after: float,
        warn_every: float,
        on_progress: Callable[[PublishProgress], None] | None,
    ) -> None:
        self.endpoint = endpoint
        self.progress = PublishProgress()
        self._batcher = _Batcher(appends, self._sent)
        self._publisher = MessagePublisher(self._batcher)
        self._mapping = mapping
        self._transactional = transactional
        self._txn_size = txn_size
        self._max_in_flight = max_in_flight
        self._give_up_after = give_up_after
        self._warn_every = warn_every
        self._on_progress = on_progress
        # Appends in the order they were sent, reaped from the front as they
        # are acknowledged; a commit marker follows a transaction's ACKs.
        self._in_flight: deque[_InFlight] = deque()
        self._in_flight_bytes = 0
        self._uncommitted = 0

    async def publish(self, message: Any) -> None:
        """Publish `message`: map, stamp, frame and queue it. Returns at once
        unless `max_in_flight` bytes are unacknowledged, then waits for room."""
        if self._transactional:
            self._publisher.publish_uncommitted(self._mapping, message)
            self._uncommitted += 1
        else:
            self._publisher.publish_committed(self._mapping, message)
        self.progress.published += 1
        if self._transactional and self._uncommitted >= self._txn_size:
            self._write_acks()
        if self._in_flight_bytes > self._max_in_flight:
            self._batcher.flush()
            while self._in_flight_bytes > self._max_in_flight:
                await self._settle_oldest()
        elif self._in_flight and self._in_flight[0].future.done():
            self._reap()
        else:
            await trio.lowlevel.checkpoint()

    async def commit(self) -> None:
        """Commit what was published (when transactional) and wait until
        every append is acknowledged."""
        if self._transactional and self._uncommitted:
            self._write_acks()
        self._batcher.flush()
        while self._in_flight:
            await self._settle_oldest()

    async def _settle_sent(self) -> None:
        """Wait for what was sent (not the open transaction's batches),
        ignoring errors: the caller is already failing."""
        if not self._transactional:
            self._batcher.flush()
        while self._in_flight:
            with contextlib.suppress(Exception):  # a failed append is popped as it raises
                await self._settle_oldest()

    def flush(self) -> None:
        """Send partial batches now (the publisher does so every `LINGER`)."""
        self._batcher.flush()

    # ------------------------------------------------------------------

    def _sent(self, entry: _InFlight) -> None:
        self._in_flight.append(entry)
        self._in_flight_bytes += entry.size

    def _write_acks(self) -> None:
        # Each ACK joins its journal's open batch, behind the messages it commits.
        for journal, ack in self._publisher.build_ack_intents().items():
            self._batcher.append(journal, ack)
        self._batcher.flush()
        done: OpFuture[pb.AppendResponse] = OpFuture.resolved(pb.AppendResponse())
        self._in_flight.append(_InFlight("", 0, done, self._uncommitted, commit=True))
        self._uncommitted = 0

    def _reap(self) -> None:
        """Account for acknowledged appends at the front of the queue. A
        failed append raises its error (the append service has given up on
        it: a verdict such as JOURNAL_NOT_FOUND, not a transient fault)."""
        changed = False
        while self._in_flight and self._in_flight[0].future.done():
            entry = self._in_flight.popleft()
            self._in_flight_bytes -= entry.size
            changed = True
            if entry.commit:
                # Every append before it, the transaction's ACKs included, is in.
                self.progress.acknowledged += entry.messages
                self.progress.commits += 1
                continue
            error = entry.future.error()
            if entry.shared is not None:
                if error is None:
                    entry.shared.resolve(entry.future.result())
                else:
                    entry.shared.fail(error)
            if error is not None:
                raise error
            self.progress.journals.add(entry.journal)
            self.progress.bytes_acknowledged += entry.size
            if not self._transactional:
                self.progress.acknowledged += entry.messages
        if changed and self._on_progress is not None:
            self._on_progress(self.progress)

    async def _settle_oldest(self) -> None:
        """Wait for the oldest append, warning while it stalls and giving up
        after `give_up_after` seconds without it being acknowledged."""
        oldest = self._in_flight[0]
        deadline = trio.current_time() + self._give_up_after
        while not oldest.future.done():
            with trio.move_on_after(min(self._warn_every, deadline - trio.current_time())):
                await oldest.future.wait()
            if oldest.future.done():
                break
            waiting = self._unacknowledged()
            if trio.current_time() >= deadline:
                raise PublishTimeout(self.endpoint, self._give_up_after, waiting)
            log.warning(
                "%s: waiting for acknowledgement of %d message(s) (%s); retrying the brokers, "
                "giving up in %.0f s",
                self.endpoint,
                sum(waiting.values()),
                ", ".join(f"{n} to {j}" for j, n in sorted(waiting.items())),
                deadline - trio.current_time(),
            )
        self._reap()

    def _unacknowledged(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self._in_flight:
            if not entry.commit and not entry.future.done():
                out[entry.journal] = out.get(entry.journal, 0) + entry.messages
        return out

    async def _linger(self) -> None:
        while True:
            await trio.sleep(LINGER)
            self._batcher.flush()


@contextlib.asynccontextmanager
async def open_publisher(
    endpoint: str,
    *,
    journal: str | None = None,
    content_type: str = "application/x-ndjson",
    selector: str | pb.LabelSelector | None = None,
    key: Callable[[Any], bytes | str] | None = None,
    mapping: Literal["rendezvous", "modulo"] = "rendezvous",
    transactional: bool = True,
    txn_size: int = 10_000,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    give_up_after: float = 300.0,
    warn_every: float = 10.0,
    on_progress: Callable[[PublishProgress], None] | None = None,
) -> AsyncIterator[Publisher]:
    """A `Publisher` to the brokers at `endpoint`, for the block's duration.

    Name the destination with `journal` (every message goes there, framed
    per `content_type`) or `selector` (the matching journals, each framed per
    its own content type, chosen per message by `mapping` of `key(message)`,
    or of the message's `mapping_key()`). Leaving the block normally commits
    and waits for every acknowledgement; leaving it with an error does not
    commit (transactional messages stay invisible to read-committed readers).
    """
    if (journal is None) == (selector is None):
        raise ValueError("name the destination with exactly one of journal= or selector=")
    if txn_size < 1 or max_in_flight < 1 or give_up_after <= 0:
        raise ValueError("txn_size, max_in_flight and give_up_after must be positive")
    async with (
        aio.asyncio_island(),
        open_routed_client(endpoint, timeout=30) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        chosen: Mapping
        if journal is not None:
            chosen = fixed_mapping(journal, content_type)
        else:
            try:
                partitions = await stack.enter_async_context(
                    open_partitions(client, selector, ready_within=give_up_after)
                )
            except aio.RpcError as exc:
                raise aio.Unavailable(f"{endpoint}: listing journals: {exc}") from exc
            if not partitions.journals:
                raise NoPartitions(f"{endpoint}: no journals match {selector!r}")
            if mapping == "rendezvous":
                chosen = rendezvous_mapping(partitions, key)
            else:
                chosen = modulo_mapping(partitions, key)
        appends = await stack.enter_async_context(
            open_append_service(client, backoff=Backoff(maximum=5.0))
        )
        publisher = Publisher(
            endpoint,
            appends,
            chosen,
            transactional=transactional,
            txn_size=txn_size,
            max_in_flight=max_in_flight,
            give_up_after=give_up_after,
            warn_every=warn_every,
            on_progress=on_progress,
        )
        async with background_nursery() as nursery:
            nursery.start_soon(publisher._linger)
            try:
                yield publisher
                await publisher.commit()
            except BaseException:
                # Transactions committed before the error are settled, so
                # that `progress` says truly what was committed.
                with trio.CancelScope(shield=True), trio.move_on_after(give_up_after):
                    await publisher._settle_sent()
                raise


@contextlib.asynccontextmanager
async def open_reader(
    endpoint: str,
    journal: str,
    *,
    offset: int = 0,
    block: bool = True,
    message_type: Any = None,
) -> AsyncIterator[AsyncIterator[Envelope]]:
    """The committed messages of `journal` from `offset`, each once, in
    commit order, for the block's duration. Without `block`, iteration ends
    at the journal's current write head. Each item is an `Envelope`
    (`.message`, `.journal`, `.begin`, `.end`, `.uuid`)."""
    from .message.message import JSONMessage

    async with aio.asyncio_island(), open_routed_client(endpoint, timeout=30) as client:
        reader_client: JournalClient = client
        async with open_committed(
            reader_client, journal, message_type or JSONMessage, offset=offset, block=block
        ) as reader:
            yield _Messages(reader)


class _Messages:
    """Committed envelopes of a reader, ACKs left out."""

    def __init__(self, reader: CommittedReader) -> None:
        self._reader = reader
        self._batch: list[Envelope] = []
        self._next = 0

    def __aiter__(self) -> AsyncIterator[Envelope]:
        return self

    async def __anext__(self) -> Envelope:
        while self._next >= len(self._batch):
            batch = await self._reader.next_batch()  # StopAsyncIteration at the end
            self._batch = [e for e in batch if not e.is_ack]
            self._next = 0
        envelope = self._batch[self._next]
        self._next += 1
        return envelope


class SyncPublisher:
    """`open_publisher` for code that is not async: the async publisher runs
    in a thread of its own, fed in batches.

    ```python
    with SyncPublisher("localhost:8080", selector="topic=clicks") as publisher:
        for event in events:
            publisher.publish(event)
    ```
    Arguments are `open_publisher`'s. Leaving the block commits and waits;
    errors (a `PublishTimeout`, say) are raised from `publish` or the exit.
    """

    BATCH = 1000

    def __init__(self, endpoint: str, **options: Any) -> None:
        self._endpoint = endpoint
        self._options = options
        self._batch: list[Any] = []
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._send: trio.MemorySendChannel[list[Any] | None] | None = None
        self.progress = PublishProgress()

    def __enter__(self) -> SyncPublisher:
        self._thread = threading.Thread(
            target=self._run, name="gazette-trio-publisher", daemon=True
        )
        self._thread.start()
        self._started.wait()
        self._raise()
        return self

    def publish(self, message: Any) -> None:
        self._batch.append(message)
        if len(self._batch) >= self.BATCH:
            self._flush()

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if error is None:
            self._flush()
        assert self._token is not None and self._send is not None
        with contextlib.suppress(trio.RunFinishedError, trio.ClosedResourceError):
            trio.from_thread.run(self._send.send, None, trio_token=self._token)
        assert self._thread is not None
        self._thread.join()
        if error is None:
            self._raise()

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        self._raise()
        assert self._token is not None and self._send is not None
        try:
            trio.from_thread.run(self._send.send, batch, trio_token=self._token)
        except (trio.RunFinishedError, trio.BrokenResourceError, trio.ClosedResourceError):
            if self._thread is not None:
                self._thread.join()
            self._raise()
            raise RuntimeError("the publisher thread ended") from None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # delivered to the caller's thread
            self._error = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) else exc
        finally:
            self._started.set()

    async def _main(self) -> None:
        send, receive = trio.open_memory_channel[list[Any] | None](1)
        self._send = send
        self._token = trio.lowlevel.current_trio_token()
        async with open_publisher(self._endpoint, **self._options) as publisher:
            self.progress = publisher.progress
            self._started.set()
            async with receive:
                async for batch in receive:
                    if batch is None:
                        break
                    for message in batch:
                        await publisher.publish(message)
