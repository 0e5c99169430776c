"""The append service: per-journal order, batching, dependencies, retries, verdicts."""

from __future__ import annotations

import hashlib

import pytest
import trio
import trio.testing

from gazette_trio import aio
from gazette_trio.broker.append_service import (
    AppendService,
    AppendServiceClosed,
    DependencyFailed,
    JournalFailed,
    open_append_service,
)
from gazette_trio.broker.errors import JournalError
from gazette_trio.broker.fragments import sha1_digest
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.reader import Backoff, read_journal
from gazette_trio.broker.server import Faults, JournalServerCore, MemoryStorage
from gazette_trio.opfuture import OpFuture, wait_all
from gazette_trio.protocol import labels as L
from gazette_trio.protocol import protocol as pb

from .conftest import Broker, ServerProcess


async def test_appends_to_each_journal_land_in_call_order(broker: Broker) -> None:
    await broker.create("a/one")
    await broker.create("a/two")
    async with open_append_service(broker.client) as service:
        futures = []
        for i in range(50):
            journal = "a/one" if i % 3 else "a/two"
            futures.append((journal, f"{i};".encode(), service.append(journal, f"{i};".encode())))
        await wait_all(f for _, _, f in futures)
    for journal in ("a/one", "a/two"):
        expected = b"".join(content for j, content, _ in futures if j == journal)
        assert await read_journal(broker.client, journal) == expected
        # Each future reports the range its own content landed at.
        for j, content, future in futures:
            if j == journal:
                commit = future.result().commit
                assert expected[commit.begin : commit.end] == content


async def test_adjacent_plain_appends_are_batched_into_fewer_rpcs(broker: Broker) -> None:
    await broker.create("a/journal")
    async with open_append_service(broker.client) as service:
        futures = [service.append("a/journal", b"x" * 100) for _ in range(200)]
        await wait_all(futures)
    assert service.rpcs < 20  # queued while the first RPC was in flight
    assert [f.result().commit.begin for f in futures] == list(range(0, 20_000, 100))
    assert await read_journal(broker.client, "a/journal") == b"x" * 20_000


async def test_an_append_sent_alone_carries_the_brokers_sha1(broker: Broker) -> None:
    await broker.create("a/journal")
    async with open_append_service(broker.client) as service:
        alone = await service.append("a/journal", b"by itself")
        batch = [service.append("a/journal", b"one"), service.append("a/journal", b"two")]
        await wait_all(batch)
    assert sha1_digest(alone.commit.sum) == hashlib.sha1(b"by itself").digest()
    # The second was batched behind the first: exact range, no per-op sum.
    second = batch[1].result().commit
    assert (second.begin, second.end, second.sum) == (12, 15, None)


async def test_batches_stop_at_the_size_limit(broker: Broker) -> None:
    await broker.create("a/journal")
    async with open_append_service(broker.client, max_batch_bytes=1000) as service:
        await wait_all([service.append("a/journal", b"y" * 300) for _ in range(10)])
    assert service.rpcs >= 4  # at most 3 appends of 300 bytes fit in 1000


async def test_depends_on_holds_an_append_until_its_dependency_resolves(broker: Broker) -> None:
    await broker.create("a/journal")
    barrier: OpFuture[None] = OpFuture()
    async with open_append_service(broker.client) as service:
        held = service.append("a/journal", b"after-barrier;", depends_on=barrier)
        behind = service.append("a/journal", b"behind-it;")  # same journal: waits its turn
        await trio.sleep(0.05)
        assert not held.done() and not behind.done()
        assert await read_journal(broker.client, "a/journal") == b""
        assert service.pending() == {held, behind}
        barrier.resolve(None)
        await wait_all([held, behind])
    assert await read_journal(broker.client, "a/journal") == b"after-barrier;behind-it;"


async def test_a_failed_dependency_fails_the_append_and_every_later_one_of_its_journal(
    broker: Broker,
) -> None:
    """Gazette's rule: a dependency's failure fails the append that waited on
    it *and* every append queued after it on the same journal, none of them
    written, so nothing lands after the hole. Other journals go on."""
    await broker.create("a/journal")
    await broker.create("b/journal")
    commit: OpFuture[None] = OpFuture()
    async with open_append_service(broker.client) as service:
        first = service.append("a/journal", b"first;")
        ack = service.append("a/journal", b"ack;", depends_on=commit)
        later = service.append("a/journal", b"later;")
        elsewhere = service.append("b/journal", b"elsewhere;")
        await first
        commit.fail(RuntimeError("store commit failed"))
        with pytest.raises(DependencyFailed, match="store commit failed") as caught:
            await ack
        assert isinstance(caught.value.__cause__, RuntimeError)
        with pytest.raises(JournalFailed, match="an earlier append to this journal failed") as held:
            await later
        assert held.value.__cause__ is caught.value
        await elsewhere
    assert await read_journal(broker.client, "a/journal") == b"first;"
    assert await read_journal(broker.client, "b/journal") == b"elsewhere;"


