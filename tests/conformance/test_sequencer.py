"""Upstream: message/sequencer_test.go (go.gazette.dev/core v0.103.0).

Read-uncommitted envelopes in, read-committed envelopes out, against
`gazette_trio.message.sequencer`. Envelopes are made as upstream's test
generator makes them: 100 bytes each with 2 dead bytes between, one journal
`test/journal`, and a message per (producer, clock, flags).

Gazette's sequencer keeps a ring of the last N envelopes and hands out
committed messages one `Step` at a time; when a committed transaction
began before what the ring still holds, the caller replays
`ReplayRange()` from the journal. Ours buffers open transactions' messages
up to `buffer_size` (dropping the largest transactions when over) and hands
out each committed transaction whole, or a `Replay` of the range to re-read.
So *whether* a commit needs a replay can differ with buffer sizes; what is
committed, in which order, may not. The harness here keeps the journal's
envelopes and serves every `Replay` by re-reading its range, as a reader
would; where upstream expects a replay, ours (if it replays) must start
where upstream's does. Every scenario runs with envelopes queued one at a
time (as upstream) and queued as one batch per step, and with the C
run pass and its pure-Python twin.

Cases that cannot apply, or apply in part:
- TestSequencerRingAddAndEvict: asserts the ring's internal layout
  (`ring`, `next`, `head`, `partials`' ring indices) after each message;
  ours has no ring. Its observable outcome (every message of open
  transactions is kept until committed) is covered by the other cases.
- Read-through offsets (`seq.offsets`): ours leaves them to the caller
  (the consumer's intake), which passes them to `checkpoint`.
- Queue outcomes (`QueueContinueBeginSpan`, ...): Gazette's per-message
  classification is internal; the cases check what it decides (committed,
  dropped as duplicate, rolled back).
- TestSequencerTxnWithoutBuffer: Gazette allows a ring of 0; our smallest
  buffer is 1 message. The case runs with 1.
- TestSequencerProducerStatesRoundTripDuringDequeue: Gazette can checkpoint
  between `Step`s of one committed transaction, and its states then point
  at the next message to dequeue. Ours hands out a committed transaction
  whole, and the consumer checkpoints between batches, so there is no
  checkpoint in the middle of one. Its restart half (a sequencer restored
  from a checkpoint taken before an ACK replays the transaction once) runs.
- `HasPending`: Gazette counts transactions begun or extended since the last
  checkpoint; ours answers `has_pending(since)` for transactions begun at or
  after given offsets. The cases check it without a checkpoint (any open
  transaction) and after one (with the checkpoint's offsets).
- TestSequencerReplayReaderErrors, "reader errors are passed through": our
  replay takes an iterable, whose exceptions reach the caller unwrapped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest

from gazette_trio.message import frames as frames_module
from gazette_trio.message.message import Envelope
from gazette_trio.message.sequencer import Replay, ReplayError, Sequencer
from gazette_trio.message.uuids import ACK_TXN, CONTINUE_TXN, OUTSIDE_TXN
from gazette_trio.protocol import protocol as pb

UPSTREAM = "message/sequencer_test.go"
NOT_APPLICABLE = {
    "TestSequencerRingAddAndEvict": "asserts the internal layout of Gazette's ring buffer",
}

A = bytes.fromhex("0100000000aa")
B = bytes.fromhex("0100000000bb")
C = bytes.fromhex("0100000000cc")
ZERO = bytes(6)


class Journal:
    """Upstream's newTestMsgGenerator, keeping what it wrote for replays."""

    def __init__(self) -> None:
        self.spec = pb.JournalSpec(name="test/journal")
        self.offset = 0
        self.written: list[Envelope] = []

    def __call__(self, producer: bytes, clock: int, flags: int) -> Envelope:
        env = Envelope(
            self.spec,
            self.offset,
            self.offset + 100,
            {"str": str(clock)},
            producer,
            clock,
            flags,
        )
        self.offset += 102  # 2 bytes of dead space: envelopes need not be contiguous.
        self.written.append(env)
        return env

    def read(self, begin: int, end: int) -> list[Envelope]:
        return [e for e in self.written if begin <= e.begin and e.end <= end]


