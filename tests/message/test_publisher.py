"""Publishing: UUIDs stamped in append order, ACK intents that commit a
transaction, and mappings that pick the journals Gazette's would."""

from __future__ import annotations

import pytest
import trio

from gazette_trio.broker import append, apply_journals, delete
from gazette_trio.broker.reader import read_journal
from gazette_trio.message import (
    ACK_TXN,
    CONTINUE_TXN,
    JSON_LINES,
    OUTSIDE_TXN,
    Clock,
    JSONMessage,
    NoPartitions,
    Partitions,
    Publisher,
    committed_only,
    fixed_mapping,
    fnv1a_32,
    framing_by_content_type,
    modulo_mapping,
    open_committed,
    open_partitions,
    open_uncommitted,
    rendezvous_mapping,
)
from tests.message.conftest import Journals


def test_fnv1a_matches_known_vectors() -> None:
    """Go's hash/fnv New32a values for standard test strings."""
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


async def test_publish_committed_appends_an_outside_txn_frame(journals: Journals) -> None:
    await journals.create("events/one", JSON_LINES)
    publisher = Publisher(journals.appends, producer=bytes.fromhex("0b0000000001"))
    message = JSONMessage({"n": 1})
    response = await publisher.publish_committed(fixed_mapping("events/one", JSON_LINES), message)
    assert response.commit is not None and response.commit.journal == "events/one"

    content = await read_journal(journals.client, "events/one")
    assert content == framing_by_content_type(JSON_LINES).marshal(message)
    async with open_uncommitted(journals.client, "events/one", dict, block=False) as reader:
        (env,) = [e async for e in reader]
    assert env.producer == publisher.producer and env.flags == OUTSIDE_TXN
    assert (env.begin, env.end) == (0, len(content)) and env.message["n"] == 1


async def test_uuid_clocks_increase_in_append_order(journals: Journals) -> None:
    await journals.create("events/one", JSON_LINES)
    publisher = Publisher(journals.appends, Clock.at(1_700_000_000 * 10**9))
    mapping = fixed_mapping("events/one", JSON_LINES)
    for n in range(20):
        publisher.publish_committed(mapping, {"n": n})
    await journals.appends.drain()
    async with open_uncommitted(journals.client, "events/one", dict, block=False) as reader:
        envelopes = [e async for e in reader]
    assert [e.message["n"] for e in envelopes] == list(range(20))
    clocks = [e.clock for e in envelopes]
    assert clocks == sorted(clocks) and len(set(clocks)) == 20


async def test_ack_intents_commit_what_was_published_uncommitted(journals: Journals) -> None:
    """Nothing is read-committed until the ACK intents are appended; then
    every message of the transaction is, in every journal it touched."""
    await journals.create("events/a", JSON_LINES)
    await journals.create("events/b", JSON_LINES)
    publisher = Publisher(journals.appends)
    for n in range(3):
        publisher.publish_uncommitted(fixed_mapping("events/a", JSON_LINES), {"n": n})
    publisher.publish_uncommitted(fixed_mapping("events/b", JSON_LINES), JSONMessage({"n": 9}))
    await journals.appends.drain()

    async with open_committed(journals.client, "events/a", dict, block=False) as reader:
        assert [e async for e in reader] == []

    intents = publisher.build_ack_intents()
    assert list(intents) == ["events/a", "events/b"]
    assert publisher.build_ack_intents() == {}  # The transaction is closed.
    for journal, intent in intents.items():
        await append(journals.client, journal, intent)

    for journal, expect in (("events/a", [0, 1, 2]), ("events/b", [9])):
        async with open_committed(journals.client, journal, dict, block=False) as reader:
            committed = [e async for e in reader]
        assert [e.message["n"] for e in committed_only(committed)] == expect
        ack = committed[-1]
        assert ack.flags == ACK_TXN and ack.message["_meta"]["ack"] is True
        assert all(e.flags == CONTINUE_TXN for e in committed[:-1])
        assert ack.clock > committed[-2].clock


async def test_recovered_intents_roll_back_what_followed_them(journals: Journals) -> None:
    """A shard that recovers its checkpoint appends that checkpoint's intents
    again; the messages it published after the checkpoint never commit."""
    await journals.create("events/a", JSON_LINES)
    mapping = fixed_mapping("events/a", JSON_LINES)
    publisher = Publisher(journals.appends)
    publisher.publish_uncommitted(mapping, {"n": 1})
    checkpointed = publisher.build_ack_intents()
    journals.appends.append("events/a", checkpointed["events/a"])
    publisher.publish_uncommitted(mapping, {"n": 2})  # The next transaction; then a crash.
    await journals.appends.drain()

    # Recovery: the checkpoint's intents again, then a new publisher.
    await append(journals.client, "events/a", checkpointed["events/a"])
    recovered = Publisher(journals.appends)
    recovered.publish_uncommitted(mapping, {"n": 3})
    journals.appends.append("events/a", recovered.build_ack_intents()["events/a"])
    await journals.appends.drain()

    async with open_committed(journals.client, "events/a", dict, block=False) as reader:
        got = [e.message["n"] for e in committed_only([e async for e in reader])]
    assert got == [1, 3]


