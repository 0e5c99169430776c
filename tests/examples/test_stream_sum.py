"""The stream-sum example in the in-process harness, with its own config.toml.

What the example promises (examples/stream_sum/README.md):

- the summer's CRC-64 is Go's `crc64.ECMA`, chained as `crc64.Update`;
- chunks and sums are JSON lines as Go's encoding/json writes upstream's
  `stream_sum.Chunk` and `stream_sum.Sum` (UUID string, ID as an array of 16
  numbers, base64 Data, null in the final chunk, Value a uint64 number), and
  the summer reads chunks written so;
- the chunker's verifier names the stream and the discrepancy of every kind
  of violation: a second sum, a wrong sum, a sum before the stream's end, a
  sum that does not come, a re-reading that disagrees;
- chunks published committed, with no transactions (as upstream's chunker
  does, and `chunker.py --committed`), are summed the same;
- with the real summer, every stream's sum arrives exactly once, also while
  members crash and hot standbys take over;
- the verification has teeth: a summer that publishes its sums outside the
  transaction (committed at once) is caught by the chunker as soon as a
  crash makes a member redo a transaction, while the real summer passes the
  very same scenario;
- a chunk out of its stream's order fails the summer's shard, naming the
  stream, the journal and the offset; the summer keeps its sums in
  upstream's table `sums(id, seq_no, val)`, and refuses a shard whose
  `store` label asks for RocksDB.

Real processes (`gazette-trio serve` and `chunker.py`) are in
test_stream_sum_serve.py; many kill cycles in tests/chaos.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from chunker import (
    ChunkerOptions,
    Report,
    Verifier,
    Violation,
    generate_and_verify,
    stream_id,
    stream_label,
)
from stream_sum import (
    SUMS_JOURNAL,
    Chunk,
    Sum,
    Summer,
    chunk_message,
    crc64,
    parse_chunk,
    sum_message,
)

from gazette_trio.message import Envelope, open_uncommitted
from gazette_trio.message.json_framing import JSONFraming
from gazette_trio.message.uuids import OUTSIDE_TXN, UUID
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb
from gazette_trio.testing.cluster import Cluster

from .inprocess import open_example_cluster, wait_until

CHUNKS = [f"examples/stream-sum/chunks/part-00{i}" for i in range(4)]


def test_crc64_is_gos_ecma_table_chained_like_update() -> None:
    # CRC-64/XZ's check value: Go's crc64.Checksum([]byte("123456789"), ECMA table).
    assert crc64(0, b"123456789") == 0x995DC9BBDF1939FA
    assert crc64(crc64(0, b"1234"), b"56789") == crc64(0, b"123456789")
    assert crc64(0x1234, b"") == 0x1234  # The final, empty chunk leaves the sum as it is.
    # Upstream's TestUpdateSumCases: one chunk or two, the same sum.
    assert crc64(0, b"battery horse") == 0xAE763109C1192ED6
    assert crc64(0, b"battery") == 0x2BE55FC66A381C84
    assert crc64(0x2BE55FC66A381C84, b" horse") == 0xAE763109C1192ED6


ID = bytes(range(16))
GO_ID = "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]"
A_UUID = "9f2952f3-c6a3-11ea-8802-080607050309"


class TestUpstreamJSON:
    """The lines upstream's Go chunker and summer write and read."""

    def test_a_chunk_is_the_json_of_upstreams_chunk_struct(self) -> None:
        chunk = chunk_message(ID, 3, b"battery")
        chunk.set_uuid(UUID(A_UUID))
        line = JSONFraming().marshal(chunk)
        assert json.loads(line) == json.loads(
            f'{{"UUID":"{A_UUID}","ID":{GO_ID},"SeqNo":3,"Data":"YmF0dGVyeQ=="}}'
        )
        # A stream's final chunk: Go's nil []byte is null.
        assert chunk_message(ID, 4, b"")["Data"] is None

    def test_a_sum_is_the_json_of_upstreams_sum_struct_value_a_uint64(self) -> None:
        total = sum_message(ID, 21, 0xFFFFFFFFFFFFFFFF)
        total.set_uuid(UUID(A_UUID))
        assert (
            JSONFraming().marshal(total)
            == (
                f'{{"ID":{GO_ID},"SeqNo":21,"Value":18446744073709551615,"UUID":"{A_UUID}"}}\n'
            ).encode()
        )

    @pytest.mark.parametrize("data", ["null", '""'])
    def test_the_summer_reads_chunks_as_gos_encoder_writes_them(self, data: str) -> None:
        spec = pb.JournalSpec(name="examples/stream-sum/chunks/part-000")
        lines = (
            f'{{"UUID":"{A_UUID}","ID":{GO_ID},"SeqNo":1,"Data":"YmF0dGVyeQ=="}}\n'
            f'{{"UUID":"{A_UUID}","ID":{GO_ID},"SeqNo":2,"Data":{data}}}\n'
        ).encode()
        decoder = JSONFraming().decoder(spec, Chunk, 0)
        decoder.feed(0, lines)
        decoded = decoder.decode()
        assert decoded.error is None
        frames = decoded.envelopes
        assert [parse_chunk(e) for e in frames] == [(ID, 1, b"battery"), (ID, 2, b"")]
        assert all(
            isinstance(e.message, Chunk) and str(e.message.get_uuid()) == A_UUID for e in frames
        )

    @pytest.mark.parametrize(
        ("doc", "problem"),
        [
            ({"ID": "00010203", "SeqNo": 1, "Data": None}, "expected a chunk"),
            ({"ID": list(range(15)), "SeqNo": 1, "Data": None}, "expected a chunk"),
            ({"ID": [256] * 16, "SeqNo": 1, "Data": None}, "expected a chunk"),
            ({"ID": ["a"] * 16, "SeqNo": 1, "Data": None}, "expected a chunk"),
            ({"ID": list(ID), "SeqNo": 0, "Data": None}, "expected a chunk"),
            ({"ID": list(ID), "SeqNo": 1, "Data": "*"}, "Data is not base64"),
        ],
    )
    def test_a_malformed_chunk_is_named_with_its_offset(self, doc: Any, problem: str) -> None:
        spec = pb.JournalSpec(name="chunks")
        envelope = Envelope.of(spec, 40, 90, Chunk(doc))
        with pytest.raises(ValueError, match=f"journal chunks offset 40: .*{problem}"):
            parse_chunk(envelope)


