"""JournalError: a broker answered a journal operation with a non-OK Status.

Gazette reports most outcomes of a journal RPC as a `Status` inside the
response (JOURNAL_NOT_FOUND, NOT_ALLOWED, REGISTER_MISMATCH, ...), not as a
gRPC error. The client helpers (reader, appender, append service, list/apply
helpers) turn such a status into a `JournalError` carrying the journal, the
status and the response, so callers can `except JournalError` and branch on
`.status`. Transport failures stay `gazette_trio.aio.RpcError`s.

This module owns the error type and the rule of which statuses are worth
retrying; it makes no RPCs.
"""

from __future__ import annotations

from typing import Any

from ..errors import BrokerError
from ..protocol import protocol as pb

RETRYABLE_STATUSES = frozenset(
    {
        pb.Status.NO_JOURNAL_PRIMARY_BROKER,
        pb.Status.NOT_JOURNAL_PRIMARY_BROKER,
        pb.Status.NOT_JOURNAL_BROKER,
        pb.Status.INSUFFICIENT_JOURNAL_BROKERS,
        pb.Status.WRONG_ROUTE,
        pb.Status.PROPOSAL_MISMATCH,
        pb.Status.FRAGMENT_STORE_UNHEALTHY,
    }
)
"""Statuses a broker cluster answers while its routing converges, or while a
fragment store is briefly unreachable; an operation retried a moment later
may succeed. Every other non-OK status (SUSPENDED among them: a suspended
journal stays so until an append resumes it) is a verdict about the request
itself."""


class JournalError(BrokerError):
    """A journal operation was answered with `status` (not OK)."""

    def __init__(
        self,
        journal: str,
        status: pb.Status,
        message: str = "",
        *,
        response: Any = None,
    ) -> None:
        self.journal = journal
        self.status = pb.Status(status)
        self.message = message
        self.response = response
        text = f"journal {journal!r}: {self.status.name}"
        super().__init__(f"{text}: {message}" if message else text)

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES
