"""Stores: where a shard keeps its state, committed with its checkpoint.

- `SQLStore` (`sql`): tables in a database you run (PostgreSQL, or an SQLite
  file), with Gazette's fenced `gazette_checkpoints` table.
- `JSONFileStore` (`json_file`): a JSON document rewritten at each commit,
  recorded into the shard's recovery log.
- `SQLiteStore` (`sqlite`): an embedded SQLite database whose file writes are
  recorded into the shard's recovery log.
- `MemoryStore` (`memory`): process memory, for tests and rebuildable state.

`docs/stores.md` explains how to choose. Errors are in `errors`; the thread
discipline shared by the SQL stores is `worker`; JSONFileStore's file layout
(Gazette's) is `json_file_format`, SQLiteStore's recording VFS `sqlite_vfs`,
and where a shard without a recovery log keeps its files `directories`.
"""

from __future__ import annotations

from .errors import CommitDependencyError, FencedError, StoreError, StoreStateError
from .json_file import JSONFileStore
from .sql import SQLStore, SQLTransaction
from .sqlite import SQLiteStore

__all__ = [
    "CommitDependencyError",
    "FencedError",
    "JSONFileStore",
    "SQLStore",
    "SQLTransaction",
    "SQLiteStore",
    "StoreError",
    "StoreStateError",
]
