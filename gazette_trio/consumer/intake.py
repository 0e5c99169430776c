"""Message intake of a primary shard: source readers and the sequencer.

A primary shard reads each source journal read-uncommitted, from the
checkpoint's offset (never below the source's `min_offset`), one reader task
per journal, and sends batches of decoded frames (`SourceBatch`: one
journal's, knowing where they end) into the shard's event channel.
The transaction driver hands each batch to `SequencedIntake.committed`,
which runs it through the shard's `Sequencer` (re-reading journals when a
transaction outgrew its buffer) and returns the committed messages, in
order (a `Committed`: envelopes are built for what the application sees). The intake also tracks read-through offsets, and builds the
checkpoint's sources (offsets plus producer states).

A reader that meets bad input (a malformed frame) sends `ReadFailed` with
an error naming the journal and offset; the driver raises it and the shard
fails with it in its status. Nothing is skipped silently.

This module owns the glue between `gazette_trio.message` and the driver;
decoding and sequencing themselves are the message package's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ..broker.client import JournalClient
from ..errors import ConsumerError
from ..message import Envelope, Sequencer, open_uncommitted, sequence
from ..message.frames import Committed, Frames
from ..message.reader import fetch_spec
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from .driver import ReadFailed

log = logging.getLogger(__name__)

# Producers silent for a day, relative to a journal's newest ACK, are
# forgotten at checkpoint time (Gazette's messageSequencerPruneHorizon).
PRUNE_HORIZON_NS = 24 * 3600 * 10**9


class SourceError(ConsumerError):
    """Reading a source journal failed; the message names journal and offset."""


class SourceBatch:
    """Frames read from one source journal, in order, knowing where they
    end: the intake advances the journal's read-through once per batch
    rather than once per message."""

    __slots__ = ("end", "frames", "journal")

    def __init__(self, journal: str, frames: Frames) -> None:
        self.journal = journal
        self.frames = frames
        self.end = frames.end

    def __len__(self) -> int:
        return len(self.frames)


class SequencedIntake:
    """`driver.MessageIntake` over a `Sequencer`."""

    def __init__(
        self,
        sequencer: Sequencer,
        client: JournalClient,
        message_type_of: Callable[[pb.JournalSpec], Any],
        read_through: dict[str, int],
    ) -> None:
        self.sequencer = sequencer
        self._client = client
        self._message_type_of = message_type_of
        self.read_through = dict(read_through)
        # Read-through as of the last checkpoint: pending transactions that
        # began after it began in the current consumer transaction.
        self._since = dict(read_through)

    async def committed(self, batch: SourceBatch | Sequence[Envelope]) -> Committed:
        if isinstance(batch, SourceBatch):
            self.read_through[batch.journal] = batch.end
            return await sequence(self.sequencer, batch.frames, self._client, self._message_type_of)
        for envelope in batch:
            self.read_through[envelope.journal.name] = envelope.end
        return await sequence(self.sequencer, batch, self._client, self._message_type_of)

    def has_pending(self) -> bool:
        return self.sequencer.has_pending(self._since)

    def checkpoint_sources(self) -> dict[str, pc.CheckpointSource]:
        self._since = dict(self.read_through)
        return self.sequencer.checkpoint(self.read_through, PRUNE_HORIZON_NS)


def start_offsets(spec: pc.ShardSpec, checkpoint: pc.Checkpoint) -> dict[str, int]:
    """Where each source is read from: the checkpoint's read-through, but
    never below the source's `min_offset`."""
    offsets: dict[str, int] = {}
    for source in spec.sources:
        cp = checkpoint.sources.get(source.journal)
        offsets[source.journal] = max(cp.read_through if cp else 0, source.min_offset)
    return offsets


async def read_source(
    client: JournalClient,
    journal: str,
    offset: int,
    message_type_of: Callable[[pb.JournalSpec], Any],
    events: trio.MemorySendChannel[Any],
) -> None:
    """Read `journal` from `offset` forever, sending envelope batches.

    Ends by sending `ReadFailed` if the journal cannot be read or holds a
    malformed message; returns only when cancelled.
    """
    async with events:
        try:
            spec = await fetch_spec(client, journal)
            async with open_uncommitted(
                client, spec, message_type_of(spec), offset=offset
            ) as reader:
                while True:
                    frames = await reader.next_frames()
                    await events.send(SourceBatch(journal, frames))
        except trio.Cancelled:
            raise
        except StopAsyncIteration:
            error: BaseException = SourceError(f"journal {journal}: read ended unexpectedly")
        except Exception as exc:
            text = str(exc) if journal in str(exc) else f"reading journal {journal}: {exc}"
            error = SourceError(text)
            error.__cause__ = exc
        try:
            await events.send(ReadFailed(error))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
