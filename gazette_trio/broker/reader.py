"""The journal reader: a journal's content from an offset, as a stream of chunks.

`open_reader(client, journal, offset)` yields a `JournalReader`; iterating it
gives `Chunk`s, each the journal's bytes at `chunk.offset`. Underneath it
issues Gazette Read RPCs and keeps them going:

- it follows *offset jumps*: where content was removed, the broker answers
  with the next available offset; the next chunk then starts beyond the end
  of the previous one, and the reader logs it and records it in `jumps`;
- it retries transport failures (and Gazette's transient routing statuses)
  with exponential backoff, resuming exactly at the next unread offset, so a
  broker restart shows up as a pause, never as lost or repeated bytes;
- in blocking mode it waits at the write head for more content, forever or
  until `end_offset`; in non-blocking mode iteration ends at the write head;
- a status that is a verdict (NOT_ALLOWED, SUSPENDED, ...) raises
  `JournalError` carrying the journal and the status; JOURNAL_NOT_FOUND is
  believed only after a few retries, since a broker may not yet have seen a
  journal that was just created.

The reader's RPCs run in a task owned by the `async with` block, so it never
outlives its caller. This module owns the read loop; framing content into
messages is the message package's job.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import trio

from .. import aio
from .._scope import background_nursery
from ..protocol import protocol as pb
from .client import JournalClient
from .errors import JournalError

log = logging.getLogger(__name__)

_FATAL_RPC_ERRORS = (
    aio.InvalidArgument,
    aio.Unimplemented,
    aio.PermissionDenied,
    aio.Unauthenticated,
    aio.NotFound,
    aio.FailedPrecondition,
    aio.OutOfRange,
    aio.AlreadyExists,
    aio.DataLoss,  # the broker's stored content is damaged: retrying cannot help
    # A full disk, or a request past a server's limit: said at once, not
    # retried without a word (a shard reports it and retries at its own pace).
    aio.ResourceExhausted,
)


def is_retryable(exc: BaseException) -> bool:
    """Whether an error of a journal RPC may go away if the RPC is retried:
    transport failures and transient broker statuses, not verdicts about the
    request."""
    if isinstance(exc, JournalError):
        return exc.retryable
    if isinstance(exc, aio.RpcError):
        return not isinstance(exc, _FATAL_RPC_ERRORS)
    return False


NOT_FOUND_RETRIES = 3
"""JOURNAL_NOT_FOUND answers retried before the reader believes them."""


def _just_created(exc: BaseException, not_found: int) -> bool:
    return (
        isinstance(exc, JournalError)
        and exc.status == pb.Status.JOURNAL_NOT_FOUND
        and not_found < NOT_FOUND_RETRIES
    )


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `initial`, doubling, capped at `maximum` seconds."""

    initial: float = 0.05
    maximum: float = 2.0
    attempts: float = math.inf
    """Retries before giving up and raising the last error."""

    def delay(self, attempt: int) -> float:
        return float(min(self.maximum, self.initial * (2 ** max(0, attempt - 1))))


@dataclass(frozen=True, slots=True)
class Chunk:
    """Content of `journal` starting at `offset`; `write_head` as last seen."""

    journal: str
    offset: int
    content: bytes
    write_head: int

    @property
    def end(self) -> int:
        return self.offset + len(self.content)


@dataclass
class OffsetJump:
    """Content [from_offset, to_offset) was not available and was skipped."""

    from_offset: int
    to_offset: int


