"""The word-count example in the in-process harness, with its own config.toml.

What the example promises (examples/word_count/README.md):

- every word of every committed text line is counted exactly once, in the
  SQLite store of the shard that owns the word, across crashes and
  hand-offs between members;
- the output journal carries, read-committed, each change of a word's
  count with its new total: the deltas of a word add up to its count, and
  each total is the previous one plus the delta (no change is lost or seen
  twice);
- a query for a word is answered by the shard reading the delta partition
  the word's deltas are published to;
- bad input fails the shard that reads it, naming the journal and offset.

Real-process runs (`gazette-trio serve`, the query proxied between two
members) are in test_word_count_serve.py.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from word_count import COUNTS_JOURNAL, QueryService, WordCount, words_of
from word_count_pb.word_count import QueryRequest

from gazette_trio import aio
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from gazette_trio.testing.cluster import Cluster

from .inprocess import open_example_cluster, wait_until

LINES = ["examples/word-count/lines/part-000", "examples/word-count/lines/part-001"]
DELTAS = [f"examples/word-count/deltas/part-00{i}" for i in range(4)]

TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "A fox, a dog, and THE END of the story!",
    "Numbers like 42 and under_scores split words: foo_bar42baz",
    "Élan and naïve words count as words too; élan again",
]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with open_example_cluster("word_count", WordCount, tmp_path) as c:
        yield c


def expected_counts(lines: list[str]) -> dict[str, int]:
    return dict(collections.Counter(w for line in lines for w in words_of(line)))


async def publish_lines(c: Cluster, lines: list[str]) -> None:
    """Spread `lines` over the two text-line partitions."""
    for i, journal in enumerate(LINES):
        await c.publish(journal, [{"text": t} for t in lines[i :: len(LINES)]])


async def output_totals(c: Cluster) -> dict[str, int]:
    """Word totals from the output journal, checking each change as it goes."""
    totals: dict[str, int] = {}
    for message in await c.read_committed(COUNTS_JOURNAL):
        word, delta, count = message["word"], message["delta"], message["count"]
        assert count == totals.get(word, 0) + delta, f"{word}: a change lost or repeated"
        totals[word] = count
    return totals


async def wait_for_counts(c: Cluster, expected: dict[str, int]) -> None:
    async def done() -> bool:
        return await output_totals(c) == expected

    await wait_until(done)


def query_service(c: Cluster) -> QueryService:
    """The Query service of some member (any member may be asked)."""
    consumer = next(h.consumer for h in c.members.values() if h.consumer is not None)
    assert consumer is not None
    return QueryService(WordCount(), consumer)


async def query(c: Cluster, word: str) -> tuple[int, str]:
    """(count, shard) of `word`, asked of the member that is its shard's primary
    (in-process members cannot dial each other; forwarding is tested with
    real processes)."""
    shard_id = await query_service(c).shard_of(word)
    suffix, _ = await c.wait_for_primary(shard_id)
    consumer = c.members[suffix].consumer
    assert consumer is not None
    reply = await QueryService(WordCount(), consumer).count(QueryRequest(word=word))
    return reply.count, reply.shard


async def test_every_word_is_counted_once_and_each_change_published_with_its_total(
    cluster: Cluster,
) -> None:
    await cluster.add_member("alpha")
    await publish_lines(cluster, TEXT)
    expected = expected_counts(TEXT)
    assert expected["the"] == 4 and expected["élan"] == 2 and "42" not in expected

    await wait_for_counts(cluster, expected)
    for word, n in expected.items():
        count, _ = await query(cluster, word)
        assert count == n, word
    assert (await query(cluster, "zebra"))[0] == 0


async def test_exactly_once_across_member_crashes_and_hand_offs(cluster: Cluster) -> None:
    await cluster.add_member("alpha")
    await cluster.add_member("beta")
    lines: list[str] = []
    for round_ in range(6):
        batch = [f"w{(round_ * 7 + i) % 13} x{i % 5} round {round_}" for i in range(30)]
        batch = [line.replace("w", "word").replace("x", "extra") for line in batch]
        lines += batch
        await publish_lines(cluster, batch)
        await trio.sleep(0.05)
        if round_ == 1:
            await cluster.crash("alpha")
            await cluster.add_member("gamma")
        if round_ == 3:
            await cluster.crash("beta")
            await cluster.add_member("delta")
    expected = expected_counts(lines)
    await wait_for_counts(cluster, expected)
    for word in ("round", "extra", "word"):
        count, _ = await query(cluster, word)
        assert count == expected[word]


async def test_a_query_goes_to_the_shard_reading_the_partition_of_the_words_deltas(
    cluster: Cluster,
) -> None:
    await cluster.add_member("alpha")
    await publish_lines(cluster, TEXT)
    expected = expected_counts(TEXT)
    await wait_for_counts(cluster, expected)

    partition_of: dict[str, str] = {}
    for journal in DELTAS:
        for message in await cluster.read_committed(journal):
            assert partition_of.setdefault(message["word"], journal) == journal
    assert set(partition_of) == set(expected)
    assert len(set(partition_of.values())) > 1, "the words should spread over partitions"

    service = query_service(cluster)
    specs = {s.id: s for s in service.consumer.service.resolver.shards_with_source(DELTAS[0])}
    assert list(specs) == ["count-000"]
    for word, journal in partition_of.items():
        _, shard = await query(cluster, word)
        reader = service.consumer.service.resolver.shards_with_source(journal)
        assert [s.id for s in reader] == [shard], word


async def test_a_query_names_what_is_wrong_with_it(cluster: Cluster) -> None:
    alpha = await cluster.add_member("alpha")
    service = query_service(cluster)
    with pytest.raises(aio.InvalidArgument, match="'two words' is not one word"):
        await service.count(QueryRequest(word="two words"))
    with pytest.raises(aio.InvalidArgument, match="'' is not one word"):
        await service.count(QueryRequest(word=""))
    with pytest.raises(aio.NotFound, match="shard count-999: SHARD_NOT_FOUND"):
        await service.count(QueryRequest(word="fox", shard="count-999"))
    with pytest.raises(aio.InvalidArgument, match=r"header: not an encoded protocol\.Header"):
        await service.count(QueryRequest(word="fox", header=b"\x08\xff"))
    # A forwarded request is only accepted by the member it was forwarded
    # to, of the same etcd cluster (as Gazette's resolver checks).
    assert alpha.consumer is not None
    ours = alpha.consumer.service.resolver.header(alpha.consumer.session.state)
    elsewhere = pb.Header(
        process_id=pb.ProcessSpecId(zone="other", suffix="member-x"), etcd=ours.etcd
    )
    with pytest.raises(aio.FailedPrecondition, match="ProcessId doesn't match our own"):
        await service.count(QueryRequest(word="fox", header=bytes(elsewhere)))
    other_cluster = pb.Header(process_id=ours.process_id, etcd=pb.HeaderEtcd(cluster_id=7))
    with pytest.raises(aio.FailedPrecondition, match="Etcd ClusterId doesn't match our own"):
        await service.count(QueryRequest(word="fox", header=bytes(other_cluster)))


async def test_a_malformed_line_fails_its_shard_naming_journal_and_offset(
    cluster: Cluster,
) -> None:
    member = await cluster.add_member("alpha")
    await cluster.publish(LINES[0], [{"text": "fine words"}, {"txt": "oops"}])

    async def failure() -> Any:
        assert member.consumer is not None
        state = member.consumer.session.state
        for a in state.assignments_by_item.get("split-000", ()):
            if a.status.code == pc.ReplicaStatusCode.FAILED:
                return a.status
        return None

    status = await wait_until(failure)
    assert f"journal {LINES[0]} offset " in status.errors[0]
    assert 'expected {"text": <string>}' in status.errors[0]
    assert "'txt': 'oops'" in status.errors[0]
    # The member and its other shards go on.
    await cluster.publish(LINES[1], [{"text": "still counted"}])

    async def counted() -> bool:
        return await output_totals(cluster) == {"still": 1, "counted": 1}

    await wait_until(counted)


def test_the_query_header_field_is_wire_identical_to_gazettes_header_message() -> None:
    """`bytes header = 1` carries an encoded protocol.Header; a reader that
    declares the field as the message type (as Gazette's examples do) decodes
    the same bytes."""
    header = pb.Header(
        process_id=pb.ProcessSpecId(zone="a", suffix="member-1"),
        route=pb.Route(members=[pb.ProcessSpecId(zone="a", suffix="member-1")], primary=0),
        etcd=pb.HeaderEtcd(cluster_id=1, member_id=2, revision=42, raft_term=3),
    )
    wire = bytes(QueryRequest(header=bytes(header), word="fox"))

    # protocol.Header nested as field 1 of a message, encoded by betterproto2.
    as_message = bytes(pb.ReadRequest(header=header))  # ReadRequest.header is field 1 too
    assert wire.startswith(as_message)
    assert pb.Header.parse(QueryRequest.parse(wire).header) == header
