"""List and apply journal specs, with Gazette's statuses raised as errors.

`list_journals` reads a whole List snapshot (one or more responses, as a
broker splits large listings) and returns every matching journal with its
`mod_revision`; `get_journal` looks one up by name; `apply_journals` applies
a set of changes (all or none, or in batches under etcd's transaction limit)
and returns the new revision. `upsert` and `delete` build the changes, with
Gazette's meaning of `expect_mod_revision`: 0 to create, the revision you
listed to update, -1 to not care. `read_snapshot` is the one reader of List
streams, shared with the watched listing (`watch.WatchedList`).

This module owns those conveniences over the `JournalClient` seam; the YAML
tree of gazctl's journalspace files lives in `journalspace`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from .. import aio
from ..protocol import labels as L
from ..protocol import protocol as pb
from .client import JournalClient
from .errors import JournalError


def selector_of(selector: pb.LabelSelector | str | None) -> pb.LabelSelector | None:
    """A LabelSelector from a message, a selector string, or None (all)."""
    if isinstance(selector, str):
        return L.parse_selector(selector) if selector.strip() else None
    return selector


async def read_snapshot(
    responses: AsyncIterator[pb.ListResponse], *, watch: bool
) -> pb.ListResponse | None:
    """The next whole snapshot of a List stream, its journals joined into one
    response; None when a unary stream ended cleanly before one began.

    A snapshot is a first response with status and header, then responses
    carrying only journals. A unary listing ends with the stream; a watched
    one ends each snapshot with an empty response, and its stream ending
    is an error (the server went away mid-watch).
    """
    first = await anext(responses, None)
    if first is None:
        if watch:
            raise aio.Unavailable("List watch ended before a snapshot")
        return None
    if first.status != pb.Status.OK:
        raise JournalError("", first.status, "list", response=first)
    if first.header is None or first.header.etcd is None:
        raise aio.InvalidArgument("List response has no header")
    journals = list(first.journals)
    async for more in responses:
        if not more.journals:
            if watch:
                first.journals = journals
                return first
            raise aio.InvalidArgument("unexpected empty List response in a unary listing")
        journals.extend(more.journals)
    if watch:
        raise aio.Unavailable("List watch ended mid-snapshot")
    first.journals = journals
    return first


async def list_snapshot(
    client: JournalClient, selector: pb.LabelSelector | str | None = None
) -> pb.ListResponse:
    """One listing of the journals matching `selector`, all its responses
    joined: its header says at which etcd revision it was taken."""
    async with client.list(pb.ListRequest(selector=selector_of(selector))) as responses:
        snapshot = await read_snapshot(responses, watch=False)
    if snapshot is None:
        raise aio.Unavailable("List stream ended without a response")
    return snapshot


async def list_journals(
    client: JournalClient, selector: pb.LabelSelector | str | None = None
) -> list[pb.ListResponseJournal]:
    """Every journal matching `selector` (e.g. `"prefix=clicks/"`), in name order."""
    return list((await list_snapshot(client, selector)).journals)


async def get_journal(client: JournalClient, name: str) -> pb.ListResponseJournal | None:
    """The journal named `name` (spec and revision), or None if there is none."""
    found = await list_journals(client, pb.LabelSelector(include=L.label_set({"name": name})))
    return found[0] if found else None


def upsert(spec: pb.JournalSpec, expect_mod_revision: int = 0) -> pb.ApplyRequestChange:
    """Create (`expect_mod_revision=0`) or update (the listed revision) a spec;
    -1 applies whatever the current revision."""
    return pb.ApplyRequestChange(upsert=spec, expect_mod_revision=expect_mod_revision)


def delete(name: str, expect_mod_revision: int = -1) -> pb.ApplyRequestChange:
    """Delete a journal's spec (its content stays in the fragments)."""
    return pb.ApplyRequestChange(delete=name, expect_mod_revision=expect_mod_revision)


async def apply_journals(
    client: JournalClient, changes: Iterable[pb.ApplyRequestChange], *, batch_size: int = 0
) -> int:
    """Apply `changes` and return the revision that holds them.

    With `batch_size` 0, all changes go in one request, atomically: raises
    `JournalError` with ETCD_TRANSACTION_FAILED if an expected revision did
    not match (nothing was applied). With a `batch_size` (etcd allows 128
    operations per transaction unless configured otherwise), the changes go
    in requests of at most that many, each atomic on its own, in order: a
    failure leaves the batches before it applied. Raises `aio.InvalidArgument`
    naming the problem if a change is invalid.
    """
    changes = list(changes)
    size = batch_size or max(len(changes), 1)
    revision = 0
    for i in range(0, max(len(changes), 1), size):
        batch = changes[i : i + size]
        response = await client.apply(pb.ApplyRequest(changes=batch))
        if response.status != pb.Status.OK:
            names = ", ".join(c.upsert.name if c.upsert is not None else c.delete for c in batch)
            raise JournalError(names, response.status, "apply", response=response)
        header = response.header
        revision = header.etcd.revision if header is not None and header.etcd is not None else 0
    return revision
