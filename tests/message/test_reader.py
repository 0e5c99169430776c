"""Reading journals: read-uncommitted envelopes at exact offsets, and
read-committed iteration with replays, checkpoints and loud bad input."""

from __future__ import annotations

import pytest

from gazette_trio.broker import append
from gazette_trio.message import (
    JSON_LINES,
    PROTO_FIXED,
    DesyncError,
    FramingError,
    Publisher,
    Sequencer,
    committed_only,
    fixed_mapping,
    open_committed,
    open_uncommitted,
    read_through_of,
    sequence,
)
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from tests.message.conftest import Journals

FRAME = bytes([0x66, 0x33, 0x93, 0x36, 0x06, 0, 0, 0]) + b"\x0a\x01a\x12\x01b"


def body(message: dict[str, object]) -> dict[str, object]:
    """A JSON message without its `_meta`."""
    return {k: v for k, v in message.items() if k != "_meta"}


class Label(pb.Label):
    """A protobuf message without a UUID: read at least once."""

    def get_uuid(self) -> None:
        return None


async def test_uncommitted_envelopes_span_appends_with_exact_offsets(journals: Journals) -> None:
    await journals.create("events/a", JSON_LINES)
    await append(journals.client, "events/a", b'{"n":1}\n{"n":')
    await append(journals.client, "events/a", b'2}\n{"n":3}\n')
    async with open_uncommitted(journals.client, "events/a", dict, block=False) as reader:
        envelopes = [e async for e in reader]
    assert [(e.begin, e.end, e.message) for e in envelopes] == [
        (0, 8, {"n": 1}),
        (8, 16, {"n": 2}),
        (16, 24, {"n": 3}),
    ]
    assert envelopes[0].journal.name == "events/a"


async def test_reading_from_an_offset_and_to_an_end_offset(journals: Journals) -> None:
    await journals.create("events/a", JSON_LINES)
    await append(journals.client, "events/a", b'{"n":1}\n{"n":2}\n{"n":3}\n')
    async with open_uncommitted(
        journals.client, "events/a", dict, offset=8, end_offset=16
    ) as reader:
        assert [e.message async for e in reader] == [{"n": 2}]


async def test_read_committed_replays_a_transaction_larger_than_the_buffer(
    journals: Journals,
) -> None:
    await journals.create("events/a", JSON_LINES)
    mapping = fixed_mapping("events/a", JSON_LINES)
    big, small = Publisher(journals.appends), Publisher(journals.appends)
    for n in range(25):
        big.publish_uncommitted(mapping, {"big": n})
        if n % 5 == 0:
            small.publish_uncommitted(mapping, {"small": n})
    journals.appends.append("events/a", big.build_ack_intents()["events/a"])
    journals.appends.append("events/a", small.build_ack_intents()["events/a"])
    await journals.appends.drain()

    async with open_committed(
        journals.client, "events/a", dict, Sequencer(buffer_size=4), block=False
    ) as reader:
        got = [body(e.message) for e in committed_only([e async for e in reader])]
    assert got == [{"big": n} for n in range(25)] + [{"small": n} for n in range(0, 25, 5)]


async def test_read_committed_resumes_from_its_checkpoint(journals: Journals) -> None:
    """A reader that checkpoints mid-transaction and restarts from that
    checkpoint delivers the rest exactly once."""
    await journals.create("events/a", JSON_LINES)
    mapping = fixed_mapping("events/a", JSON_LINES)
    publisher = Publisher(journals.appends)
    publisher.publish_committed(mapping, {"n": 0})
    publisher.publish_uncommitted(mapping, {"n": 1})
    publisher.publish_uncommitted(mapping, {"n": 2})
    await journals.appends.drain()

    async with open_committed(journals.client, "events/a", dict, block=False) as reader:
        first = [e.message["n"] async for e in reader]
        checkpoint = pc.Checkpoint(sources=reader.checkpoint())
    assert first == [0]
    assert read_through_of(checkpoint) == {"events/a": reader.read_through}

    publisher.publish_uncommitted(mapping, {"n": 3})
    journals.appends.append("events/a", publisher.build_ack_intents()["events/a"])
    await journals.appends.drain()

    resumed = Sequencer.from_checkpoint(pc.Checkpoint.parse(bytes(checkpoint)))
    offset = read_through_of(checkpoint)["events/a"]
    async with open_committed(
        journals.client, "events/a", dict, resumed, offset=offset, block=False
    ) as reader:
        rest = [e.message["n"] for e in committed_only([e async for e in reader])]
    assert rest == [1, 2, 3]


