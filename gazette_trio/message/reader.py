"""Reading messages: read-uncommitted and read-committed, over journals.

`open_uncommitted(client, journal, message_type)` opens a journal reader
(`gazette_trio.broker.open_reader`) and frames its chunks with the journal's
framing into envelopes with exact offsets: every message as written,
duplicates and uncommitted ones included. Offset jumps (content removed from
the journal) are followed; a frame cut by one is an error.

`open_committed(client, journal, message_type, sequencer)` adds a
`Sequencer`: only committed messages come out, each once, with transactions
that outgrew the sequencer's buffer re-read from the journal (`replay`).

Both return batches (`next_batch`; `next_frames` for the uncommitted reader,
which is how the consumer runtime takes them), or single envelopes (`async
for`). A committed batch is a `Committed`: a sequence of envelopes, built on
first use, whose `messages()` hands out the decoded messages without them. A `FramingError` raised by
`next_batch` leaves the reader usable: calling it again continues after the
bad input (after a fixed-framing de-synchronization, at the next frame).

`sequence` is the piece the consumer runtime drives for several journals
with one sequencer: queue read-uncommitted frames, fulfil any replays,
return the committed messages in order.

This module owns the glue between chunks, decoders, the sequencer and
replays; the read loop itself (retries, jumps) is the broker reader's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, cast

from ..broker.client import JournalClient
from ..broker.errors import JournalError
from ..broker.list_apply import get_journal
from ..broker.reader import JournalReader, open_reader
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from .frames import Committed, Frames, Span
from .framing import FrameDecoder, FramingError, framing_for
from .message import Envelope
from .sequencer import Replay, Sequencer

__all__ = [
    "CommittedReader",
    "UncommittedReader",
    "committed_only",
    "fetch_spec",
    "open_committed",
    "open_uncommitted",
    "replay",
    "sequence",
]


async def fetch_spec(client: JournalClient, journal: str) -> pb.JournalSpec:
    """The spec of `journal`; JournalError(JOURNAL_NOT_FOUND) if there is none."""
    found = await get_journal(client, journal)
    if found is None or found.spec is None:
        raise JournalError(journal, pb.Status.JOURNAL_NOT_FOUND, "fetching its spec")
    return found.spec


class UncommittedReader:
    """Envelopes of every message of one journal, as written."""

    def __init__(self, reader: JournalReader, spec: pb.JournalSpec, decoder: FrameDecoder) -> None:
        self.spec = spec
        self._reader = reader
        self._decoder = decoder
        self._done = False
        self._held: FramingError | None = None

    @property
    def offset(self) -> int:
        """Offset of the next frame to decode."""
        return self._decoder.offset

    async def next_batch(self) -> list[Envelope]:
        """The envelopes of the next chunk(s) read: never empty. See `next_frames`."""
        frames = await self.next_frames()
        return frames.envelopes()

    async def next_frames(self) -> Frames:
        """The frames of the next chunk(s) read: never empty.

        Raises StopAsyncIteration at the end of the read (a non-blocking
        read at the write head, or `end_offset`), and `FramingError` on bad
        input, after which the next call continues past it.
        """
        while True:
            if self._held is not None:
                held, self._held = self._held, None
                raise held
            frames, error = self._decoder.decode()
            if error is not None:
                if len(frames):
                    # Deliver what preceded the error first; the error was
                    # consumed from the decoder, so hold it for the next call.
                    self._held = error
                    return frames
                raise error
            if len(frames):
                return frames
            if self._done:
                raise StopAsyncIteration
            try:
                chunk = await self._reader.__anext__()
            except StopAsyncIteration:
                self._done = True
                error = self._decoder.finish()
                if error is not None:
                    raise error from None
                raise
            self._decoder.feed(chunk.offset, chunk.content)

    def __aiter__(self) -> AsyncIterator[Envelope]:
        return self._envelopes()

    async def _envelopes(self) -> AsyncIterator[Envelope]:
        while True:
            try:
                batch = await self.next_batch()
            except StopAsyncIteration:
                return
            for envelope in batch:
                yield envelope


@contextlib.asynccontextmanager
async def open_uncommitted(
    client: JournalClient,
    journal: str | pb.JournalSpec,
    message_type: Any,
    *,
    offset: int = 0,
    end_offset: int = 0,
    block: bool = True,
) -> AsyncIterator[UncommittedReader]:
    """Read `journal` from `offset` within the block, as envelopes of
    `message_type` framed by the journal's `content-type`.

    `journal` is a name (its spec is fetched) or a spec. With `block=False`
    the read ends at the write head; with `end_offset` it ends there.
    """
    spec = journal if isinstance(journal, pb.JournalSpec) else await fetch_spec(client, journal)
    if offset < 0:
        raise ValueError(f"journal {spec.name!r}: offset must be a frame boundary, not {offset}")
    decoder = framing_for(spec).decoder(spec, message_type, offset)
    async with open_reader(client, spec.name, offset, block=block, end_offset=end_offset) as reader:
        yield UncommittedReader(reader, spec, decoder)


async def replay(
    client: JournalClient, request: Replay, spec: pb.JournalSpec, message_type: Any
) -> list[Envelope]:
    """Fulfil a `Replay`: re-read its range and return the committed envelopes."""
    replayed: list[Envelope] = []
    if request.end > request.begin:
        async with open_uncommitted(
            client, spec, message_type, offset=request.begin, end_offset=request.end
        ) as reader:
            async for envelope in reader:
                replayed.append(envelope)
    return request.select(replayed)


async def sequence(
    sequencer: Sequencer,
    batch: Frames | Iterable[Envelope],
    client: JournalClient,
    message_type_of: Callable[[pb.JournalSpec], Any],
) -> Committed:
    """Queue read-uncommitted frames (or envelopes) and return the committed
    messages, in order, re-reading journals for transactions that outgrew
    the buffer. `message_type_of(spec)` names the message type to decode a
    journal with."""
    replays = sequencer.replays
    if isinstance(batch, Frames):
        spans = sequencer.queue_frames(batch)
        if sequencer.replays == replays:
            return Committed(cast(list[Span], spans))  # Spans only, as almost always.
        items: list[Any] = spans
    else:
        items = sequencer.queue_uncommitted(batch)
    out: list[Span] = []
    envelopes: list[Envelope] = []
    for item in items:
        if isinstance(item, Replay):
            spec = item.tail[-1].journal  # The ACK that committed it.
            envelopes += await replay(client, item, spec, message_type_of(spec))
        elif isinstance(item, Envelope):
            envelopes.append(item)
        else:
            if envelopes:
                out += Committed.of_envelopes(envelopes).spans
                envelopes = []
            out.append(item)
    if envelopes:
        out += Committed.of_envelopes(envelopes).spans
    return Committed(out)


class CommittedReader:
    """Committed envelopes of one journal, each once, in commit order."""

    def __init__(
        self,
        uncommitted: UncommittedReader,
        sequencer: Sequencer,
        client: JournalClient,
        message_type: Any,
    ) -> None:
        self.uncommitted = uncommitted
        self.sequencer = sequencer
        self._client = client
        self._message_type = message_type
        self.read_through = uncommitted.offset
        """End offset of the last envelope queued: where a checkpoint resumes."""

    @property
    def spec(self) -> pb.JournalSpec:
        return self.uncommitted.spec

    async def next_batch(self) -> Committed:
        """The next committed messages (never empty), as a sequence of
        envelopes whose `messages()` skips building them; StopAsyncIteration
        at the end of the read; FramingError on bad input (see
        UncommittedReader)."""
        while True:
            frames = await self.uncommitted.next_frames()
            self.read_through = frames.end
            committed = await sequence(
                self.sequencer, frames, self._client, lambda spec: self._message_type
            )
            if committed:
                return committed

    def checkpoint(self, prune_horizon_ns: int = 0) -> dict[str, pc.CheckpointSource]:
        """`Checkpoint.sources` for this journal as of the last batch returned."""
        return self.sequencer.checkpoint({self.spec.name: self.read_through}, prune_horizon_ns)

    def __aiter__(self) -> AsyncIterator[Envelope]:
        return self._envelopes()

    async def _envelopes(self) -> AsyncIterator[Envelope]:
        while True:
            try:
                batch = await self.next_batch()
            except StopAsyncIteration:
                return
            for envelope in batch:
                yield envelope


@contextlib.asynccontextmanager
async def open_committed(
    client: JournalClient,
    journal: str | pb.JournalSpec,
    message_type: Any,
    sequencer: Sequencer | None = None,
    *,
    offset: int = 0,
    end_offset: int = 0,
    block: bool = True,
) -> AsyncIterator[CommittedReader]:
    """Read committed messages of `journal` within the block; see
    `open_uncommitted` for the arguments. To resume from a checkpoint, pass
    `Sequencer.from_checkpoint(checkpoint)` and its read-through `offset`."""
    async with open_uncommitted(
        client, journal, message_type, offset=offset, end_offset=end_offset, block=block
    ) as uncommitted:
        yield CommittedReader(uncommitted, sequencer or Sequencer(), client, message_type)


def committed_only(envelopes: Sequence[Envelope]) -> list[Envelope]:
    """The envelopes that carry content: ACKs left out."""
    return [e for e in envelopes if not e.is_ack]
