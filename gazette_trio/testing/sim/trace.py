"""The event trace of a simulated run, and its hash.

Significant events (a member starting or crashing, a fault injected, a
shard's status changing, a transaction committing, a producer committing or
rolling back, the verifier reading an output, an invariant violated) are
appended as text lines stamped with the simulated time. Lines name things by
their simulated names (member suffixes, shard ids, journal offsets), never by
object ids or addresses, so two runs of one seed produce the same lines, and
the SHA-256 of the lines (`digest`) is the fingerprint a replay is checked
against.

This module owns the trace; what is worth a line is decided by its callers.
"""

from __future__ import annotations

import hashlib
from collections import deque

import trio

TAIL_LINES = 60
"""Lines kept for a failure report (the whole trace is hashed, not kept)."""


class Trace:
    """Hashed event lines; keeps only the tail unless asked to keep all."""

    def __init__(self, *, keep_all: bool = False) -> None:
        self._hash = hashlib.sha256()
        self.lines = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.all: list[str] | None = [] if keep_all else None

    def event(self, text: str) -> None:
        """Record `text` at the current simulated time."""
        line = f"{trio.current_time():12.6f} {text}"
        self._hash.update(line.encode())
        self._hash.update(b"\n")
        self.lines += 1
        self.tail.append(line)
        if self.all is not None:
            self.all.append(line)

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of every line so far."""
        return self._hash.hexdigest()
