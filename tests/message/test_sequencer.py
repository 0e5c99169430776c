"""The sequencer turns at-least-once, uncommitted envelopes into exactly-once,
committed ones: scenarios from Gazette's sequencer tests, then a property
test over random producers, transactions, crashes, duplicate deliveries and
consumer restarts from checkpoints."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gazette_trio.message import (
    ACK_TXN,
    CONTINUE_TXN,
    OUTSIDE_TXN,
    Envelope,
    ProducerState,
    Replay,
    ReplayError,
    Sequencer,
    producer_states_of,
    read_through_of,
)
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb

A = pb.JournalSpec(name="a/journal")
B = pb.JournalSpec(name="b/journal")
P1 = bytes.fromhex("010000000001")
P2 = bytes.fromhex("010000000002")


def env(
    journal: pb.JournalSpec, begin: int, producer: bytes, clock: int, flags: int, body: Any = None
) -> Envelope:
    return Envelope(journal, begin, begin + 10, body, producer, clock, flags)


def bodies(out: list[Envelope | Replay]) -> list[Any]:
    """Message bodies of committed envelopes, ACKs left out."""
    assert all(isinstance(e, Envelope) for e in out)
    return [e.message for e in out if isinstance(e, Envelope) and not e.is_ack]


# -- scenarios


def test_outside_txn_commits_at_once_and_duplicates_are_dropped() -> None:
    seq = Sequencer()
    first = env(A, 0, P1, 10, OUTSIDE_TXN, "m1")
    assert seq.queue_uncommitted([first]) == [first]
    assert seq.queue_uncommitted([env(A, 10, P1, 10, OUTSIDE_TXN, "m1 again")]) == []
    assert seq.queue_uncommitted([env(A, 20, P1, 9, OUTSIDE_TXN, "older")]) == []
    assert bodies(seq.queue_uncommitted([env(A, 30, P1, 11, OUTSIDE_TXN, "m2")])) == ["m2"]


def test_ack_commits_the_transaction_without_head_of_line_blocking() -> None:
    """P1's transaction commits as soon as its ACK is read, though P2's
    transaction, interleaved with it, is still open."""
    seq = Sequencer()
    out = seq.queue_uncommitted(
        [
            env(A, 0, P1, 1, CONTINUE_TXN, "p1-a"),
            env(A, 10, P2, 1, CONTINUE_TXN, "p2-a"),
            env(A, 20, P1, 2, CONTINUE_TXN, "p1-b"),
            env(A, 30, P1, 3, ACK_TXN),
        ]
    )
    assert bodies(out) == ["p1-a", "p1-b"]
    assert out[-1].is_ack  # type: ignore[union-attr]
    assert seq.has_pending()
    assert bodies(seq.queue_uncommitted([env(A, 40, P2, 2, ACK_TXN)])) == ["p2-a"]
    assert not seq.has_pending()


def test_duplicate_continue_messages_are_dropped() -> None:
    seq = Sequencer()
    out = seq.queue_uncommitted(
        [
            env(A, 0, P1, 1, CONTINUE_TXN, "a"),
            env(A, 10, P1, 2, CONTINUE_TXN, "b"),
            env(A, 20, P1, 1, CONTINUE_TXN, "a again"),
            env(A, 30, P1, 2, CONTINUE_TXN, "b again"),
            env(A, 40, P1, 3, ACK_TXN),
            env(A, 50, P1, 2, CONTINUE_TXN, "b after its ACK"),
        ]
    )
    assert bodies(out) == ["a", "b"]
    assert not seq.has_pending()


def test_ack_at_the_last_ack_clock_rolls_back_the_open_transaction() -> None:
    """A producer that recovered its last checkpoint re-sends that
    checkpoint's ACK; what it published after it never committed."""
    seq = Sequencer()
    assert bodies(
        seq.queue_uncommitted([env(A, 0, P1, 1, CONTINUE_TXN, "a"), env(A, 10, P1, 2, ACK_TXN)])
    ) == ["a"]
    seq.queue_uncommitted(
        [env(A, 20, P1, 3, CONTINUE_TXN, "lost"), env(A, 30, P1, 4, CONTINUE_TXN, "lost")]
    )
    assert seq.queue_uncommitted([env(A, 40, P1, 2, ACK_TXN)]) == []
    assert seq.buffered == 0 and not seq.has_pending()
    out = seq.queue_uncommitted([env(A, 50, P1, 5, CONTINUE_TXN, "b"), env(A, 60, P1, 6, ACK_TXN)])
    assert bodies(out) == ["b"]


