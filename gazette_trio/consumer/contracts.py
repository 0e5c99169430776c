"""The contracts between the consumer runtime and the code it runs.

Three roles, as in Gazette's `consumer` package:

- `Application[StoreT, MessageT]`: the user's code, generic in the type of
  its shards' store and of the messages it reads. It builds a `Store` for
  each shard, names the message type of each journal, and consumes
  read-committed messages in transactions: `consume_message` for each message, `finalize_txn` when the
  transaction closes (flush in-memory aggregates into the store, publish
  what is pending). Optional `begin_txn`/`finished_txn` bracket each
  transaction (Gazette's BeginFinisher).
- `Store`: where a shard keeps its state. `restore_checkpoint` runs once when
  the shard starts (and installs a write fence if the store is external);
  `start_commit` commits the transaction's state together with its
  `Checkpoint`, but only after every future in `wait_for` resolved, and
  returns the future of that commit.
- `Shard`: what the runtime gives the application about the shard it is
  running: identity, spec, journals, the shard's nursery, and its progress.

An exception from any Application or Store callback fails that shard only:
its status becomes FAILED with the error, and the member goes on.

`gazette-trio serve` builds the Application as `cls(**settings)` from the
config's `[application.settings]` table. An Application may also offer gRPC
services of its own (a query API, say) by defining
`grpc_services(consumer) -> list[gazette_trio.aio.Service]`; they are served
on the member's port beside the Shard API.

`BaseApplication` is an Application with the obvious defaults to subclass
(the message type declared once, a no-op `finalize_txn`); `scratch` holds
the typed per-transaction state the runtime clears, and `aggregate` the
short keyed-aggregation form built on both.

This module owns the protocols only; the runtime that honours them lives in
`driver`, `shard` and `service`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, runtime_checkable

import trio
from typing_extensions import TypeVar

from ..opfuture import OpFuture, OpFutures
from ..protocol import consumer as pc
from ..protocol import protocol as pb

if TYPE_CHECKING:
    from ..broker.append_service import AppendService
    from ..broker.client import JournalClient
    from ..message.message import Envelope
    from ..message.publisher import Publisher
    from ..recoverylog.recorder import Recorder


class Shard(Protocol):
    """The processing context of one shard assigned to this member."""

    @property
    def id(self) -> str:
        """The ShardSpec's id."""
        ...

    @property
    def fqn(self) -> str:
        """Fully qualified name: the etcd key of the ShardSpec. Unique across
        consumer groups sharing an etcd, so stores key their state by it."""
        ...

    @property
    def spec(self) -> pc.ShardSpec:
        """The current ShardSpec (a new object when the spec changes)."""
        ...

    @property
    def cancel_scope(self) -> trio.CancelScope:
        """Cancelled when this member stops serving the shard."""
        ...

    @property
    def nursery(self) -> trio.Nursery:
        """The shard's own nursery: background work a store or application
        starts here ends with the shard."""
        ...

    @property
    def journal_client(self) -> JournalClient:
        """The journal client of this member."""
        ...

    @property
    def append_service(self) -> AppendService:
        """Appends made through it are waited on before a transaction
        commits, so raw appends triggered by a message happen at least once."""
        ...

    def progress(self) -> tuple[dict[str, int], dict[str, int]]:
        """(read_through, publish_at) as of the last completed transaction."""
        ...


class Store(Protocol):
    """A transactional home for a shard's state and its checkpoint."""

    async def restore_checkpoint(self, shard: Shard) -> pc.Checkpoint:
        """The last committed checkpoint. Called once, at shard start-up; an
        external store installs a write fence here so that an older instance
        elsewhere can no longer commit."""
        ...

    def start_commit(
        self, shard: Shard, checkpoint: pc.Checkpoint, wait_for: OpFutures
    ) -> OpFuture[None]:
        """Start committing the transaction's state with `checkpoint`.

        The commit must not become durable before every future in `wait_for`
        resolved, and must fail if one of them fails. It is never called
        while the previous commit's future is unresolved, but messages of the
        next transaction may be consumed while this commit runs.
        """
        ...

    def destroy(self) -> None:
        """Release resources (local files, connections). The store is no
        longer used when this is called."""
        ...


StoreT = TypeVar("StoreT", bound="Store", default=Any)
"""The store type of an application's shards (bare `Application` means any)."""
MessageT = TypeVar("MessageT", default=Any)
"""The message type an application reads (bare `Application` means any)."""
StoreT_contra = TypeVar("StoreT_contra", bound="Store", default=Any, contravariant=True)


