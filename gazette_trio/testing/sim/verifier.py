"""The verifier: reads every output journal read-committed, for the invariants.

One task per `sums/part-NN` journal follows it from offset 0 with the
production read-committed reader (`message.open_committed` over a fresh
`Sequencer`), blocking at the write head, and hands each committed output
message to `Invariants.output`, which checks that each stream's outputs are
numbered without duplicate or gap and sum exactly the committed chunks. The
verifier is an actor like any other: its reads are broken and slowed by the
same faults, and its reader retries.

This module owns reading outputs; judging them is the invariants'.
"""

from __future__ import annotations

import trio

from ...broker.client import JournalClient
from ...message import Sequencer, open_committed
from .faults import actor
from .invariants import Invariants


async def verify_outputs(journals: JournalClient, journal: str, invariants: Invariants) -> None:
    """Follow `journal` until cancelled."""
    actor.set(f"verifier:{journal}")
    async with open_committed(journals, journal, dict, Sequencer(), block=True) as reader:
        while True:
            for envelope in await reader.next_batch():
                if not envelope.is_ack:
                    invariants.output(journal, envelope.begin, envelope.message)
            await trio.lowlevel.checkpoint()
