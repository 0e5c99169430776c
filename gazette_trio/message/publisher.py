"""The publisher: sequencing, framing and appending messages, and the ACK
intents that commit transactions.

`publish_committed(mapping, message)` gives the message an OUTSIDE_TXN UUID:
read-committed readers take it as soon as it is read. `publish_uncommitted`
gives it a CONTINUE_TXN UUID: readers hold it until an ACK_TXN from this
publisher with a larger clock commits it. Each call maps the message to a
journal, stamps its UUID (producer id, next clock tick, flags), frames it
with the journal's framing and queues the append on the append service,
returning the append's `OpFuture`. The tick and the queueing happen in one
synchronous step, so UUID order matches append order within a journal.

`build_ack_intents()` returns, for every journal published to
uncommitted since the last call, one framed ACK message with a fresh clock:
the `Checkpoint.ack_intents` of the transaction that is committing. The
consumer runtime writes them to its store with the checkpoint, and appends
them only after that commit; a recovered shard appends the intents of its
recovered checkpoint again, which is what rolls back whatever it published
after that checkpoint.

This module owns sequencing and intents; mapping is `mapping`'s, and the
appends are the append service's.
"""

from __future__ import annotations

import time
from typing import Any, Protocol, TypeVar

from ..opfuture import OpFuture
from ..protocol import protocol as pb
from .framing import Framing, framing_by_content_type
from .mapping import Mapping
from .message import acknowledgement_of, set_uuid
from .uuids import (
    ACK_TXN,
    CONTINUE_TXN,
    OUTSIDE_TXN,
    Clock,
    ProducerID,
    build_uuid,
    new_producer_id,
)

__all__ = ["Appender", "Publisher"]

M = TypeVar("M")


class Appender(Protocol):
    """What the publisher needs of `gazette_trio.broker.AppendService`."""

    def append(self, journal: str, content: bytes) -> OpFuture[pb.AppendResponse]: ...


class Publisher:
    """Publishes messages as one producer; see the module docstring.

    With no `clock`, the publisher updates its own from wall time on every
    publish; a caller that passes a `Clock` updates it itself (the consumer
    runtime does so once per transaction, saving a time call per message).
    """

    def __init__(
        self,
        appender: Appender,
        clock: Clock | None = None,
        *,
        producer: ProducerID | None = None,
    ) -> None:
        self.appender = appender
        self._auto_clock = clock is None
        self.clock = clock if clock is not None else Clock.now()
        self.producer = producer if producer is not None else new_producer_id()
        if len(self.producer) != 6:
            raise ValueError(f"producer id must be 6 bytes, not {len(self.producer)}")
        # Journal → (ACK message, framing), in first-publish order.
        self._intents: dict[str, tuple[Any, Framing]] = {}

    def publish_committed(self, mapping: Mapping[M], message: M) -> OpFuture[pb.AppendResponse]:
        """Publish `message` for immediate read-committed consumption."""
        _, _, future = self._publish(mapping, message, OUTSIDE_TXN)
        return future

    def publish_uncommitted(self, mapping: Mapping[M], message: M) -> OpFuture[pb.AppendResponse]:
        """Publish `message` in the open transaction; `build_ack_intents`
        will include an ACK for its journal."""
        journal, framing, future = self._publish(mapping, message, CONTINUE_TXN)
        if journal not in self._intents:
            self._intents[journal] = (acknowledgement_of(message, journal), framing)
        return future

    def build_ack_intents(self) -> dict[str, bytes]:
        """Journal → framed ACK of everything published uncommitted to it
        since the last call; the open transaction is then closed."""
        intents: dict[str, bytes] = {}
        for journal, (ack, framing) in self._intents.items():
            set_uuid(ack, build_uuid(self.producer, self.clock.tick(), ACK_TXN))
            intents[journal] = framing.marshal(ack)
        self._intents.clear()
        return intents

    def _publish(
        self, mapping: Mapping[M], message: M, flags: int
    ) -> tuple[str, Framing, OpFuture[pb.AppendResponse]]:
        if self._auto_clock:
            self.clock.update(time.time_ns())
        validate = getattr(message, "validate", None)
        if validate is not None:
            validate()
        journal, content_type = mapping(message)
        framing = framing_by_content_type(content_type)
        set_uuid(message, build_uuid(self.producer, self.clock.tick(), flags))
        frame = framing.marshal(message)
        return journal, framing, self.appender.append(journal, frame)
