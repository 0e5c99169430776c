"""Journals: Gazette's broker protocol from the client side, and a server for one node.

Client side, all built on the `JournalClient` seam (`client`):

- transports: `LocalJournalClient` (in-process, over a `JournalServerCore`)
  and `GrpcJournalClient` (gRPC, to any Gazette-protocol broker);
- `open_reader` / `JournalReader` / `Chunk` (`reader`): content from an
  offset, following offset jumps and retrying transport failures;
- `append` (`appender`): one atomic append, statuses raised as `JournalError`;
- `AppendService` / `open_append_service` (`append_service`): ordered,
  batched, retried appends returning `OpFuture`s;
- `list_journals`, `get_journal`, `apply_journals`, `upsert`, `delete`
  (`list_apply`); `labels` and `journal_spec` for selectors and specs.

Server side: `gazette_trio.broker.server` (import it explicitly).
"""

from __future__ import annotations

from .append_service import (
    AppendService,
    AppendServiceClosed,
    DependencyFailed,
    JournalFailed,
    open_append_service,
)
from .appender import append
from .client import JournalClient
from .errors import JournalError
from .grpc_client import GrpcJournalClient
from .journal_spec import new_journal_spec
from .list_apply import apply_journals, delete, get_journal, list_journals, upsert
from .local import LocalJournalClient
from .reader import Backoff, Chunk, JournalReader, OffsetJump, open_reader, read_journal

__all__ = [
    "AppendService",
    "AppendServiceClosed",
    "Backoff",
    "Chunk",
    "DependencyFailed",
    "GrpcJournalClient",
    "JournalClient",
    "JournalError",
    "JournalFailed",
    "JournalReader",
    "LocalJournalClient",
    "OffsetJump",
    "append",
    "apply_journals",
    "delete",
    "get_journal",
    "list_journals",
    "new_journal_spec",
    "open_append_service",
    "open_reader",
    "read_journal",
    "upsert",
]
