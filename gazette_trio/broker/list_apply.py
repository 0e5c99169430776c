"""List and apply journal specs, with Gazette's statuses raised as errors.

`list_journals` follows List pages and returns every matching journal with
its `mod_revision`; `get_journal` looks one up by name; `apply_journals`
applies a set of changes (all or none) and returns the new revision.
`upsert` and `delete` build the changes, with Gazette's meaning of
`expect_mod_revision`: 0 to create, the revision you listed to update, -1 to
not care.

This module owns those conveniences over the `JournalClient` seam; the YAML
tree of gazctl's journalspace files lives in `journalspace`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..protocol import labels as L
from ..protocol import protocol as pb
from .client import JournalClient
from .errors import JournalError


def selector_of(selector: pb.LabelSelector | str | None) -> pb.LabelSelector | None:
    """A LabelSelector from a message, a selector string, or None (all)."""
    if isinstance(selector, str):
        return L.parse_selector(selector) if selector.strip() else None
    return selector


async def list_journals(
    client: JournalClient,
    selector: pb.LabelSelector | str | None = None,
    *,
    page_limit: int = 0,
) -> list[pb.ListResponseJournal]:
    """Every journal matching `selector` (e.g. `"prefix=clicks/"`), in name order."""
    out: list[pb.ListResponseJournal] = []
    token = ""
    while True:
        response = await client.list(
            pb.ListRequest(selector=selector_of(selector), page_limit=page_limit, page_token=token)
        )
        if response.status != pb.Status.OK:
            raise JournalError("", response.status, "list", response=response)
        out.extend(response.journals)
        token = response.next_page_token
        if not token:
            return out


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


async def apply_journals(client: JournalClient, changes: Iterable[pb.ApplyRequestChange]) -> int:
    """Apply `changes` atomically and return the revision that holds them.

    Raises `JournalError` with ETCD_TRANSACTION_FAILED if an expected revision
    did not match (nothing was applied), and `aio.InvalidArgument` naming the
    problem if a change is invalid.
    """
    changes = list(changes)
    response = await client.apply(pb.ApplyRequest(changes=changes))
    if response.status != pb.Status.OK:
        names = ", ".join(c.upsert.name if c.upsert is not None else c.delete for c in changes)
        raise JournalError(names, response.status, "apply", response=response)
    header = response.header
    return header.etcd.revision if header is not None and header.etcd is not None else 0
