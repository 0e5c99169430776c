"""Journals: Gazette's broker protocol from the client side, and a server for one node.

Client side, all built on the `JournalClient` seam (`client`):

- transports: `LocalJournalClient` (in-process, over a `JournalServerCore`),
  `GrpcJournalClient` (gRPC, to any Gazette-protocol broker) and
  `RoutedJournalClient` / `open_routed_client` (gRPC, each journal's reads
  and appends sent to the broker its route names, as Gazette's clients do);
- `open_reader` / `JournalReader` / `Chunk` (`reader`): content from an
  offset, following offset jumps and retrying transport failures;
- `append` (`appender`): one atomic append, statuses raised as `JournalError`;
- `AppendService` / `open_append_service` (`append_service`): ordered,
  batched, retried appends returning `OpFuture`s;
- `list_journals`, `get_journal`, `apply_journals`, `upsert`, `delete`
  (`list_apply`); `labels` and `journal_spec` for selectors and specs;
- `WatchedList` / `open_watched_list` (`watch`): a listing kept current by
  a List watch.

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
from .routed import RoutedJournalClient, open_routed_client
from .watch import WatchedList, open_watched_list

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
    "RoutedJournalClient",
    "WatchedList",
    "append",
    "apply_journals",
    "delete",
    "get_journal",
    "list_journals",
    "new_journal_spec",
    "open_append_service",
    "open_reader",
    "open_routed_client",
    "open_watched_list",
    "read_journal",
    "upsert",
]