RUN = "5eed0001"
S0, S1 = stream_id(RUN, 0), stream_id(RUN, 1)


def test_stream_ids_carry_the_run_and_the_stream_number() -> None:
    assert stream_id(RUN, 258) == bytes.fromhex("5eed0001" + "00" * 10 + "0102")
    assert stream_label(stream_id(RUN, 258)) == "5eed0001-258"
    with pytest.raises(ValueError, match="a stream ID is 16 bytes, not 3"):
        chunk_message(b"abc", 1, b"")


class TestVerifier:
    """Each violation is reported with the stream and what was wrong."""

    def verifier(self) -> Verifier:
        v = Verifier(RUN)
        v.expect(S0, 3, 0xABC, now=10.0)
        return v

    def test_the_right_sum_once_verifies_the_stream(self) -> None:
        v = self.verifier()
        v.observe(sum_message(S0, 3, 0xABC), offset=0, now=10.5)
        assert v.verified == {S0: 10.5} and not v.expected and v.latencies == [0.5]
        v.audit([(0, sum_message(S0, 3, 0xABC))])

    def test_a_second_sum_is_a_violation(self) -> None:
        v = self.verifier()
        v.observe(sum_message(S0, 3, 0xABC), offset=0, now=10.5)
        with pytest.raises(
            Violation, match=r"stream 5eed0001-0: a second sum .* at sums offset 99"
        ):
            v.observe(sum_message(S0, 3, 0xABC), offset=99, now=11.0)

    def test_a_wrong_sum_is_a_violation(self) -> None:
        v = self.verifier()
        with pytest.raises(
            Violation,
            match="stream 5eed0001-0: wrong sum at sums offset 7: expected seq 3 sum 0000000000000abc, "
            "got seq 3 sum 0000000000000abd",
        ):
            v.observe(sum_message(S0, 3, 0xABD), offset=7, now=10.5)

    def test_a_sum_before_the_stream_ended_is_a_violation(self) -> None:
        v = self.verifier()
        with pytest.raises(
            Violation, match=r"stream 5eed0001-1: a sum .* before the chunker wrote"
        ):
            v.observe(sum_message(S1, 2, 1), offset=0, now=10.5)

    def test_a_late_sum_is_a_violation(self) -> None:
        v = self.verifier()
        v.check_overdue(now=39.0, delay=30.0)
        with pytest.raises(
            Violation, match=r"stream 5eed0001-0: no sum 30\.5 s after its final chunk"
        ):
            v.check_overdue(now=40.5, delay=30.0)

    def test_a_malformed_sum_is_a_violation(self) -> None:
        with pytest.raises(Violation, match="sums offset 5: expected"):
            self.verifier().observe(Sum(ID=list(S0), SeqNo="3"), offset=5, now=1.0)

    def test_sums_of_other_runs_are_ignored(self) -> None:
        v = self.verifier()
        v.observe(sum_message(stream_id("5eed0002", 0), 3, 1), offset=0, now=10.5)
        assert v.other_runs == 1 and S0 in v.expected

    def test_a_re_reading_must_find_each_verified_sum_exactly_once(self) -> None:
        v = self.verifier()
        v.observe(sum_message(S0, 3, 0xABC), offset=0, now=10.5)
        twice = [(0, sum_message(S0, 3, 0xABC)), (50, sum_message(S0, 3, 0xABC))]
        with pytest.raises(Violation, match="stream 5eed0001-0: 2 sums on re-reading, not 1"):
            v.audit(twice)
        with pytest.raises(Violation, match="stream 5eed0001-0: 0 sums on re-reading, not 1"):
            v.audit([])


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with open_example_cluster("stream_sum", Summer, tmp_path) as c:
        yield c