@runtime_checkable
class Application(Protocol[StoreT, MessageT]):
    """User code run by the consumer, one instance per member.

    Generic in the store its shards use and the messages it reads, so that
    an implementation annotated with its own types
    (`store: JSONFileStore[dict[str, int]]`, `envelope: Envelope[Line]`)
    is an `Application[JSONFileStore[dict[str, int]], Line]`.
    """

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> StoreT:
        """Build the shard's Store. `recorder` is the shard's recovery-log
        recorder (`gazette_trio.recoverylog.Recorder`) if its spec has a
        `recovery_log_prefix`, else None."""
        ...

    def new_message(self, spec: pb.JournalSpec) -> type[MessageT]:
        """The message type this journal carries: what its frames decode
        into (`dict`, a `JSONMessage` subclass, a betterproto2 class for
        fixed protobuf framing, ...). Gazette returns a zero-valued message;
        in Python the type itself serves as the factory."""
        ...

    async def consume_message(
        self, shard: Shard, store: StoreT, envelope: Envelope[MessageT], publisher: Publisher
    ) -> None:
        """Consume one read-committed message (a `gazette_trio.message`
        Envelope) inside the current transaction. Publish derived messages
        with `publisher.publish_uncommitted`, so they are acknowledged or
        rolled back with this transaction. ACK messages, which only commit
        what precedes them, are not passed here (Gazette passes them)."""
        ...

    async def finalize_txn(self, shard: Shard, store: StoreT, publisher: Publisher) -> None:
        """The transaction is closing: flush in-memory state into the store
        transaction and publish anything pending."""
        ...


class BaseApplication(Generic[StoreT, MessageT]):
    """An `Application` to subclass, with the obvious defaults.

    Declare the message type once as `message_type` (every journal decodes
    into it); `finalize_txn` does nothing unless overridden. `new_store`
    and `consume_message` are the application's own.

        class Counter(BaseApplication[JSONFileStore[dict[str, int]], JSONMessage]):
            message_type = JSONMessage
            ...
    """

    message_type: type[MessageT]

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> StoreT:
        raise NotImplementedError(f"{type(self).__name__} must define new_store")

    def new_message(self, spec: pb.JournalSpec) -> type[MessageT]:
        try:
            return self.message_type
        except AttributeError:
            raise TypeError(
                f"{type(self).__name__} declares no message_type (the type journal "
                f"{spec.name} decodes into): set it, or override new_message"
            ) from None

    async def consume_message(
        self, shard: Shard, store: StoreT, envelope: Envelope[MessageT], publisher: Publisher
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define consume_message")

    async def finalize_txn(self, shard: Shard, store: StoreT, publisher: Publisher) -> None:
        """Nothing to flush by default."""


@runtime_checkable
class BeginFinisher(Protocol[StoreT_contra]):
    """Optional: told when each transaction begins and finishes."""

    async def begin_txn(self, shard: Shard, store: StoreT_contra) -> None:
        """A transaction begins; its first `consume_message` follows. It may
        block (to take a semaphore, say): the transaction's min and max
        durations count from when it returns. If it raises, the shard fails
        and `finished_txn` is not called."""
        ...

    def finished_txn(self, shard: Shard, store: StoreT_contra, future: OpFuture[None]) -> None:
        """Called once for every transaction whose `begin_txn` returned.

        When the transaction started to commit, `future` resolves (or fails)
        with its store commit. When it failed before that (a callback raised,
        a source could not be read, the previous commit failed), `future` has
        already failed with that error, and the shard fails with it; if the
        shard was stopped, with `driver.TransactionAborted`."""
        ...


@runtime_checkable
class BatchConsumer(Protocol[StoreT_contra, MessageT]):
    """Optional: consume read-committed messages a batch at a time.

    An Application that defines `consume_messages` has it called instead of
    `consume_message`, once per batch of committed messages as they were
    read (in order, ACKs left out, never empty). Per-message awaits cost:
    measured, a batch callback is 12-15% faster on small messages.

    The batch is a sequence of envelopes, built when it is first iterated or
    indexed. From the consumer runtime it is a `message.frames.Committed`,
    whose `messages()` returns the decoded messages without building any
    envelope: an application that needs no offsets saves that work.
    """

    async def consume_messages(
        self,
        shard: Shard,
        store: StoreT_contra,
        envelopes: Sequence[Envelope[MessageT]],
        publisher: Publisher,
    ) -> None:
        """Consume `envelopes` in order, inside the current transaction."""
        ...