async def test_sequence_serves_several_journals_with_one_sequencer(journals: Journals) -> None:
    """How the consumer runtime drives it: batches from any journal in, the
    committed envelopes out, replays read from the right journal."""
    for name in ("events/a", "events/b"):
        await journals.create(name, JSON_LINES)
    publisher = Publisher(journals.appends)
    for n in range(6):
        publisher.publish_uncommitted(fixed_mapping("events/a", JSON_LINES), {"a": n})
        publisher.publish_uncommitted(fixed_mapping("events/b", JSON_LINES), {"b": n})
    for journal, intent in publisher.build_ack_intents().items():
        journals.appends.append(journal, intent)
    await journals.appends.drain()

    sequencer = Sequencer(buffer_size=3)
    got = []
    for name in ("events/a", "events/b"):
        async with open_uncommitted(journals.client, name, dict, block=False) as reader:
            batch = [e async for e in reader]
        committed = await sequence(sequencer, batch, journals.client, lambda spec: dict)
        got.extend(body(e.message) for e in committed_only(committed))
    assert got == [{"a": n} for n in range(6)] + [{"b": n} for n in range(6)]


async def test_malformed_json_line_raises_naming_journal_and_offset(journals: Journals) -> None:
    await journals.create("events/a", JSON_LINES)
    await append(journals.client, "events/a", b'{"n":1}\n{"n":\n{"n":3}\n')
    async with open_uncommitted(journals.client, "events/a", dict, block=False) as reader:
        assert [e.message for e in await reader.next_batch()] == [{"n": 1}]
        with pytest.raises(FramingError) as caught:
            await reader.next_batch()
        assert (caught.value.journal, caught.value.offset) == ("events/a", 8)
        # The reader goes on after the bad line.
        assert [e.message for e in await reader.next_batch()] == [{"n": 3}]


async def test_garbage_in_a_fixed_frame_journal_is_reported_then_skipped(
    journals: Journals,
) -> None:
    await journals.create("protos/a", PROTO_FIXED)
    await append(journals.client, "protos/a", FRAME + b"garbage" + FRAME)
    async with open_uncommitted(journals.client, "protos/a", Label, block=False) as reader:
        first = await reader.next_batch()
        assert [(e.begin, e.message.name) for e in first] == [(0, "a")]
        with pytest.raises(DesyncError) as caught:
            await reader.next_batch()
        assert (caught.value.journal, caught.value.offset, caught.value.length) == (
            "protos/a",
            len(FRAME),
            7,
        )
        assert [e.begin for e in await reader.next_batch()] == [len(FRAME) + 7]


async def test_truncated_fixed_frame_at_the_end_of_a_read_is_an_error(journals: Journals) -> None:
    await journals.create("protos/a", PROTO_FIXED)
    await append(journals.client, "protos/a", FRAME + FRAME[:10])
    async with open_uncommitted(journals.client, "protos/a", Label, block=False) as reader:
        assert len(await reader.next_batch()) == 1
        with pytest.raises(FramingError, match=r"'protos/a' at offset 14: .*incomplete frame"):
            await reader.next_batch()


async def test_journal_without_a_known_content_type_is_refused(journals: Journals) -> None:
    await journals.create("raw/a", "application/octet-stream")
    with pytest.raises(ValueError, match=r"raw/a.*application/octet-stream"):
        async with open_uncommitted(journals.client, "raw/a", dict, block=False):
            pass
