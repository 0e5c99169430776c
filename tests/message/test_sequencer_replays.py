"""`Sequencer.replays` counts the `Replay`s the sequencer has returned, so a
caller that sees it unchanged across `queue_uncommitted` may treat the output
as envelopes only (`message.sequence` does, and then skips copying them)."""

from __future__ import annotations

from gazette_trio.message import ACK_TXN, CONTINUE_TXN, Envelope, Replay, Sequencer
from gazette_trio.protocol import protocol as pb

A = pb.JournalSpec(name="a/journal")
P1 = bytes.fromhex("010000000001")


def env(begin: int, clock: int, flags: int) -> Envelope:
    return Envelope(A, begin, begin + 10, {"n": clock}, P1, clock, flags)


def test_replays_count_only_the_replays_returned() -> None:
    seq = Sequencer(buffer_size=4)
    small = [env(10 * i, i + 1, CONTINUE_TXN) for i in range(3)] + [env(30, 4, ACK_TXN)]
    out = seq.queue_uncommitted(small)
    assert seq.replays == 0 and all(isinstance(e, Envelope) for e in out)

    large = [env(40 + 10 * i, 5 + i, CONTINUE_TXN) for i in range(10)] + [env(140, 15, ACK_TXN)]
    out = seq.queue_uncommitted(large)
    assert seq.replays == 1 and sum(isinstance(e, Replay) for e in out) == 1