async def test_validate_hook_refuses_a_message_before_anything_is_appended(
    journals: Journals,
) -> None:
    class Checked(JSONMessage):
        def validate(self) -> None:
            if "n" not in self:
                raise ValueError("n is required")

    await journals.create("events/a", JSON_LINES)
    publisher = Publisher(journals.appends)
    with pytest.raises(ValueError, match="n is required"):
        publisher.publish_committed(fixed_mapping("events/a", JSON_LINES), Checked())
    assert await read_journal(journals.client, "events/a") == b""


async def test_mappings_over_partitions_picked_by_selector(journals: Journals) -> None:
    for i in range(4):
        await journals.create(f"clicks/part-{i:03}", JSON_LINES, {"topic": "clicks"})
    await journals.create("other/part-000", JSON_LINES, {"topic": "other"})
    partitions = Partitions(journals.client, "topic=clicks")
    await partitions.refresh()
    names = [j.name for j in partitions.journals]
    assert names == [f"clicks/part-{i:03}" for i in range(4)]

    def key(message: dict[str, str]) -> str:
        return message["user"]

    modulo = modulo_mapping(partitions, key)
    rendezvous = rendezvous_mapping(partitions, key)
    for user in ("alice", "bob", "carol", "dave"):
        digest = fnv1a_32(user.encode())
        assert modulo({"user": user}) == (names[digest % 4], JSON_LINES)
        weights = [digest ^ fnv1a_32(n.encode()) for n in names]
        assert rendezvous({"user": user})[0] == names[weights.index(max(weights))]


async def test_a_mapping_kept_as_a_class_attribute_is_not_bound_as_a_method(
    journals: Journals,
) -> None:
    """Applications keep their mappings on the class; a plain function there
    would be bound to the instance and called with it as the message."""
    await journals.create("clicks/part-000", JSON_LINES, {"topic": "clicks"})
    await journals.create("totals", JSON_LINES)
    partitions = Partitions(journals.client, "topic=clicks")
    await partitions.refresh()

    class App:
        out = fixed_mapping("totals", JSON_LINES)
        clicks = modulo_mapping(partitions, key=lambda m: m["user"])

    app = App()
    assert app.out({"n": 1}) == ("totals", JSON_LINES)
    assert app.clicks({"user": "alice"}) == ("clicks/part-000", JSON_LINES)
    publisher = Publisher(journals.appends)
    response = await publisher.publish_committed(app.out, {"n": 1})
    assert response.commit is not None and response.commit.journal == "totals"


async def test_rendezvous_moves_only_keys_of_an_added_journal(journals: Journals) -> None:
    for i in range(3):
        await journals.create(f"clicks/part-{i:03}", JSON_LINES, {"topic": "clicks"})
    partitions = Partitions(journals.client, "topic=clicks")
    await partitions.refresh()
    mapping = rendezvous_mapping(partitions, lambda m: m)
    keys = [f"user-{i}" for i in range(300)]
    before = {k: mapping(k)[0] for k in keys}
    await journals.create("clicks/part-003", JSON_LINES, {"topic": "clicks"})
    await partitions.refresh()
    after = {k: mapping(k)[0] for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert moved and all(after[k] == "clicks/part-003" for k in moved)


async def test_no_matching_partitions_is_an_error_naming_the_selector(journals: Journals) -> None:
    partitions = Partitions(journals.client, "topic=nothing")
    await partitions.refresh()
    with pytest.raises(NoPartitions, match="topic=nothing"):
        modulo_mapping(partitions, lambda m: m)("key")


async def test_open_partitions_follows_journals_created_and_deleted_while_open(
    journals: Journals, autojump_clock: trio.testing.MockClock
) -> None:
    await journals.create("clicks/part-000", JSON_LINES, {"topic": "clicks"})
    async with open_partitions(journals.client, "topic=clicks") as partitions:
        assert len(partitions.journals) == 1
        await journals.create("clicks/part-001", JSON_LINES, {"topic": "clicks"})
        # The watch delivers the change without any polling interval.
        with trio.fail_after(1):
            while len(partitions.journals) != 2:
                await trio.sleep(0.001)
        assert [j.name for j in partitions.journals] == ["clicks/part-000", "clicks/part-001"]
        await apply_journals(journals.client, [delete("clicks/part-000")])
        with trio.fail_after(1):
            while len(partitions.journals) != 1:
                await trio.sleep(0.001)
        assert [j.name for j in partitions.journals] == ["clicks/part-001"]
