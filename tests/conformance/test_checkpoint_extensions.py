"""Upstream: consumer/protocol/checkpoint_extensions_test.go (go.gazette.dev/core v0.103.0).

Building a Checkpoint from read-through offsets, producer states and ACK
intents, and flattening it back, against `gazette_trio.message.sequencer`
(Gazette's `BuildCheckpoint` is `Sequencer.checkpoint` plus the ACK
intents; `FlattenProducerStates` and `FlattenReadThrough` are
`producer_states_of` and `read_through_of`). Every case applies; the
regression fixture (bytes written by Gazette's old map-based encoding) is
copied from the upstream test as the case's input.
"""

from __future__ import annotations

from gazette_trio.message.sequencer import (
    ProducerState,
    Sequencer,
    producer_states_of,
    read_through_of,
)
from gazette_trio.protocol import consumer as pc

UPSTREAM = "consumer/protocol/checkpoint_extensions_test.go"
NOT_APPLICABLE: dict[str, str] = {}

READ_THROUGH = {"foo": 111, "bar": 222}
STATES = [
    ProducerState("foo", bytes([1, 2, 3, 4, 5, 6]), last_ack=456, begin=789),
    ProducerState("bar", bytes([0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF]), last_ack=789, begin=101),
]
ACK_INTENTS = {"baz": b"intent", "bing": b"other-intent"}


def entry(producer: bytes, last_ack: int, begin: int) -> pc.CheckpointSourceProducerEntry:
    return pc.CheckpointSourceProducerEntry(
        id=producer, state=pc.CheckpointProducerState(last_ack=last_ack, begin=begin)
    )


def by_journal(states: list[ProducerState]) -> list[ProducerState]:
    return sorted(states, key=lambda s: s.journal)  # order is not kept


def test_round_trip() -> None:
    checkpoint = pc.Checkpoint(
        sources=Sequencer(STATES).checkpoint(READ_THROUGH), ack_intents=dict(ACK_INTENTS)
    )
    assert checkpoint.ack_intents == {"baz": b"intent", "bing": b"other-intent"}
    assert checkpoint.sources == {
        "foo": pc.CheckpointSource(
            read_through=111, producers=[entry(bytes([1, 2, 3, 4, 5, 6]), 456, 789)]
        ),
        "bar": pc.CheckpointSource(
            read_through=222,
            producers=[entry(bytes([0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF]), 789, 101)],
        ),
    }
    # The inputs come back.
    assert by_journal(producer_states_of(checkpoint)) == by_journal(STATES)
    assert read_through_of(checkpoint) == READ_THROUGH
    # And survive the wire.
    again = pc.Checkpoint.parse(bytes(checkpoint))
    assert by_journal(producer_states_of(again)) == by_journal(STATES)


# Written by Gazette's earlier Checkpoint, which kept producer states in a
# map<string, ProducerState>; the repeated entries that replaced it must
# decode it.
MAP_ENCODED = bytes(
    [
        0x0A, 0x21, 0x0A, 0x03, 0x62, 0x61, 0x72, 0x12, 0x1A, 0x08, 0xDE, 0x01, 0x12, 0x15, 0x0A, 0x06,
        0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x12, 0x0B, 0x09, 0x15, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10, 0x65, 0x0A, 0x21, 0x0A, 0x03, 0x66, 0x6F, 0x6F, 0x12, 0x1A, 0x08, 0x6F, 0x12, 0x16,
        0x0A, 0x06, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x12, 0x0C, 0x09, 0xC8, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x10, 0x95, 0x06, 0x12, 0x0D, 0x0A, 0x03, 0x62, 0x61, 0x7A, 0x12, 0x06, 0x69,
        0x6E, 0x74, 0x65, 0x6E, 0x74, 0x12, 0x14, 0x0A, 0x04, 0x62, 0x69, 0x6E, 0x67, 0x12, 0x0C, 0x6F,
        0x74, 0x68, 0x65, 0x72, 0x2D, 0x69, 0x6E, 0x74, 0x65, 0x6E, 0x74,
    ]
)  # fmt: skip


def test_producer_id_map_regression() -> None:
    checkpoint = pc.Checkpoint.parse(MAP_ENCODED)
    assert by_journal(producer_states_of(checkpoint)) == [
        ProducerState("bar", bytes([0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF]), last_ack=789, begin=101),
        ProducerState("foo", bytes([1, 2, 3, 4, 5, 6]), last_ack=456, begin=789),
    ]
    assert read_through_of(checkpoint) == {"foo": 111, "bar": 222}
    assert checkpoint.ack_intents == {"baz": b"intent", "bing": b"other-intent"}
    # A sequencer resumes from it.
    resumed = Sequencer.from_checkpoint(checkpoint)
    assert by_journal(resumed.producer_states()) == by_journal(producer_states_of(checkpoint))