def options(**kw: Any) -> ChunkerOptions:
    base: dict[str, Any] = {"chunks": 6, "concurrency": 12, "txn_size": 8, "delay": 20.0, "seed": 7}
    return ChunkerOptions(**{**base, **kw})


async def test_every_streams_sum_arrives_exactly_once(cluster: Cluster) -> None:
    await cluster.add_member("alpha")
    with trio.fail_after(30):
        report = await generate_and_verify(cluster.journals, options(streams=60))
    assert report.streams == 60 and len(report.latencies) == 60
    assert report.chunks == 60 * 7
    assert "60 streams, each sum arrived exactly once and matched" in report.summary()


async def test_chunks_published_committed_as_upstreams_chunker_are_summed_too(
    cluster: Cluster,
) -> None:
    await cluster.add_member("alpha")
    with trio.fail_after(30):
        report = await generate_and_verify(cluster.journals, options(streams=30, committed=True))
    assert len(report.latencies) == 30
    # No transactions: nothing but chunks in the partitions, each committed alone.
    for journal in CHUNKS:
        async with open_uncommitted(cluster.journals, journal, Chunk, block=False) as reader:
            flags = {envelope.flags async for envelope in reader}
        assert flags == {OUTSIDE_TXN}


async def test_exactly_once_while_members_crash_and_standbys_take_over(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stream_sum")
    zone_of = {"alpha": "a", "beta": "b", "gamma": "c"}
    for name, zone in zone_of.items():
        await cluster.add_member(name, zone=zone)
    stop = trio.Event()
    rng = random.Random(3)
    crashed: list[str] = []
    reports: list[Report] = []

    async def chunker() -> None:
        reports.append(
            await generate_and_verify(cluster.journals, options(streams=0, rate=800.0), stop=stop)
        )

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chunker)
            for i in range(4):
                await trio.sleep(0.6)
                victim = rng.choice(sorted(cluster.members))
                await cluster.crash(victim)
                crashed.append(victim)
                zone = zone_of.pop(victim)
                zone_of[f"member-{i}"] = zone
                await cluster.add_member(f"member-{i}", zone=zone)
            await trio.sleep(0.5)
            stop.set()

    (report,) = reports
    assert len(crashed) == 4 and report.streams > 50
    assert len(report.latencies) == report.streams
    takeovers = [r for r in caplog.records if "first commit here" in r.getMessage()]
    assert takeovers, "no shard changed hands: the crashes tested nothing"
    assert all(r.failover_s >= 0 for r in takeovers)  # type: ignore[attr-defined]


class CommittedSumsSummer(Summer):
    """A planted bug: sums are published committed, outside the transaction,
    so a transaction that is redone after a crash publishes them again."""

    async def consume_message(self, shard: Any, store: Any, envelope: Any, publisher: Any) -> None:
        class Immediate:
            def publish_uncommitted(self, mapping: Any, message: Any) -> Any:
                return publisher.publish_committed(mapping, message)

        await super().consume_message(shard, store, envelope, Immediate())


