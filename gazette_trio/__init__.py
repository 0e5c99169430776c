"""gazette-trio: Gazette's consumer framework for Python, on Trio.

An application author writes a class with the `Application` methods and runs
it with `gazette-trio serve config.toml`. What such a class needs is
exported here:

- the contracts: `Application`, `Store`, `Shard`, `BeginFinisher`,
  `BatchConsumer`,
  `OpFuture`/`OpFutures`;
- messages: `Envelope`, `JSONMessage`, `Message`, `Publisher`, and the
  mappings that pick a journal for a message (`fixed_mapping`,
  `modulo_mapping`, `rendezvous_mapping`);
- stores: `JSONFileStore`, `SQLiteStore`, `SQLStore`, `MemoryStore`
  (imported on first use, since they pull in database drivers).

Everything else is importable from its module (see the package layout in
README.md) but not advertised here.
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
from .opfuture import OpFuture, OpFutures

if TYPE_CHECKING:
    from .consumer.stores import JSONFileStore, SQLiteStore, SQLStore
    from .consumer.stores.memory import MemoryStore

__version__ = "0.1.0"

_LAZY = {
    "JSONFileStore": "gazette_trio.consumer.stores.json_file",
    "SQLiteStore": "gazette_trio.consumer.stores.sqlite",
    "SQLStore": "gazette_trio.consumer.stores.sql",
    "MemoryStore": "gazette_trio.consumer.stores.memory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gazette_trio' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Aggregation",
    "Application",
    "BaseApplication",
    "BatchConsumer",
    "BeginFinisher",
    "Envelope",
    "JSONFileStore",
    "JSONMessage",
    "Mapping",
    "MemoryStore",
    "Message",
    "OpFuture",
    "OpFutures",
    "Partitions",
    "PerTransaction",
    "Publisher",
    "SQLStore",
    "SQLiteStore",
    "Shard",
    "Store",
    "__version__",
    "fixed_mapping",
    "modulo_mapping",
    "rendezvous_mapping",
]