async def test_a_failed_journal_stays_failed_for_the_life_of_the_service(broker: Broker) -> None:
    """As in Gazette (whose service keeps a journal's error for good), a
    failed journal never recovers within one service: later calls fail at
    once, unwritten, and `pending()` reports the failure so that a barrier
    built from it (a store commit's) fails as well. A new service starts
    clean."""
    await broker.create("a/journal")
    dependency: OpFuture[None] = OpFuture()
    async with open_append_service(broker.client) as service:
        failed = service.append("a/journal", b"x;", depends_on=dependency)
        dependency.fail(ValueError("transaction aborted"))
        with pytest.raises(DependencyFailed):
            await failed
        assert isinstance(service.failure("a/journal"), DependencyFailed)
        assert service.failure("other/journal") is None

        afterwards = service.append("a/journal", b"afterwards;")
        assert afterwards.done() and isinstance(afterwards.error(), JournalFailed)
        assert service.last_op("a/journal") is afterwards
        (reported,) = service.pending()
        with pytest.raises(JournalFailed, match="transaction aborted"):
            await wait_all(service.pending())
        assert isinstance(reported.error(), JournalFailed)
        with pytest.raises(JournalFailed):
            await service.drain()
    assert await read_journal(broker.client, "a/journal") == b""
    async with open_append_service(broker.client) as fresh:
        await fresh.append("a/journal", b"fresh;")
    assert await read_journal(broker.client, "a/journal") == b"fresh;"


async def test_an_append_the_broker_refuses_fails_the_appends_queued_behind_it(
    broker: Broker,
) -> None:
    """The same holds when the RPC itself fails for good (here the journal
    does not exist): the appends behind it are not written, even if the
    journal appears meanwhile."""
    # One append per RPC, so the ones behind are not part of the refused batch.
    async with open_append_service(broker.client, max_batch_bytes=1) as service:
        refused = service.append("late/journal", b"refused;")
        behind = [service.append("late/journal", f"{i};".encode()) for i in range(3)]
        with pytest.raises(JournalError):
            await refused
        await broker.create("late/journal")
        for future in behind:
            with pytest.raises(JournalFailed, match="JOURNAL_NOT_FOUND") as caught:
                await future
            assert caught.value.__cause__ is refused.error()
        with pytest.raises(JournalFailed):
            await service.append("late/journal", b"later;")
    assert await read_journal(broker.client, "late/journal") == b""


async def test_a_register_mismatch_fails_only_the_appends_carrying_that_check(
    broker: Broker,
) -> None:
    """A refused register check is a verdict on that writer alone: its later
    appends carry the same check and are refused in turn, while another
    writer's appends to the journal (the hand-off that fenced it) go on."""
    await broker.create("recovery/log")
    theirs = pb.LabelSelector(include=L.label_set({"author": "them"}))
    async with open_append_service(broker.client) as service:
        await service.append(
            "recovery/log", b"mine;", union_registers=L.label_set({"author": "me"})
        )
        fenced = service.append("recovery/log", b"fenced;", check_registers=theirs)
        again = service.append("recovery/log", b"again;", check_registers=theirs)
        other_writer = service.append("recovery/log", b"other;")
        for future in (fenced, again):
            with pytest.raises(JournalError) as caught:
                await future
            assert caught.value.status == pb.Status.REGISTER_MISMATCH
        await other_writer
        assert service.failure("recovery/log") is None
    assert await read_journal(broker.client, "recovery/log") == b"mine;other;"


async def test_a_register_mismatch_fails_without_a_retry(broker: Broker) -> None:
    await broker.create("recovery/log")
    mine = L.label_set({"author": "me"})
    theirs = pb.LabelSelector(include=L.label_set({"author": "them"}))
    async with open_append_service(broker.client) as service:
        await service.append("recovery/log", b"mine;", union_registers=mine)
        rpcs = service.rpcs
        fenced = service.append("recovery/log", b"theirs;", check_registers=theirs)
        with pytest.raises(JournalError) as caught:
            await fenced
        assert caught.value.status == pb.Status.REGISTER_MISMATCH
        assert caught.value.response.registers == mine
        assert service.rpcs == rpcs + 1
    assert await read_journal(broker.client, "recovery/log") == b"mine;"


async def test_a_missing_journal_fails_without_a_retry(broker: Broker) -> None:
    async with open_append_service(broker.client) as service:
        with pytest.raises(JournalError) as caught:
            await service.append("no/such/journal", b"x")
    assert caught.value.status == pb.Status.JOURNAL_NOT_FOUND
    assert service.rpcs == 1


class FailAppends(Faults):
    """Fails the next `before` appends before they are written, and the next
    `after` ones after they are (a lost acknowledgement)."""

    def __init__(self, before: int = 0, after: int = 0) -> None:
        self.before = before
        self.after = after

    async def before_append(self, journal: str, offset: int, size: int) -> None:
        if self.before:
            self.before -= 1
            raise aio.Unavailable("injected: connection lost before the write")

    async def after_append(self, journal: str, commit: pb.Fragment) -> None:
        if self.after:
            self.after -= 1
            raise aio.Unavailable("injected: acknowledgement lost")