def long_transactions(spec: pc.ShardSpec) -> None:
    """Transactions stay open for 3 s, so a crash lands inside one."""
    spec.min_txn_duration = datetime.timedelta(seconds=3)
    spec.max_txn_duration = datetime.timedelta(seconds=6)
    spec.hot_standbys = 0


@pytest.mark.parametrize("summer", [Summer, CommittedSumsSummer], ids=["summer", "planted-bug"])
async def test_a_crash_inside_a_transaction_is_exactly_once_and_a_planted_bug_is_caught(
    tmp_path: Path, summer: type[Summer]
) -> None:
    async with open_example_cluster(
        "stream_sum", summer, tmp_path, adjust_shard=long_transactions
    ) as c:
        await c.add_member("alpha")
        outcome: list[BaseException | Report] = []
        stop = trio.Event()

        async def chunker() -> None:
            try:
                outcome.append(
                    await generate_and_verify(
                        c.journals, options(streams=0, chunks=2, rate=100.0), stop=stop
                    )
                )
            except Violation as exc:
                outcome.append(exc)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(chunker)
                # alpha's first transactions stay open for 3 s: crash it inside
                # them, once it has read (and summed) many finished streams.
                await trio.sleep(1.0)
                assert c.primary_of("chunks-part-000") is not None
                await c.crash("alpha")
                await c.add_member("beta")
                await trio.sleep(0.5)
                stop.set()

    (result,) = outcome
    if summer is Summer:
        assert isinstance(result, Report), result
        assert result.streams > 20 and len(result.latencies) == result.streams
    else:
        assert isinstance(result, Violation)
        assert "a second sum" in str(result) and "more than once" in str(result)


def failed_status(member: Any, shard: str) -> Any:
    async def failure() -> Any:
        assert member.consumer is not None
        for a in member.consumer.session.state.assignments_by_item.get(shard, ()):
            if a.status.code == pc.ReplicaStatusCode.FAILED:
                return a.status
        return None

    return wait_until(failure)


async def test_a_chunk_out_of_order_fails_the_summer_naming_stream_and_offset(
    cluster: Cluster,
) -> None:
    member = await cluster.add_member("alpha")
    await cluster.publish(CHUNKS[0], [chunk_message(ID, 1, b"ab"), chunk_message(ID, 3, b"cd")])

    status = await failed_status(member, "chunks-part-000")
    assert f"journal {CHUNKS[0]} offset " in status.errors[0]
    assert f"stream {ID.hex()}: chunk 3 follows chunk 1" in status.errors[0]
    assert not await cluster.read_committed(SUMS_JOURNAL)


async def test_the_summer_keeps_sums_in_upstreams_table(cluster: Cluster) -> None:
    member = await cluster.add_member("alpha")
    await cluster.publish(CHUNKS[0], [chunk_message(ID, 1, b"battery"), chunk_message(ID, 2, b"")])

    async def summed() -> Any:
        return await cluster.read_committed(SUMS_JOURNAL, Sum)

    (message,) = await wait_until(summed)
    assert message == {
        "ID": list(ID),
        "SeqNo": 2,
        "Value": 0x2BE55FC66A381C84,
        "UUID": str(message.get_uuid()),
    }
    found = cluster.primary_of("chunks-part-000")
    assert found is not None and found[0] == "alpha" and member.consumer is not None
    store = found[1].store
    rows = store.db.execute("SELECT id, seq_no, val FROM sums").fetchall()
    # As upstream's summer writes it: the CRC-64 as 8 little-endian bytes.
    assert rows == [(ID, 2, (0x2BE55FC66A381C84).to_bytes(8, "little"))]


def rocksdb_store(spec: pc.ShardSpec) -> None:
    spec.labels = pb.LabelSet(labels=[pb.Label(name="store", value="rocksdb")])


async def test_a_shard_labelled_for_rocksdb_fails_naming_the_label(tmp_path: Path) -> None:
    async with open_example_cluster(
        "stream_sum", Summer, tmp_path, adjust_shard=rocksdb_store
    ) as c:
        member = await c.add_member("alpha")
        status = await failed_status(member, "chunks-part-000")
    assert "label store='rocksdb'" in status.errors[0]
    assert "SQLite only" in status.errors[0]