@pytest.fixture(params=["one-by-one", "batched"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["c", "python"])
def runs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(frames_module, "_c_run_starts", None)
    elif frames_module._c_run_starts is None:
        pytest.skip("the C speedups are not built")
    return str(request.param)


class Harness:
    def __init__(self, journal: Journal, mode: str) -> None:
        self.journal = journal
        self.mode = mode
        self.replays = 0

    def queue(
        self, seq: Sequencer, *envs: Envelope, replay_begin: int | None = None
    ) -> list[Envelope]:
        """Queue `envs`; return what they committed, serving any replay from
        the journal (it must begin at `replay_begin` if upstream's does)."""
        groups: Iterable[list[Envelope]] = (
            [[e] for e in envs] if self.mode == "one-by-one" else [list(envs)]
        )
        out: list[Envelope] = []
        for group in groups:
            for item in seq.queue_uncommitted(group):
                if not isinstance(item, Replay):
                    out.append(item)
                    continue
                self.replays += 1
                assert item.journal == self.journal.spec.name
                if replay_begin is not None:
                    assert item.begin == replay_begin, (item, replay_begin)
                selected = item.select(self.journal.read(item.begin, item.end))
                replayed = [e for e in selected if e.end <= item.end]
                if replayed:
                    assert replayed[0].begin == item.begin, "a replay starts at its transaction"
                out += selected
        return out


def begins(envs: Iterable[Envelope]) -> list[int]:
    return [e.begin for e in envs]


def test_sequencer_txn_sequence_cases(mode: str, runs: str) -> None:
    gen = Journal()
    h = Harness(gen, mode)
    seq = Sequencer(buffer_size=3)

    # Internal duplicates, served from memory.
    a1, a2 = gen(A, 1, CONTINUE_TXN), gen(A, 2, CONTINUE_TXN)
    a1_dup, a2_dup = gen(A, 1, CONTINUE_TXN), gen(A, 2, CONTINUE_TXN)
    a3_ack = gen(A, 3, ACK_TXN)
    assert h.queue(seq, a1, a2, a1_dup, a2_dup, a3_ack) == [a1, a2, a3_ack]
    assert not seq.has_pending()

    # An ACK without CONTINUEs before it: unusual, allowed.
    a4_ack = gen(A, 4, ACK_TXN)
    assert h.queue(seq, a4_ack) == [a4_ack]

    # An ACK of only some of the messages before it.
    a5 = gen(A, 5, CONTINUE_TXN)
    a7_no_ack = gen(A, 7, CONTINUE_TXN)  # not covered by a6_ack
    a6_ack = gen(A, 6, ACK_TXN)
    assert h.queue(seq, a5, a7_no_ack, a6_ack) == [a5, a6_ack]
    assert not seq.has_pending()

    # A rollback, interleaved with producer B.
    a7_rollback = gen(A, 7, CONTINUE_TXN)
    b1 = gen(B, 1, CONTINUE_TXN)
    a8_rollback = gen(A, 8, CONTINUE_TXN)
    b2 = gen(B, 2, CONTINUE_TXN)
    a6_abort = gen(A, 6, ACK_TXN)  # back to clock 6
    assert h.queue(seq, a7_rollback, b1, a7_rollback, a8_rollback, b2, a6_abort) == []
    assert seq.has_pending()  # B is still open

    # B's ACK (upstream: a replay, as the ring no longer holds b1).
    b3_ack = gen(B, 3, ACK_TXN)
    assert h.queue(seq, b3_ack, replay_begin=b1.begin) == [b1, b2, b3_ack]
    assert not seq.has_pending()

    # A transaction with duplicates inside it and from before it.
    b4 = gen(B, 4, CONTINUE_TXN)
    b1_dup = gen(B, 1, CONTINUE_TXN)
    b4_dup = gen(B, 4, CONTINUE_TXN)
    b5 = gen(B, 5, CONTINUE_TXN)
    b6 = gen(B, 6, CONTINUE_TXN)
    b2_dup = gen(B, 2, CONTINUE_TXN)
    b7 = gen(B, 7, CONTINUE_TXN)
    b8_ack = gen(B, 8, ACK_TXN)
    assert h.queue(seq, b4, b1_dup, b4_dup, b5, b6, b2_dup, b7, b8_ack, replay_begin=b4.begin) == [
        b4,
        b5,
        b6,
        b7,
        b8_ack,
    ]
    assert not seq.has_pending()

    # A partial ACK where every buffered message is past the ACK.
    b9 = gen(B, 9, CONTINUE_TXN)
    b11_no_ack = gen(B, 11, CONTINUE_TXN)
    b12_no_ack = gen(B, 12, CONTINUE_TXN)
    b13_no_ack = gen(B, 13, CONTINUE_TXN)
    b10_ack = gen(B, 10, ACK_TXN)
    assert h.queue(seq, b9, b11_no_ack, b12_no_ack, b13_no_ack, b10_ack, replay_begin=b9.begin) == [
        b9,
        b10_ack,
    ]
    assert not seq.has_pending()

    # Interleaved transactions of A and B, each ACKed.
    b11 = gen(B, 11, CONTINUE_TXN)
    a7 = gen(A, 7, CONTINUE_TXN)
    a8 = gen(A, 8, CONTINUE_TXN)
    b12 = gen(B, 12, CONTINUE_TXN)
    a9_ack = gen(A, 9, ACK_TXN)
    b13_ack = gen(B, 13, ACK_TXN)
    assert h.queue(seq, b11, a7, a8, b12, a9_ack, replay_begin=a7.begin) == [a7, a8, a9_ack]
    assert seq.has_pending()
    assert h.queue(seq, b13_ack, replay_begin=b11.begin) == [b11, b12, b13_ack]
    assert not seq.has_pending()

    # Back to an earlier ACK, then clocks used again.
    b8_ack_reset = gen(B, 8, ACK_TXN)
    b9_reuse = gen(B, 9, CONTINUE_TXN)
    b10_ack_reuse = gen(B, 10, ACK_TXN)
    assert h.queue(seq, b8_ack_reset, b9_reuse, b10_ack_reuse) == [b9_reuse, b10_ack_reuse]
    assert not seq.has_pending()


def test_sequencer_txn_without_buffer(mode: str, runs: str) -> None:
    gen = Journal()
    h = Harness(gen, mode)
    seq = Sequencer(buffer_size=1)
    a1, a2 = gen(A, 1, CONTINUE_TXN), gen(A, 2, CONTINUE_TXN)
    b1 = gen(B, 1, CONTINUE_TXN)
    a1_dup, a2_dup = gen(A, 1, CONTINUE_TXN), gen(A, 2, CONTINUE_TXN)
    a3_ack = gen(A, 3, ACK_TXN)
    b2, b3_ack = gen(B, 2, CONTINUE_TXN), gen(B, 3, ACK_TXN)

    assert h.queue(seq, a1, a2, b1, a1_dup, a2_dup, a3_ack, replay_begin=a1.begin) == [
        a1,
        a2,
        a3_ack,
    ]
    assert seq.has_pending()  # B is still open
    assert h.queue(seq, b2, b3_ack, replay_begin=b1.begin) == [b1, b2, b3_ack]
    assert not seq.has_pending()
    assert h.replays >= 1  # one message of buffer cannot hold these transactions


def test_sequencer_outside_txn_cases(mode: str, runs: str) -> None:
    gen = Journal()
    h = Harness(gen, mode)
    seq = Sequencer(buffer_size=1)

    # OUTSIDE_TXN messages commit at once.
    a1, a2 = gen(A, 1, OUTSIDE_TXN), gen(A, 2, OUTSIDE_TXN)
    assert h.queue(seq, a1) == [a1]
    assert h.queue(seq, a2) == [a2]
    assert not seq.has_pending()

    # Duplicates are dropped.
    assert h.queue(seq, gen(A, 1, OUTSIDE_TXN), gen(A, 2, OUTSIDE_TXN)) == []

    # Open CONTINUE_TXN messages before one are rolled back.
    a3_discard, a4_discard = gen(A, 3, CONTINUE_TXN), gen(A, 4, CONTINUE_TXN)
    a5 = gen(A, 5, OUTSIDE_TXN)
    assert h.queue(seq, a3_discard, a4_discard, a5) == [a5]
    assert not seq.has_pending()

    # Unknown flags are taken as OUTSIDE_TXN.
    a6_discard = gen(A, 6, CONTINUE_TXN)
    a7_bad_bits = gen(A, 7, 0x100)
    assert h.queue(seq, a6_discard, a7_bad_bits) == [a7_bad_bits]
    assert h.queue(seq, gen(A, 7, 0x100)) == []

    # Messages with a zero UUID always commit, and are not tracked.
    z1, z2 = gen(ZERO, 0, 0), gen(ZERO, 0, 0)
    assert h.queue(seq, z1) == [z1]
    assert h.queue(seq, z2) == [z2]
    assert not seq.has_pending()
    states = seq.producer_states()
    assert [(s.producer, s.last_ack, s.begin) for s in states] == [(A, 7, -1)]


def sorted_states(seq: Sequencer) -> list[tuple[bytes, int, int]]:
    return sorted((s.producer, s.begin, s.last_ack) for s in seq.producer_states())


def test_sequencer_producer_states_round_trip(mode: str, runs: str) -> None:
    gen = Journal()
    h = Harness(gen, mode)
    seq1 = Sequencer(buffer_size=12)

    a1, a2 = gen(A, 1, CONTINUE_TXN), gen(A, 2, CONTINUE_TXN)
    b1, b2 = gen(B, 1, CONTINUE_TXN), gen(B, 2, CONTINUE_TXN)
    c1_ack = gen(C, 1, ACK_TXN)
    b3_ack = gen(B, 3, ACK_TXN)
    c2 = gen(C, 2, CONTINUE_TXN)
    c1_rollback = gen(C, 1, ACK_TXN)
    a3_ack = gen(A, 3, ACK_TXN)
    z1 = gen(ZERO, 0, 0)

    assert h.queue(seq1, a1, a2, b1, b2, c1_ack) == [c1_ack]
    assert seq1.has_pending()
    assert h.queue(seq1, z1) == [z1]

    # A checkpoint; transactions begun before it are no longer "pending since" it.
    read_through = {"test/journal": z1.end}
    sources = seq1.checkpoint(read_through)
    assert not seq1.has_pending(read_through)

    # A sequencer restored from it has the same states.
    seq2 = Sequencer.from_checkpoint(pb_checkpoint(sources))
    assert not seq2.has_pending(read_through)
    expect = sorted([(A, a1.begin, 0), (B, b1.begin, 0), (C, -1, 1)])
    assert sorted_states(seq1) == expect
    assert sorted_states(seq2) == expect

    # Both commit the same from here; the restored one must replay.
    assert h.queue(seq1, b3_ack) == [b1, b2, b3_ack]
    replays = h.replays
    assert h.queue(seq2, b3_ack, replay_begin=b1.begin) == [b1, b2, b3_ack]
    assert h.replays == replays + 1

    assert h.queue(seq1, c2, c1_rollback) == []
    assert h.queue(seq2, c2, c1_rollback) == []

    assert h.queue(seq1, a3_ack) == [a1, a2, a3_ack]
    assert h.queue(seq2, a3_ack, replay_begin=a1.begin) == [a1, a2, a3_ack]


def pb_checkpoint(sources: dict[str, object]) -> object:
    from gazette_trio.protocol import consumer as pc

    checkpoint = pc.Checkpoint(sources=sources)  # type: ignore[arg-type]
    return pc.Checkpoint.parse(bytes(checkpoint))  # through the wire, as a store would


def test_sequencer_producer_states_round_trip_during_dequeue(mode: str, runs: str) -> None:
    # The restart half: a checkpoint taken before the ACK was read is
    # restored (twice), and reading the ACK again replays the transaction.
    gen = Journal()
    h = Harness(gen, mode)
    seq1 = Sequencer(buffer_size=12)
    a1, a2 = gen(A, 1, CONTINUE_TXN), gen(A, 2, CONTINUE_TXN)
    a3_ack = gen(A, 3, ACK_TXN)
    assert h.queue(seq1, a1, a2) == []
    sources = seq1.checkpoint({"test/journal": a2.end})
    seq2 = Sequencer.from_checkpoint(pb_checkpoint(sources))
    seq2 = Sequencer.from_checkpoint(pb_checkpoint(seq2.checkpoint({"test/journal": a2.end})))
    for seq in (seq1, seq2):
        assert sorted_states(seq) == [(A, a1.begin, 0)]

    assert h.queue(seq2, a3_ack, replay_begin=a1.begin) == [a1, a2, a3_ack]
    assert h.queue(seq1, a3_ack) == [a1, a2, a3_ack]
    assert sorted_states(seq1) == sorted_states(seq2) == [(A, -1, 3)]


def test_sequencer_producer_states_straddle_duplicate(mode: str, runs: str) -> None:
    gen = Journal()
    h = Harness(gen, mode)
    seq1 = Sequencer(buffer_size=12)
    a1, a2, a3 = gen(A, 1, CONTINUE_TXN), gen(A, 2, CONTINUE_TXN), gen(A, 3, CONTINUE_TXN)
    a1_dup, a2_dup, a3_dup = (
        gen(A, 1, CONTINUE_TXN),
        gen(A, 2, CONTINUE_TXN),
        gen(A, 3, CONTINUE_TXN),
    )
    a4_ack = gen(A, 4, ACK_TXN)

    assert h.queue(seq1, a1, a2, a3) == []
    seq2 = Sequencer.from_checkpoint(pb_checkpoint(seq1.checkpoint({"test/journal": a3.end})))

    assert h.queue(seq1, a1_dup, a2_dup, a3_dup, a4_ack) == [a1, a2, a3, a4_ack]
    # The restored sequencer cannot tell a1_dup..a3_dup from new messages
    # until the replay shows them as duplicates of a1..a3.
    assert h.queue(seq2, a1_dup, a2_dup, a3_dup, a4_ack, replay_begin=a1.begin) == [
        a1,
        a2,
        a3,
        a4_ack,
    ]


def test_sequencer_producer_pruning(mode: str, runs: str) -> None:
    gen = Journal()
    h = Harness(gen, mode)
    seq = Sequencer(buffer_size=12)
    # Clocks are 100 ns units shifted past 4 counter bits.
    a_cont = gen(A, 10 << 4, CONTINUE_TXN)
    b_cont = gen(B, 19 << 4, CONTINUE_TXN)
    b_ack = gen(B, 20 << 4, ACK_TXN)
    c_cont = gen(C, 30 << 4, CONTINUE_TXN)
    assert h.queue(seq, a_cont, b_cont, b_ack) == [b_cont, b_ack]
    assert h.queue(seq, c_cont) == []

    def states(horizon_ns: int) -> list[tuple[bytes, int, int]]:
        return sorted((s.producer, s.begin, s.last_ack) for s in seq.producer_states(horizon_ns))

    # A horizon that prunes none.
    assert states(20 * 100) == [
        (A, a_cont.begin, (10 << 4) - 1),
        (B, -1, 20 << 4),
        (C, c_cont.begin, (30 << 4) - 1),
    ]
    # A is pruned.
    assert states(19 * 100) == [(B, -1, 20 << 4), (C, c_cont.begin, (30 << 4) - 1)]
    # B is pruned.
    assert states(1) == [(C, c_cont.begin, (30 << 4) - 1)]


@pytest.mark.parametrize(
    ("corrupt", "expect"),
    [
        (None, None),
        (
            lambda e: Envelope(pb.JournalSpec(name="wrong/journal"), *_rest(e)),
            r"replay of wrong journal \(wrong/journal; expected test/journal\)",
        ),
        (
            lambda e: Envelope(e.journal, e.begin - 1, e.end, *_tail(e)),
            r"replay has wrong Begin \(101; expected >= 102\)",
        ),
        (
            lambda e: Envelope(e.journal, e.begin, e.end + 100, *_tail(e)),
            r"replay has wrong End \(302; expected <= 204\)",
        ),
    ],
)
def test_sequencer_replay_reader_errors(corrupt: object, expect: str | None) -> None:
    gen = Journal()
    seq = Sequencer(buffer_size=1)
    b1, a2, a3_ack = gen(B, 1, CONTINUE_TXN), gen(A, 2, CONTINUE_TXN), gen(A, 3, ACK_TXN)
    assert seq.queue_uncommitted([b1]) == []
    assert seq.queue_uncommitted([a2]) == []  # b1 or a2 leaves the buffer
    (replay,) = [r for r in seq.queue_uncommitted([a3_ack]) if isinstance(r, Replay)]
    assert (replay.journal, replay.begin, replay.end) == ("test/journal", a2.begin, a3_ack.begin)

    replayed = [a2] if corrupt is None else [corrupt(a2)]  # type: ignore[operator]
    if expect is None:
        assert replay.select(replayed) == [a2, a3_ack]
    else:
        with pytest.raises(ReplayError, match=f"^{expect}$"):
            replay.select(replayed)


def test_sequencer_replay_reader_errors_pass_through() -> None:
    gen = Journal()
    seq = Sequencer(buffer_size=1)
    b1, a2, a3_ack = gen(B, 1, CONTINUE_TXN), gen(A, 2, CONTINUE_TXN), gen(A, 3, ACK_TXN)
    seq.queue_uncommitted([b1, a2])
    (replay,) = [r for r in seq.queue_uncommitted([a3_ack]) if isinstance(r, Replay)]

    def failing() -> Iterator[Envelope]:
        raise EOFError("unexpected EOF")
        yield a2

    with pytest.raises(EOFError, match="unexpected EOF"):
        replay.select(failing())


def _rest(e: Envelope) -> tuple[object, ...]:
    return (e.begin, e.end, *_tail(e))


def _tail(e: Envelope) -> tuple[object, ...]:
    return (e.message, e.producer, e.clock, e.flags)