async def test_transport_failures_are_retried_with_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    core = JournalServerCore(MemoryStorage(), faults=FailAppends(before=3))
    client = LocalJournalClient(core)
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    async with open_append_service(client, backoff=Backoff(initial=1, maximum=4)) as service:
        started = trio.current_time()
        response = await service.append("a/journal", b"eventually")
        assert trio.current_time() - started == pytest.approx(1 + 2 + 4)
    assert response.commit.end == 10 and service.rpcs == 4
    assert await read_journal(client, "a/journal") == b"eventually"


async def test_a_lost_acknowledgement_is_retried_so_appends_are_at_least_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    core = JournalServerCore(MemoryStorage(), faults=FailAppends(after=1))
    client = LocalJournalClient(core)
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    async with open_append_service(client) as service:
        response = await service.append("a/journal", b"twice;")
    assert (response.commit.begin, response.commit.end) == (6, 12)
    assert await read_journal(client, "a/journal") == b"twice;twice;"


async def test_appends_survive_a_server_restart(
    island: None, server_process: ServerProcess
) -> None:
    """Over real gRPC, the broker process is killed in the middle of a stream
    of appends and restarted: every append resolves, in order, at least once."""
    with trio.fail_after(60):
        async with aio.Channel(server_process.endpoint) as channel:
            client = GrpcJournalClient(channel)
            await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
            async with open_append_service(
                client, backoff=Backoff(initial=0.05, maximum=0.5)
            ) as service:
                futures = []
                for i in range(40):
                    futures.append(service.append("a/journal", f"{i:03d};".encode()))
                    if i == 20:
                        server_process.kill()
                        await server_process.start()
                    await trio.sleep(0.005)
                await wait_all(futures)
            content = await read_journal(client, "a/journal")
    records = content.decode().split(";")
    assert records.pop() == ""  # whole records only
    # At-least-once, in order: a retried batch may repeat, but first
    # occurrences are exactly the sequence of calls.
    first_seen = list(dict.fromkeys(records))
    assert first_seen == [f"{i:03d}" for i in range(40)]


async def test_pending_and_last_op_track_what_is_unresolved(broker: Broker) -> None:
    await broker.create("a/journal")
    gate: OpFuture[None] = OpFuture()
    async with open_append_service(broker.client) as service:
        assert service.last_op("a/journal") is None and service.pending() == set()
        first = service.append("a/journal", b"1", depends_on=gate)
        second = service.append("a/journal", b"2")
        assert service.last_op("a/journal") is second
        assert service.pending() == {first, second}
        gate.resolve(None)
        await second
        assert service.pending() == set()
        assert service.last_op("a/journal") is second and second.done()


async def test_stopping_the_service_fails_what_is_unresolved(broker: Broker) -> None:
    await broker.create("a/journal")
    never: OpFuture[None] = OpFuture()
    with trio.CancelScope() as scope:
        async with open_append_service(broker.client) as service:
            stuck = service.append("a/journal", b"x", depends_on=never)
            scope.cancel()
    with pytest.raises(AppendServiceClosed):
        await stuck


async def test_appending_to_a_service_that_is_not_running_is_an_error(broker: Broker) -> None:
    service = AppendService(broker.client)
    with pytest.raises(RuntimeError, match="not running"):
        service.append("a/journal", b"x")
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await broker.create("a/journal")
        assert (await service.append("a/journal", b"x")).status == pb.Status.OK
        nursery.cancel_scope.cancel()


async def test_each_batched_response_is_an_ordinary_response_with_its_own_range(
    broker: Broker,
) -> None:
    """Per-op responses of a batch are built by copying fields (for speed);
    they must be indistinguishable from constructed ones: equal, encoding to
    the same bytes, and independent of each other."""
    await broker.create("a/journal")
    async with open_append_service(broker.client) as service:
        futures = [service.append("a/journal", b"x" * n) for n in (1, 2, 3, 4)]
        await wait_all(futures)
    assert service.rpcs == 1
    responses = [f.result() for f in futures]
    begin = 0
    for n, response in zip((1, 2, 3, 4), responses, strict=True):
        expected = pb.AppendResponse(
            status=pb.Status.OK,
            header=response.header,
            commit=pb.Fragment(
                journal="a/journal",
                begin=begin,
                end=begin + n,
                compression_codec=pb.CompressionCodec.NONE,
            ),
            registers=response.registers,
        )
        assert response == expected
        assert bytes(response) == bytes(expected)
        assert pb.AppendResponse.parse(bytes(response)) == expected
        begin += n
    responses[1].commit.end = 99
    assert responses[2].commit.begin == 3 and responses[0].commit.end == 1
