"""End to end: a word-count application run by the real consumer runtime.

Input lines are JSON messages in `lines/part-000`; the application counts
words into a fenced `MemoryStore` (shared by members, as an external
database would be) and, at each transaction's end, publishes the deltas it
counted as uncommitted messages to `counts/part-000`. Exactly-once means:
the committed state holds each line's words once, and a read-committed
reader of the output sees deltas summing to exactly the same counts, across
crashes mid-transaction and re-assignment to another member.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from gazette_trio import Envelope, Publisher, Recorder, Shard
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.consumer.stores.memory import MemoryDatabase, MemoryStore
from gazette_trio.message import Committed, fixed_mapping
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from gazette_trio.testing.cluster import Cluster, open_cluster

LINES = "lines/part-000"
COUNTS = "counts/part-000"
NDJSON = "application/x-ndjson"

Line = dict[str, Any]


class WordCount:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db
        self.pending: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.out = fixed_mapping(COUNTS, NDJSON)

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> MemoryStore:
        return MemoryStore(self.db)

    def new_message(self, spec: pb.JournalSpec) -> type[dict[str, Any]]:
        return dict

    async def consume_message(
        self, shard: Shard, store: MemoryStore, envelope: Envelope[Line], publisher: Publisher
    ) -> None:
        words = envelope.message["text"].split()
        if "MALFORMED" in words:
            raise ValueError(f"cannot count line at offset {envelope.begin}")
        for word in words:
            store.state[word] = store.state.get(word, 0) + 1
            self.pending[shard.id][word] += 1

    async def finalize_txn(self, shard: Shard, store: MemoryStore, publisher: Publisher) -> None:
        for word, delta in sorted(self.pending.pop(shard.id, {}).items()):
            publisher.publish_uncommitted(self.out, {"word": word, "delta": delta})


def shard(min_s: float = 0.0, max_s: float = 1.0) -> pc.ShardSpec:
    return pc.ShardSpec(
        id="count-000",
        sources=[pc.ShardSpecSource(journal=LINES)],
        min_txn_duration=datetime.timedelta(seconds=min_s),
        max_txn_duration=datetime.timedelta(seconds=max_s),
    )


def count_shards(n: int) -> list[pc.ShardSpec]:
    """Shards count-000, count-001, ... all reading LINES, in transactions
    of at most a second."""
    return [
        pc.ShardSpec(
            id=f"count-{i:03d}",
            sources=[pc.ShardSpecSource(journal=LINES)],
            max_txn_duration=datetime.timedelta(seconds=1),
        )
        for i in range(n)
    ]


@contextlib.asynccontextmanager
async def open_word_count(
    tmp_path: Path,
    app: type[WordCount] = WordCount,
    *,
    sources: Sequence[str] = (LINES,),
    shards: Sequence[pc.ShardSpec] = (),
) -> AsyncIterator[tuple[Cluster, MemoryDatabase]]:
    """An in-process cluster for `app` on one MemoryDatabase: the `sources`
    journals and COUNTS created, and `shards` applied."""
    db = MemoryDatabase()
    async with open_cluster(
        lambda: app(db),
        data_dir=tmp_path,
        journals=[new_journal_spec(j, content_type=NDJSON) for j in (*sources, COUNTS)],
        shards=shards,
    ) as c:
        yield c, db


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Cluster, MemoryDatabase]]:
    async with open_word_count(tmp_path) as opened:
        yield opened


def expected_counts(lines: list[str]) -> dict[str, int]:
    return dict(collections.Counter(w for line in lines for w in line.split()))


async def output_counts(c: Cluster) -> dict[str, int]:
    totals: collections.Counter[str] = collections.Counter()
    for message in await c.read_committed(COUNTS):
        totals[message["word"]] += message["delta"]
    return dict(totals)


async def test_words_are_counted_and_published_exactly_once(
    cluster: tuple[Cluster, MemoryDatabase], autojump_clock: trio.testing.MockClock
) -> None:
    c, db = cluster
    await c.apply_shards([shard()])
    await c.add_member("alpha")
    lines = [f"the quick fox {i % 7}" for i in range(50)]
    await c.publish(LINES, [{"text": t} for t in lines])
    head = (await c.write_heads([LINES]))[LINES]
    s = await c.wait_read_through("count-000", {LINES: head})

    assert db.committed_state(s.fqn) == expected_counts(lines)
    assert await output_counts(c) == expected_counts(lines)
    read_through, publish_at = s.progress()
    assert read_through == {LINES: head}
    assert COUNTS in publish_at


async def count_through_a_crash_and_a_reassignment(c: Cluster, spec: pc.ShardSpec) -> list[str]:
    """Publish lines in rounds to a shard on member alpha, crash alpha
    mid-transaction (the spec's min duration keeps one open), let member
    beta take the shard over, and wait until it read every line. Returns
    the lines published."""
    await c.apply_shards([spec])
    await c.add_member("alpha")
    lines: list[str] = []
    for round_ in range(6):
        batch = [f"w{(round_ * 31 + i) % 11} x{i % 3}" for i in range(40)]
        lines += batch
        await c.publish(LINES, [{"text": t} for t in batch])
        await trio.sleep(0.1)
        if round_ == 2:
            await c.crash("alpha")
            await c.add_member("beta")
    head = (await c.write_heads([LINES]))[LINES]
    await c.wait_read_through("count-000", {LINES: head})
    return lines


async def test_exactly_once_across_a_crash_and_a_reassignment(
    cluster: tuple[Cluster, MemoryDatabase], autojump_clock: trio.testing.MockClock
) -> None:
    c, db = cluster
    lines = await count_through_a_crash_and_a_reassignment(c, shard(min_s=0.2, max_s=0.5))
    s = await c.wait_read_through("count-000", {})

    assert db.committed_state(s.fqn) == expected_counts(lines)
    assert await output_counts(c) == expected_counts(lines)


async def test_a_graceful_stop_hands_the_shard_to_another_member(
    cluster: tuple[Cluster, MemoryDatabase], autojump_clock: trio.testing.MockClock
) -> None:
    c, db = cluster
    await c.apply_shards([shard()])
    await c.add_member("alpha")
    await c.add_member("beta")
    first, _ = await c.wait_for_primary("count-000")
    other = "beta" if first == "alpha" else "alpha"
    lines = [f"a b {i}" for i in range(20)]
    await c.publish(LINES, [{"text": t} for t in lines[:10]])
    await c.stop(first)
    await c.publish(LINES, [{"text": t} for t in lines[10:]])
    head = (await c.write_heads([LINES]))[LINES]
    s = await c.wait_read_through("count-000", {LINES: head})
    assert c.primary_of("count-000") is not None and c.primary_of("count-000")[0] == other  # type: ignore[index]
    assert db.committed_state(s.fqn) == expected_counts(lines)
    assert await output_counts(c) == expected_counts(lines)


async def test_an_application_error_fails_only_its_shard_with_the_error_in_its_status(
    cluster: tuple[Cluster, MemoryDatabase], autojump_clock: trio.testing.MockClock
) -> None:
    c, _ = cluster
    await c.apply_shards([shard()])
    member = await c.add_member("alpha")
    await c.publish(LINES, [{"text": "fine"}, {"text": "MALFORMED here"}])
    with trio.fail_after(30):
        while True:
            assert member.consumer is not None
            state = member.consumer.session.state
            statuses = [a.status for a in state.assignments_by_item.get("count-000", ())]
            if statuses and statuses[0].code == pc.ReplicaStatusCode.FAILED:
                break
            await trio.sleep(0.05)
    assert "cannot count line at offset" in statuses[0].errors[0]
    # The member itself goes on.
    assert member.error is None and not member.done.is_set()


class BatchWordCount(WordCount):
    """The same counting, a read batch at a time, from messages alone."""

    async def consume_messages(
        self,
        shard: Shard,
        store: MemoryStore,
        batch: Committed,
        publisher: Publisher,
    ) -> None:
        messages = batch.messages()  # No envelope objects.
        assert messages == [envelope.message for envelope in batch]
        for message in messages:
            for word in message["text"].split():
                store.state[word] = store.state.get(word, 0) + 1
                self.pending[shard.id][word] += 1


async def test_a_batch_consumer_counts_from_messages_without_envelopes(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_word_count(tmp_path, BatchWordCount) as (c, db):
        await c.apply_shards([shard()])
        await c.add_member("alpha")
        lines = [f"the lazy dog {i % 5}" for i in range(60)]
        await c.publish(LINES, [{"text": t} for t in lines])
        head = (await c.write_heads([LINES]))[LINES]
        s = await c.wait_read_through("count-000", {LINES: head})
        assert db.committed_state(s.fqn) == expected_counts(lines)
        assert await output_counts(c) == expected_counts(lines)