def test_ack_below_pending_clocks_commits_only_what_it_covers() -> None:
    """The recovered ACK of a pipelined producer commits its transaction and
    drops the messages of the next, which never committed."""
    seq = Sequencer()
    out = seq.queue_uncommitted(
        [
            env(A, 0, P1, 1, CONTINUE_TXN, "txn1-a"),
            env(A, 10, P1, 2, CONTINUE_TXN, "txn1-b"),
            env(A, 20, P1, 4, CONTINUE_TXN, "txn2-a"),
            env(A, 30, P1, 3, ACK_TXN),
        ]
    )
    assert bodies(out) == ["txn1-a", "txn1-b"]
    assert bodies(seq.queue_uncommitted([env(A, 40, P1, 5, ACK_TXN)])) == []


def test_ack_below_the_last_ack_is_logged_and_resets_the_producer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An older checkpoint was recovered upstream: exactly-once degrades to
    at-least-once, loudly."""
    seq = Sequencer()
    seq.queue_uncommitted([env(A, 0, P1, 10, OUTSIDE_TXN, "a")])
    seq.queue_uncommitted([env(A, 10, P1, 11, CONTINUE_TXN, "pending")])
    with caplog.at_level(logging.ERROR):
        assert seq.queue_uncommitted([env(A, 20, P1, 5, ACK_TXN)]) == []
    assert "weakened to at-least-once" in caplog.text and "a/journal" in caplog.text
    # Messages re-published after the reset are processed again.
    assert bodies(seq.queue_uncommitted([env(A, 30, P1, 7, OUTSIDE_TXN, "again")])) == ["again"]


def test_outside_txn_after_open_transaction_rolls_it_back(caplog: pytest.LogCaptureFixture) -> None:
    seq = Sequencer()
    seq.queue_uncommitted([env(A, 0, P1, 1, CONTINUE_TXN, "pending")])
    with caplog.at_level(logging.ERROR):
        assert bodies(seq.queue_uncommitted([env(A, 10, P1, 2, OUTSIDE_TXN, "now")])) == ["now"]
    assert "mixed publish_committed and publish_uncommitted" in caplog.text
    assert bodies(seq.queue_uncommitted([env(A, 20, P1, 3, ACK_TXN)])) == []


def test_unknown_flags_are_logged_and_treated_as_outside_txn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seq = Sequencer()
    with caplog.at_level(logging.ERROR):
        assert bodies(seq.queue_uncommitted([env(A, 0, P1, 1, 0x100, "odd")])) == ["odd"]
    assert "Flags(100)" in caplog.text


def test_messages_without_uuid_are_always_delivered() -> None:
    seq = Sequencer()
    none = Envelope(A, 0, 10, "no uuid", bytes(6), 0, 0)
    assert seq.queue_uncommitted([none, none]) == [none, none]
    assert seq.producer_states() == []


def test_producers_are_tracked_per_journal() -> None:
    """The same producer writing to two journals has two sequences."""
    seq = Sequencer()
    seq.queue_uncommitted([env(A, 0, P1, 5, OUTSIDE_TXN, "a")])
    assert bodies(seq.queue_uncommitted([env(B, 0, P1, 3, OUTSIDE_TXN, "b")])) == ["b"]


def test_an_ack_with_no_transaction_is_delivered_alone() -> None:
    seq = Sequencer()
    out = seq.queue_uncommitted([env(A, 0, P1, 1, ACK_TXN)])
    assert len(out) == 1 and out[0].is_ack  # type: ignore[union-attr]


# -- buffer overflow and replays


def test_transaction_larger_than_the_buffer_is_replayed() -> None:
    seq = Sequencer(buffer_size=4)
    txn = [env(A, 10 * i, P1, i + 1, CONTINUE_TXN, f"m{i}") for i in range(10)]
    other = env(A, 100, P2, 1, CONTINUE_TXN, "other")
    ack = env(A, 110, P1, 11, ACK_TXN)
    out = seq.queue_uncommitted([*txn, other, ack])
    assert len(out) == 1 and isinstance(out[0], Replay)
    replay = out[0]
    assert (replay.journal, replay.begin) == ("a/journal", 0)
    # The buffer kept a suffix of the transaction; the replay covers the rest.
    assert replay.end == replay.tail[0].begin if len(replay.tail) > 1 else replay.end == 110
    journal = [*txn, other, ack]
    selected = replay.select(e for e in journal if replay.begin <= e.begin and e.end <= replay.end)
    assert [e.message for e in selected if not e.is_ack] == [f"m{i}" for i in range(10)]
    assert selected[-1] is ack
    assert seq.buffered <= 4


def test_replay_of_the_wrong_range_is_refused() -> None:
    seq = Sequencer(buffer_size=1)
    seq.queue_uncommitted([env(A, 0, P1, 1, CONTINUE_TXN), env(A, 10, P1, 2, CONTINUE_TXN)])
    (replay,) = seq.queue_uncommitted([env(A, 20, P1, 3, ACK_TXN)])
    assert isinstance(replay, Replay)
    with pytest.raises(ReplayError, match="b/journal"):
        replay.select([env(B, 0, P1, 1, CONTINUE_TXN)])
    with pytest.raises(ReplayError, match=r"wrong End \(40; expected <= 20\)"):
        replay.select([env(A, 30, P1, 1, CONTINUE_TXN)])


# -- checkpoints


def test_producer_states_round_trip_through_a_checkpoint() -> None:
    seq = Sequencer()
    seq.queue_uncommitted(
        [
            env(A, 0, P1, 5, OUTSIDE_TXN),
            env(A, 10, P2, 7, CONTINUE_TXN),
            env(B, 0, P2, 9, ACK_TXN),
        ]
    )
    sources = seq.checkpoint({"a/journal": 20, "b/journal": 10})
    checkpoint = pc.Checkpoint.parse(bytes(pc.Checkpoint(sources=sources)))
    assert read_through_of(checkpoint) == {"a/journal": 20, "b/journal": 10}
    assert sorted(producer_states_of(checkpoint), key=lambda s: (s.journal, s.producer)) == [
        ProducerState("a/journal", P1, 5, -1),
        ProducerState("a/journal", P2, 6, 10),
        ProducerState("b/journal", P2, 9, -1),
    ]
    entry = checkpoint.sources["a/journal"].producers[1]
    assert entry.id == P2 and entry.state is not None and entry.state.begin == 10


def test_checkpoint_needs_the_read_through_of_every_journal_with_producers() -> None:
    seq = Sequencer()
    seq.queue_uncommitted([env(A, 0, P1, 5, OUTSIDE_TXN)])
    with pytest.raises(ValueError, match="a/journal"):
        seq.checkpoint({})


def test_restored_open_transaction_is_replayed_from_where_it_began() -> None:
    """A transaction open at checkpoint time began before read-through; its
    ACK, read after the restart, asks for those messages again."""
    journal = [
        env(A, 0, P1, 1, CONTINUE_TXN, "before-1"),
        env(A, 10, P1, 2, CONTINUE_TXN, "before-2"),
        env(A, 20, P1, 3, CONTINUE_TXN, "after"),
        env(A, 30, P1, 4, ACK_TXN),
    ]
    first = Sequencer()
    assert first.queue_uncommitted(journal[:2]) == []
    checkpoint = pc.Checkpoint(sources=first.checkpoint({"a/journal": 20}))

    restored = Sequencer.from_checkpoint(checkpoint)
    assert restored.has_pending()
    (replay,) = restored.queue_uncommitted(journal[2:])
    assert isinstance(replay, Replay) and (replay.begin, replay.end) == (0, 20)
    out = replay.select(journal[:2])
    assert [e.message for e in out if not e.is_ack] == ["before-1", "before-2", "after"]


def test_has_pending_since_offsets() -> None:
    seq = Sequencer()
    seq.queue_uncommitted([env(A, 50, P1, 1, CONTINUE_TXN)])
    assert seq.has_pending({"a/journal": 50})
    assert not seq.has_pending({"a/journal": 60})


def test_pruning_forgets_producers_far_older_than_the_newest() -> None:
    hour_ns = 3600 * 10**9
    hour_clock = (hour_ns // 100) << 4
    seq = Sequencer()
    seq.queue_uncommitted(
        [
            env(A, 0, P1, 1000, OUTSIDE_TXN),
            env(A, 10, P2, 1000 + 2 * hour_clock, OUTSIDE_TXN),
        ]
    )
    assert len(seq.producer_states(prune_horizon_ns=3 * hour_ns)) == 2
    assert [s.producer for s in seq.producer_states(prune_horizon_ns=hour_ns)] == [P2]
    assert [s.producer for s in seq.producer_states()] == [P2]  # P1 was forgotten


# -- the property: exactly the committed messages, each once, in order


@dataclass
class Producer:
    id: bytes
    clock: int = 100
    pending: list[str] = field(default_factory=list)
    last_ack: Envelope | None = None


@dataclass
class World:
    """Producers appending to one journal, and the expected committed output."""

    journal: list[Envelope] = field(default_factory=list)
    committed: dict[bytes, list[str]] = field(default_factory=dict)
    serial: int = 0

    def append(self, producer: bytes, clock: int, flags: int, body: Any) -> Envelope:
        begin = self.journal[-1].end if self.journal else 0
        e = Envelope(A, begin, begin + 7 + len(self.journal) % 5, body, producer, clock, flags)
        self.journal.append(e)
        return e


def is_append_batch(frames: list[Envelope]) -> bool:
    """Whether `frames` could be one append batch of Gazette publishers: per
    producer, only OUTSIDE_TXN messages, or an ACK of the previous
    transaction followed by CONTINUE_TXN messages of the next (an ACK is
    appended before anything published after its transaction, and the next
    ACK waits for those appends to be acknowledged)."""
    by_producer: dict[bytes, list[int]] = {}
    for e in frames:
        by_producer.setdefault(e.producer, []).append(e.flags)
    for flags in by_producer.values():
        if all(f == OUTSIDE_TXN for f in flags):
            continue
        rest = flags[1:] if flags[0] == ACK_TXN else flags
        if any(f != CONTINUE_TXN for f in rest):
            return False
    return True


ops = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(0, 2), st.booleans()),
        st.tuples(st.just("publish"), st.integers(0, 2), st.just(False)),
        st.tuples(st.just("ack"), st.integers(0, 2)),
        st.tuples(st.just("crash"), st.integers(0, 2)),
        st.tuples(st.just("dup_suffix"), st.integers(1, 6)),
        st.tuples(st.just("dup_any"), st.integers(0, 12)),
        st.tuples(st.just("consume"), st.integers(1, 8)),
        st.tuples(st.just("checkpoint")),
        st.tuples(st.just("restart")),
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@example(program=[("publish", 0, False), ("dup_suffix", 1), ("ack", 0)], buffer_size=1000, seed=0)
@example(
    program=[
        ("publish", 0, False),
        ("consume", 1),
        ("checkpoint",),
        ("publish", 0, False),
        ("dup_any", 1),
        ("ack", 0),
        ("restart",),
    ],
    buffer_size=1,
    seed=0,
)
@given(program=ops, buffer_size=st.sampled_from([1, 2, 5, 1000]), seed=st.integers(0, 2**32))
def test_read_committed_is_exactly_the_committed_messages_once_in_order(
    program: list[tuple[Any, ...]], buffer_size: int, seed: int
) -> None:
    world = World()
    producers = [Producer(bytes([1, 0, 0, 0, 0, i])) for i in range(3)]
    next_id = [10]

    # The consumer: a sequencer, what it delivered, where it is, its checkpoint.
    seq = Sequencer(buffer_size=buffer_size)
    delivered: list[Envelope] = []
    position = 0
    saved: tuple[int, pc.Checkpoint, int] = (0, pc.Checkpoint(), 0)

    def consume(count: int) -> None:
        nonlocal position
        batch = world.journal[position : position + count]
        if not batch:
            return
        position += len(batch)
        for item in seq.queue_uncommitted(batch):
            if isinstance(item, Replay):
                replayed = [e for e in world.journal if item.begin <= e.begin and e.end <= item.end]
                delivered.extend(item.select(replayed))
            else:
                delivered.append(item)

    for op in program:
        kind = op[0]
        if kind == "publish":
            p = producers[op[1]]
            p.clock += 1
            world.serial += 1
            body = f"{p.id.hex()}#{world.serial}"
            if op[2]:
                world.append(p.id, p.clock, OUTSIDE_TXN, body)
                world.committed.setdefault(p.id, []).append(body)
                p.last_ack = None  # OUTSIDE_TXN: nothing to re-send on recovery
                p.pending = []  # Mixing modes rolls back the open transaction, as in Gazette.
            else:
                world.append(p.id, p.clock, CONTINUE_TXN, body)
                p.pending.append(body)
        elif kind == "ack":
            p = producers[op[1]]
            p.clock += 1
            p.last_ack = world.append(p.id, p.clock, ACK_TXN, None)
            world.committed.setdefault(p.id, []).extend(p.pending)
            p.pending = []
        elif kind == "crash":
            # The producer recovers its last checkpoint: it re-sends that
            # checkpoint's ACK (rolling back what followed) and goes on under
            # a new producer id, as a restarted Gazette shard does.
            p = producers[op[1]]
            if p.last_ack is not None:
                ack = p.last_ack
                world.append(ack.producer, ack.clock, ACK_TXN, None)
            p.pending = []
            next_id[0] += 1
            p.id = bytes([1, 0, 0, 0, 1, next_id[0]])
            p.last_ack = None
        elif kind == "dup_suffix":
            # An append retried after a lost acknowledgement lands twice.
            suffix = world.journal[-op[1] :]
            if is_append_batch(suffix):
                for e in suffix:
                    world.append(e.producer, e.clock, e.flags, e.message)
        elif kind == "dup_any":
            # Any earlier message may be delivered again; recent ones are
            # the interesting ones (still in open transactions).
            candidates = [e for e in world.journal if not e.is_ack]
            if candidates:
                e = candidates[-1 - op[1] % len(candidates)]
                world.append(e.producer, e.clock, e.flags, e.message)
        elif kind == "consume":
            consume(op[1])
        elif kind == "checkpoint":
            read_through = {"a/journal": world.journal[position - 1].end} if position else {}
            sources = seq.checkpoint(read_through) if position else {}
            checkpoint = pc.Checkpoint.parse(bytes(pc.Checkpoint(sources=sources)))
            saved = (len(delivered), checkpoint, position)
        elif kind == "restart":
            # The consumer crashes: what it delivered since its checkpoint is
            # undone, and it resumes from the checkpoint.
            count, checkpoint, position = saved
            del delivered[count:]
            seq = Sequencer.from_checkpoint(checkpoint, buffer_size=buffer_size)
            if checkpoint.sources:
                offset = read_through_of(checkpoint)["a/journal"]
                position = sum(1 for e in world.journal if e.end <= offset)

    consume(len(world.journal))

    got: dict[bytes, list[str]] = {}
    for e in delivered:
        if not e.is_ack:
            got.setdefault(e.producer, []).append(e.message)
    expected = {k: v for k, v in world.committed.items() if v}
    assert got == expected
    # Open transactions never hold more than the buffer allows.
    assert seq.buffered <= buffer_size