@dataclass
class JournalReader:
    """Chunks of one journal; create it with `open_reader`.

    `offset` is the next offset the caller will see (-1 until the write head
    is known when reading from it), `write_head` the last write head the
    broker reported, `fragment` the fragment being read, `jumps` every offset
    jump so far, `retries` how many times an RPC was restarted.
    """

    client: JournalClient
    journal: str
    offset: int = 0
    block: bool = True
    end_offset: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    write_head: int = 0
    fragment: pb.Fragment | None = None
    jumps: list[OffsetJump] = field(default_factory=list)
    retries: int = 0
    _receive: trio.MemoryReceiveChannel[Chunk | BaseException] | None = None

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self

    async def __anext__(self) -> Chunk:
        if self._receive is None:
            raise RuntimeError("iterate a JournalReader inside `async with open_reader(...)`")
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        if isinstance(item, BaseException):
            raise item
        if self.offset >= 0 and item.offset > self.offset:
            jump = OffsetJump(self.offset, item.offset)
            self.jumps.append(jump)
            log.warning(
                "journal %s: offset jump from %d to %d (content was removed)",
                self.journal,
                jump.from_offset,
                jump.to_offset,
            )
        self.offset = item.end
        self.write_head = max(self.write_head, item.write_head)
        return item

    async def read_all(self) -> bytes:
        """Everything up to the end of the stream (non-blocking readers, or
        `end_offset`), concatenated. Offset jumps are not filled in."""
        return b"".join([chunk.content async for chunk in self])

    # The pump: runs in the task `open_reader` owns and sends chunks (or the
    # error that ends the read) to the iterating caller.

    async def _pump(self, send: trio.MemorySendChannel[Chunk | BaseException]) -> None:
        async with send:
            try:
                await self._read_loop(send)
            except trio.Cancelled:
                raise
            except Exception as exc:
                await send.send(exc)

    async def _read_loop(self, send: trio.MemorySendChannel[Chunk | BaseException]) -> None:
        offset = self.offset
        write_head = self.write_head
        attempt = 0
        not_found = 0
        while True:
            request = pb.ReadRequest(
                journal=self.journal, offset=offset, block=self.block, end_offset=self.end_offset
            )
            try:
                async with self.client.read(request) as responses:
                    async for response in responses:
                        if response.content:
                            chunk = Chunk(
                                self.journal, response.offset, response.content, write_head
                            )
                            offset = chunk.end
                            attempt = 0
                            await send.send(chunk)
                            continue
                        status = pb.Status(response.status)
                        write_head = max(write_head, response.write_head)
                        if status == pb.Status.OK:
                            offset = response.offset
                            self.fragment = response.fragment
                            continue
                        if status == pb.Status.OFFSET_NOT_YET_AVAILABLE and not self.block:
                            self.write_head = max(self.write_head, write_head)
                            if self.offset < 0:
                                self.offset = response.offset
                            return
                        raise JournalError(self.journal, status, f"reading at offset {offset}")
            except Exception as exc:
                if _just_created(exc, not_found):
                    # A broker whose view of etcd lags the journal's creation
                    # answers JOURNAL_NOT_FOUND for a moment, as upstream's
                    # retrying reader allows for.
                    not_found += 1
                elif not is_retryable(exc) or attempt >= self.backoff.attempts:
                    raise
                attempt += 1
                self.retries += 1
                delay = self.backoff.delay(attempt)
                log.info(
                    "journal %s: read at offset %d failed (%s); retrying in %.2fs",
                    self.journal,
                    offset,
                    exc,
                    delay,
                )
                await trio.sleep(delay)
                continue
            if self.end_offset and offset >= self.end_offset:
                return
            # The broker ended a read that was not done (e.g. it shut down):
            # resume where it stopped.
            attempt += 1
            self.retries += 1
            await trio.sleep(self.backoff.delay(attempt))


@contextlib.asynccontextmanager
async def open_reader(
    client: JournalClient,
    journal: str,
    offset: int = 0,
    *,
    block: bool = True,
    end_offset: int = 0,
    backoff: Backoff | None = None,
    buffer: int = 16,
) -> AsyncIterator[JournalReader]:
    """Read `journal` from `offset` (-1: the write head) within the block.

    ```
    async with open_reader(client, "clicks/part-000", offset=0, block=False) as reader:
        async for chunk in reader:
            handle(chunk.offset, chunk.content)
    ```
    """
    reader = JournalReader(
        client,
        journal,
        offset=offset,
        block=block,
        end_offset=end_offset,
        backoff=backoff or Backoff(),
    )
    send, receive = trio.open_memory_channel[Chunk | BaseException](buffer)
    reader._receive = receive
    async with background_nursery() as nursery:
        nursery.start_soon(reader._pump, send)
        async with receive:
            yield reader


async def read_journal(
    client: JournalClient, journal: str, offset: int = 0, end_offset: int = 0
) -> bytes:
    """The content of `journal` from `offset` to its current write head (or
    `end_offset`), without blocking."""
    async with open_reader(client, journal, offset, block=False, end_offset=end_offset) as reader:
        return await reader.read_all()
