"""The appender: one atomic append to a journal, with Gazette's status as an error.

`append(client, journal, content)` makes a single Append RPC and returns the
broker's `AppendResponse` if its status is OK; any other status raises
`JournalError` (for REGISTER_MISMATCH the response, with the journal's
current registers, is on the error). It does not retry: a retried append may
land twice, a decision the caller (or the append service, which promises
at-least-once) has to make.

This module owns building the request from keyword options; the transport is
the `JournalClient` seam.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable

from ..protocol import protocol as pb
from .client import JournalClient
from .errors import JournalError


def append_request(
    journal: str,
    *,
    offset: int = 0,
    check_registers: pb.LabelSelector | None = None,
    union_registers: pb.LabelSet | None = None,
    subtract_registers: pb.LabelSet | None = None,
) -> pb.AppendRequest:
    """The header of an Append stream with the given options."""
    return pb.AppendRequest(
        journal=journal,
        offset=offset,
        check_registers=check_registers,
        union_registers=union_registers,
        subtract_registers=subtract_registers,
    )


def check_append_response(journal: str, response: pb.AppendResponse) -> pb.AppendResponse:
    """`response` if OK, else a `JournalError` carrying it."""
    if response.status != pb.Status.OK:
        raise JournalError(journal, response.status, "append", response=response)
    return response


async def append(
    client: JournalClient,
    journal: str,
    content: bytes | Iterable[bytes] | AsyncIterable[bytes],
    *,
    offset: int = 0,
    check_registers: pb.LabelSelector | None = None,
    union_registers: pb.LabelSet | None = None,
    subtract_registers: pb.LabelSet | None = None,
) -> pb.AppendResponse:
    """Append `content` (bytes, or an iterable of chunks) to `journal`.

    All of it lands contiguously at the write head, or none of it does.
    `offset`, if non-zero, must equal the write head (WRONG_APPEND_OFFSET
    otherwise). `check_registers` must match the journal's registers (if it
    has any) or the append fails with REGISTER_MISMATCH; `subtract_registers`
    then `union_registers` update them, with a non-empty append only.
    """
    chunks: Iterable[bytes] | AsyncIterable[bytes] = (
        [bytes(content)] if isinstance(content, (bytes, bytearray, memoryview)) else content
    )
    request = append_request(
        journal,
        offset=offset,
        check_registers=check_registers,
        union_registers=union_registers,
        subtract_registers=subtract_registers,
    )
    return check_append_response(journal, await client.append(request, chunks))
