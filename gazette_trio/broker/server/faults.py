"""Faults: the seam through which a simulator injects errors and delays.

The deterministic simulation runs the journal server core in-process on a
mock clock. To exercise retries and at-least-once behaviour it needs to make
appends and reads fail or stall at chosen moments. `JournalServerCore` calls
the hooks of a `Faults` object at those moments; the default implementation
does nothing. A hook may `await trio.sleep(...)` (a slow disk or network) or
raise: `gazette_trio.aio.Unavailable` looks to clients like a lost
connection, which the reader and append service retry.

This module owns only the hook points and their contract; the policies
(which call fails, when) belong to the simulator.
"""

from __future__ import annotations

from ...protocol import protocol as pb


class Faults:
    """No-op hooks; subclass and override the ones a test needs.

    Hook calls are part of the core's deterministic control flow: they run in
    the task serving the request, in request order, and nothing else reads
    the wall clock or iterates an unordered collection around them.
    """

    async def before_append(self, journal: str, offset: int, size: int) -> None:
        """Called with the journal's lock held, before `size` bytes are
        written at `offset`. Raising here appends nothing; sleeping here
        delays every later append to the journal."""

    async def after_append(self, journal: str, commit: pb.Fragment) -> None:
        """Called after the append of `commit` is durable, before the
        response. Raising here models a lost acknowledgement: the content is
        in the journal but the client sees an error (and may retry)."""

    async def before_read(self, journal: str, offset: int, size: int) -> None:
        """Called before each content response of a Read stream. Raising
        here breaks the stream at `offset`."""
