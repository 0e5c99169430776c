"""gazette-trio: Gazette's consumer framework for Python, on Trio.

An application author writes an `Aggregation` (keyed state, a key function
and a reducer) or a full `Application`, and runs it with `gazette-trio serve
config.toml`. What applications import is exported here, and listed in
`__all__`:

- the contracts: `Application`, `BaseApplication`, `Aggregation`, `Store`,
  `Shard`, `BeginFinisher`, `BatchConsumer`, `PerTransaction` (typed
  per-transaction state), `OpFuture`/`OpFutures`/`wait_all`, and `Recorder` (what
  `new_store` is given with a recovery log);
- messages: `Envelope`, `JSONMessage`, `Message`, `Publisher`, and the
  mappings that pick a journal for a message (`Mapping`, `Partitions`,
  `fixed_mapping`, `modulo_mapping`, `rendezvous_mapping`);
- stores: `JSONFileStore`, `SQLiteStore`, `SQLStore`, `MemoryStore`;
- serving: `Consumer` (the member, as `grpc_services(consumer)` gets it),
  `JournalClient`, and JSON query routes: the `query` decorator,
  `QueryParams`, `QueryShards`, `QueryError`;
- errors: `GazetteTrioError`, the root of every error gazette-trio raises,
  and the ones applications meet: `ConsumerError`, `ResolveError`,
  `ShardStopped`, `StoreError`, `BrokerError`, `MessageError`.

Stores, the member, the journal client and query routes are imported on first use, since
they pull in database drivers and the whole runtime.

A few modules and subpackages are public too:
`gazette_trio.aio` (gRPC services and errors for an application's own API),
`gazette_trio.broker` (journal clients, reading and appending, for clients
of a consumer group), `gazette_trio.message` (framing, readers, sequencing), `gazette_trio.protocol`
(Gazette's protocol messages and labels), `gazette_trio.testing` (an
in-process consumer group for tests), `gazette_trio.errors` (every layer's
error base). Everything else is the runtime's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .consumer.aggregate import Aggregation
from .consumer.contracts import (
    Application,
    BaseApplication,
    BatchConsumer,
    BeginFinisher,
    Shard,
    Store,
)
from .consumer.scratch import PerTransaction
from .errors import BrokerError, ConsumerError, GazetteTrioError, MessageError
from .message import (
    Envelope,
    JSONMessage,
    Mapping,
    Message,
    Partitions,
    Publisher,
    fixed_mapping,
    modulo_mapping,
    rendezvous_mapping,
)
from .opfuture import OpFuture, OpFutures, wait_all

if TYPE_CHECKING:
    from .broker.client import JournalClient
    from .consumer.member import Consumer
    from .consumer.queries import QueryError, QueryParams, QueryShards, query
    from .consumer.service import ResolveError
    from .consumer.shard import ShardStopped
    from .consumer.stores import JSONFileStore, SQLiteStore, SQLStore, StoreError
    from .consumer.stores.memory import MemoryStore
    from .recoverylog import Recorder

__version__ = "0.1.0"

_LAZY = {
    "Consumer": "gazette_trio.consumer.member",
    "JSONFileStore": "gazette_trio.consumer.stores.json_file",
    "JournalClient": "gazette_trio.broker.client",
    "MemoryStore": "gazette_trio.consumer.stores.memory",
    "QueryError": "gazette_trio.consumer.queries",
    "QueryParams": "gazette_trio.consumer.queries",
    "QueryShards": "gazette_trio.consumer.queries",
    "Recorder": "gazette_trio.recoverylog",
    "ResolveError": "gazette_trio.consumer.service",
    "SQLStore": "gazette_trio.consumer.stores.sql",
    "SQLiteStore": "gazette_trio.consumer.stores.sqlite",
    "ShardStopped": "gazette_trio.consumer.shard",
    "StoreError": "gazette_trio.consumer.stores.errors",
    "query": "gazette_trio.consumer.queries",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gazette_trio' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Aggregation",
    "Application",
    "BaseApplication",
    "BatchConsumer",
    "BeginFinisher",
    "BrokerError",
    "Consumer",
    "ConsumerError",
    "Envelope",
    "GazetteTrioError",
    "JSONFileStore",
    "JSONMessage",
    "JournalClient",
    "Mapping",
    "MemoryStore",
    "Message",
    "MessageError",
    "OpFuture",
    "OpFutures",
    "Partitions",
    "PerTransaction",
    "Publisher",
    "QueryError",
    "QueryParams",
    "QueryShards",
    "Recorder",
    "ResolveError",
    "SQLStore",
    "SQLiteStore",
    "Shard",
    "ShardStopped",
    "Store",
    "StoreError",
    "__version__",
    "fixed_mapping",
    "modulo_mapping",
    "query",
    "rendezvous_mapping",
    "wait_all",
]
