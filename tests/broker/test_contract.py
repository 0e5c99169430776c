"""The Journal API contract, run against both transports.

Every test here runs twice: through `LocalJournalClient` straight into the
server core, and through `GrpcJournalClient` to the same core served over
gRPC on loopback. Whatever a consumer observes must not depend on which one
it was given.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from gazette_trio import aio
from gazette_trio.broker.errors import JournalError
from gazette_trio.broker.fragments import sha1_digest
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, delete, list_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.server import FileStorage, JournalServerCore
from gazette_trio.protocol import labels as L
from gazette_trio.protocol import protocol as pb

from .conftest import Broker

S = pb.Status


async def read_all(broker: Broker, **request: object) -> list[pb.ReadResponse]:
    async with broker.client.read(pb.ReadRequest(**request)) as stream:  # type: ignore[arg-type]
        return [r async for r in stream]


async def append(
    broker: Broker, journal: str, *chunks: bytes, **options: object
) -> pb.AppendResponse:
    return await broker.client.append(pb.AppendRequest(journal=journal, **options), list(chunks))  # type: ignore[arg-type]


def content_of(responses: list[pb.ReadResponse]) -> bytes:
    return b"".join(r.content for r in responses)


# --------------------------------------------------------------------------
# Specs: Apply and List


async def test_apply_creates_journals_and_list_returns_them_with_revisions(broker: Broker) -> None:
    first = await apply_journals(broker.client, [upsert(new_journal_spec("a/one"))])
    second = await apply_journals(
        broker.client, [upsert(new_journal_spec("a/two")), upsert(new_journal_spec("b/three"))]
    )
    assert second == first + 1
    listed = await list_journals(broker.client)
    assert [(j.spec.name, j.mod_revision) for j in listed] == [
        ("a/one", first),
        ("a/two", second),
        ("b/three", second),
    ]
    assert listed[0].spec == new_journal_spec("a/one")
    assert listed[0].route.members == [broker.core.process_id]


async def test_apply_is_all_or_nothing_on_a_revision_mismatch(broker: Broker) -> None:
    revision = await apply_journals(broker.client, [upsert(new_journal_spec("a/one"))])
    response = await broker.client.apply(
        pb.ApplyRequest(
            changes=[
                upsert(new_journal_spec("a/two")),  # would be fine alone
                upsert(new_journal_spec("a/one"), expect_mod_revision=0),  # exists already
            ]
        )
    )
    assert response.status == S.ETCD_TRANSACTION_FAILED
    assert [j.spec.name for j in await list_journals(broker.client)] == ["a/one"]
    assert broker.core.revision == revision

    with pytest.raises(JournalError) as caught:
        await apply_journals(broker.client, [upsert(new_journal_spec("a/one"), revision + 7)])
    assert caught.value.status == S.ETCD_TRANSACTION_FAILED


async def test_update_and_delete_with_expected_revisions(broker: Broker) -> None:
    created = await apply_journals(broker.client, [upsert(new_journal_spec("a/one"))])
    changed = new_journal_spec("a/one", content_type="application/x-ndjson")
    updated = await apply_journals(broker.client, [upsert(changed, created)])
    [listed] = await list_journals(broker.client)
    assert listed.mod_revision == updated and listed.spec == changed

    deleted = await apply_journals(broker.client, [delete("a/one", updated)])
    assert deleted == updated + 1
    assert await list_journals(broker.client) == []
    # -1 deletes whatever the revision, and deleting nothing is not an error.
    await apply_journals(broker.client, [delete("a/one", -1)])


async def test_list_selects_by_labels_and_by_name_and_prefix_meta_labels(broker: Broker) -> None:
    await apply_journals(
        broker.client,
        [
            upsert(new_journal_spec("clicks/part-0", labels={"topic": "clicks", "env": "prod"})),
            upsert(new_journal_spec("clicks/part-1", labels={"topic": "clicks", "env": "qa"})),
            upsert(new_journal_spec("views/part-0", labels={"topic": "views"})),
        ],
    )

    async def names(selector: str) -> list[str]:
        return [j.spec.name for j in await list_journals(broker.client, selector)]

    assert await names("") == ["clicks/part-0", "clicks/part-1", "views/part-0"]
    assert await names("topic=clicks") == ["clicks/part-0", "clicks/part-1"]
    assert await names("topic=clicks, env!=qa") == ["clicks/part-0"]
    assert await names("env") == ["clicks/part-0", "clicks/part-1"]  # present, any value
    assert await names("!env") == ["views/part-0"]
    assert await names("env in (qa, staging)") == ["clicks/part-1"]
    assert await names("prefix=clicks/") == ["clicks/part-0", "clicks/part-1"]
    assert await names("name=views/part-0") == ["views/part-0"]
    assert await names("prefix!=clicks/") == ["views/part-0"]
    # Upstream's prefix selectors: any label, any value prefix (no slash needed).
    assert await names("name:prefix=clicks/part-") == ["clicks/part-0", "clicks/part-1"]
    assert await names("topic:prefix=vi") == ["views/part-0"]
    assert await names("name:prefix!=clicks") == ["views/part-0"]

    # A prefix must be a directory: Gazette rejects one without its slash.
    with pytest.raises(aio.InvalidArgument, match=r"expected trailing '/' \(clicks\)"):
        await list_journals(broker.client, "prefix=clicks")


async def test_a_large_listing_spans_several_responses_of_at_most_1000_journals(
    broker: Broker,
) -> None:
    names = [f"a/j{i:04d}" for i in range(2345)]
    for i in range(0, len(names), 500):
        await apply_journals(broker.client, [upsert(new_journal_spec(n)) for n in names[i : i + 500]])
    async with broker.client.list(pb.ListRequest()) as stream:
        responses = [r async for r in stream]
    assert [len(r.journals) for r in responses] == [1000, 1000, 345]
    # Status and header come with the first response only, as Gazette sends them.
    assert responses[0].status == S.OK and responses[0].header is not None
    assert all(r.header is None for r in responses[1:])
    assert [j.spec.name for r in responses for j in r.journals] == names
    assert [j.spec.name for j in await list_journals(broker.client)] == names


async def test_listed_journals_carry_their_create_and_mod_revisions(broker: Broker) -> None:
    created = await apply_journals(broker.client, [upsert(new_journal_spec("a/one"))])
    updated = await apply_journals(
        broker.client, [upsert(new_journal_spec("a/one", replication=2), expect_mod_revision=-1)]
    )
    [listed] = await list_journals(broker.client)
    assert (listed.create_revision, listed.mod_revision) == (created, updated)


async def next_snapshot(stream: AsyncIterator[pb.ListResponse]) -> tuple[int, list[str]]:
    """(revision, names) of a watched List stream's next snapshot."""
    first = await anext(stream)
    assert first.status == S.OK and first.header is not None and first.header.etcd is not None
    names = [j.spec.name for j in first.journals]
    async for more in stream:
        if not more.journals:  # an empty response ends each watched snapshot
            return first.header.etcd.revision, names
        names.extend(j.spec.name for j in more.journals)
    raise AssertionError("watch ended")


async def test_a_watched_list_sends_a_new_snapshot_on_each_change_to_its_match(
    broker: Broker,
) -> None:
    await broker.create("clicks/one", labels={"topic": "clicks"})
    request = pb.ListRequest(selector=L.parse_selector("topic=clicks"), watch=True)
    async with broker.client.list(request) as stream:
        first_revision, names = await next_snapshot(stream)
        assert names == ["clicks/one"]
        # A change outside the selector sends nothing; one inside sends all.
        await broker.create("views/one", labels={"topic": "views"})
        await broker.create("clicks/two", labels={"topic": "clicks"})
        revision, names = await next_snapshot(stream)
        assert revision > first_revision and names == ["clicks/one", "clicks/two"]
        await apply_journals(broker.client, [delete("clicks/one")])
        assert (await next_snapshot(stream))[1] == ["clicks/two"]


async def test_a_resumed_watch_waits_for_a_revision_past_its_last_snapshot(
    broker: Broker,
) -> None:
    await broker.create("a/one")
    async with broker.client.list(pb.ListRequest(watch=True)) as stream:
        first = await anext(stream)
    resume = pb.ListRequest(watch=True, watch_resume=first.header)
    async with broker.client.list(resume) as stream:
        with trio.move_on_after(0.2) as idle:
            await anext(stream)
        assert idle.cancelled_caught, "nothing changed, so nothing may be sent"
        await broker.create("a/two")
        with trio.fail_after(5):
            _, names = await next_snapshot(stream)
        assert names == ["a/one", "a/two"]


# --------------------------------------------------------------------------
# Append


async def test_append_lands_contiguously_and_reports_its_commit_fragment(broker: Broker) -> None:
    await broker.create("a/journal")
    first = await append(broker, "a/journal", b"hello, ", b"world")
    second = await append(broker, "a/journal", b"!\n")
    assert first.status == S.OK and second.status == S.OK
    assert (first.commit.begin, first.commit.end) == (0, 12)
    assert (second.commit.begin, second.commit.end) == (12, 14)
    assert first.commit.journal == "a/journal"
    assert first.commit.compression_codec == pb.CompressionCodec.NONE
    assert sha1_digest(first.commit.sum) == hashlib.sha1(b"hello, world").digest()
    assert first.registers == pb.LabelSet()
    assert first.header.etcd.revision == broker.core.revision
    assert content_of(await read_all(broker, journal="a/journal")) == b"hello, world!\n"


async def test_a_content_iterator_that_fails_appends_nothing(broker: Broker) -> None:
    await broker.create("a/journal")

    async def content() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        await broker.client.append(pb.AppendRequest(journal="a/journal"), content())
    await append(broker, "a/journal", b"whole")
    assert content_of(await read_all(broker, journal="a/journal")) == b"whole"


async def test_a_cancelled_append_appends_nothing(broker: Broker) -> None:
    await broker.create("a/journal")
    started = trio.Event()

    async def content() -> AsyncIterator[bytes]:
        yield b"partial"
        started.set()
        await trio.sleep_forever()
        yield b"never"

    async with trio.open_nursery() as nursery:

        async def appender() -> None:
            await broker.client.append(pb.AppendRequest(journal="a/journal"), content())

        nursery.start_soon(appender)
        await started.wait()
        nursery.cancel_scope.cancel()
    await append(broker, "a/journal", b"whole")
    assert content_of(await read_all(broker, journal="a/journal")) == b"whole"


async def test_an_explicit_offset_must_equal_the_write_head(broker: Broker) -> None:
    await broker.create("a/journal")
    await append(broker, "a/journal", b"12345")
    wrong = await append(broker, "a/journal", b"x", offset=3)
    assert wrong.status == S.WRONG_APPEND_OFFSET
    right = await append(broker, "a/journal", b"6", offset=5)
    assert right.status == S.OK and right.commit.begin == 5
    assert content_of(await read_all(broker, journal="a/journal")) == b"123456"


async def test_registers_are_checked_and_updated_atomically_with_the_append(broker: Broker) -> None:
    await broker.create("recovery/log")
    author_a = L.label_set({"author": "a"})
    author_b = L.label_set({"author": "b"})

    # A journal without registers passes any check.
    first = await append(
        broker,
        "recovery/log",
        b"by a",
        check_registers=pb.LabelSelector(include=author_b),
        union_registers=author_a,
    )
    assert first.status == S.OK and first.registers == author_a

    # Author b is fenced out: nothing is appended, the registers come back.
    fenced = await append(
        broker, "recovery/log", b"by b", check_registers=pb.LabelSelector(include=author_b)
    )
    assert fenced.status == S.REGISTER_MISMATCH and fenced.registers == author_a
    assert fenced.commit is None

    # Taking over: subtract a's register and add b's, with content, atomically.
    takeover = await append(
        broker,
        "recovery/log",
        b"by b",
        check_registers=pb.LabelSelector(include=author_a),
        subtract_registers=author_a,
        union_registers=author_b,
    )
    assert takeover.status == S.OK and takeover.registers == author_b
    assert content_of(await read_all(broker, journal="recovery/log")) == b"by aby b"
    assert broker.core.registers("recovery/log") == author_b


async def test_register_updates_need_content(broker: Broker) -> None:
    await broker.create("a/journal")
    with pytest.raises(
        aio.InvalidArgument, match="register modification requires a non-empty append"
    ):
        await append(broker, "a/journal", union_registers=L.label_set({"key": "v"}))
    # A zero-byte append without updates is a barrier: OK, empty commit at the head.
    await append(broker, "a/journal", b"abc")
    barrier = await append(broker, "a/journal")
    assert barrier.status == S.OK
    assert (barrier.commit.begin, barrier.commit.end) == (3, 3)
    assert sha1_digest(barrier.commit.sum) == hashlib.sha1(b"").digest()


async def test_flags_forbid_content_appends_to_read_only_and_reads_of_write_only(
    broker: Broker,
) -> None:
    await broker.create("ro/journal", flags=int(pb.JournalSpecFlag.O_RDONLY))
    await broker.create("wo/journal", flags=int(pb.JournalSpecFlag.O_WRONLY))
    assert (await append(broker, "ro/journal", b"x")).status == S.NOT_ALLOWED
    assert (await append(broker, "ro/journal")).status == S.OK  # barriers are allowed
    assert (await append(broker, "wo/journal", b"x")).status == S.OK
    [response] = await read_all(broker, journal="wo/journal")
    assert response.status == S.NOT_ALLOWED
    fragments = await broker.client.list_fragments(pb.FragmentsRequest(journal="wo/journal"))
    assert fragments.status == S.NOT_ALLOWED


# --------------------------------------------------------------------------
# Read


async def test_a_non_blocking_read_streams_metadata_then_content_then_ends_at_the_head(
    broker: Broker,
) -> None:
    await broker.create("a/journal")
    await append(broker, "a/journal", b"abcdef")
    responses = await read_all(broker, journal="a/journal", offset=2)
    meta, content, end = responses
    assert meta.status == S.OK and meta.offset == 2 and meta.write_head == 6
    assert (meta.fragment.begin, meta.fragment.end) == (0, 6)
    assert sha1_digest(meta.fragment.sum) == hashlib.sha1(b"abcdef").digest()
    assert meta.header is not None and not meta.content
    assert (content.offset, content.content) == (2, b"cdef")
    assert content.header is None and content.fragment is None
    assert end.status == S.OFFSET_NOT_YET_AVAILABLE and end.offset == 6 and end.write_head == 6


async def test_reading_past_the_head_without_blocking_answers_offset_not_yet_available(
    broker: Broker,
) -> None:
    await broker.create("a/journal")
    await append(broker, "a/journal", b"abc")
    [response] = await read_all(broker, journal="a/journal", offset=100)
    assert response.status == S.OFFSET_NOT_YET_AVAILABLE
    assert response.write_head == 3 and response.header is not None
    # The write head itself (-1) is also not yet available.
    [response] = await read_all(broker, journal="a/journal", offset=-1)
    assert response.status == S.OFFSET_NOT_YET_AVAILABLE and response.offset == 3


async def test_a_blocking_read_at_the_head_is_woken_by_the_next_append(broker: Broker) -> None:
    await broker.create("a/journal")
    await append(broker, "a/journal", b"old")
    got: list[bytes] = []
    with trio.fail_after(10):
        async with (
            broker.client.read(
                pb.ReadRequest(journal="a/journal", offset=-1, block=True)
            ) as stream,
            trio.open_nursery() as nursery,
        ):

            async def later() -> None:
                await trio.sleep(0.05)
                await append(broker, "a/journal", b"new")

            nursery.start_soon(later)
            async for response in stream:
                assert response.status == S.OK
                if response.content:
                    got.append(response.content)
                    break
    assert got == [b"new"]


async def test_end_offset_bounds_a_read_and_metadata_only_sends_no_content(broker: Broker) -> None:
    await broker.create("a/journal")
    await append(broker, "a/journal", b"0123456789")
    bounded = await read_all(broker, journal="a/journal", offset=2, end_offset=5, block=True)
    assert content_of(bounded) == b"234"
    [meta] = await read_all(broker, journal="a/journal", offset=4, metadata_only=True)
    assert meta.status == S.OK and meta.offset == 4 and meta.fragment.end == 10
    with pytest.raises(aio.InvalidArgument, match=r"invalid EndOffset \(3; expected"):
        await read_all(broker, journal="a/journal", offset=4, end_offset=3)


async def test_reads_span_rolled_fragments_in_bounded_chunks(broker: Broker) -> None:
    await broker.create("a/journal", fragment_length=1 << 18)
    blob = bytes(range(256)) * 1024  # 256 KiB per append
    for _ in range(3):
        await append(broker, "a/journal", blob)
    responses = await read_all(broker, journal="a/journal")
    assert content_of(responses) == blob * 3
    assert max(len(r.content) for r in responses) <= 1 << 17
    fragments = [(r.fragment.begin, r.fragment.end) for r in responses if r.fragment]
    assert fragments == [(0, 1 << 18), (1 << 18, 2 << 18), (2 << 18, 3 << 18)]


async def test_reads_jump_over_removed_content_to_the_next_available_offset(broker: Broker) -> None:
    await broker.create("a/journal", fragment_length=1024)
    for part in (b"a" * 1024, b"b" * 1024, b"c" * 10):
        await append(broker, "a/journal", part)
    removed = await broker.core.remove_fragments("a/journal", before=1024)
    assert [(f.begin, f.end) for f in removed] == [(0, 1024)]
    responses = await read_all(broker, journal="a/journal", offset=0)
    assert responses[0].offset == 1024  # the next available offset
    assert content_of(responses) == b"b" * 1024 + b"c" * 10


# --------------------------------------------------------------------------
# Suspension, as Gazette's append FSM defines it


def suspension(listed: pb.ListResponseJournal) -> tuple[str, int]:
    suspend = listed.spec.suspend
    if suspend is None:
        return "NONE", 0
    return pb.JournalSpecSuspendLevel(suspend.level).name, suspend.offset


async def suspend_append(broker: Broker, journal: str, mode: pb.AppendRequestSuspend) -> pb.Status:
    response = await broker.client.append(pb.AppendRequest(journal=journal, suspend=mode), [])
    return pb.Status(response.status)


Suspend = pb.AppendRequestSuspend


async def test_an_empty_journal_suspends_fully_and_resumes_on_the_next_append(
    broker: Broker,
) -> None:
    await broker.create("a/journal")
    assert await suspend_append(broker, "a/journal", Suspend.IF_FLUSHED) == S.SUSPENDED
    [listed] = await list_journals(broker.client)
    assert suspension(listed) == ("FULL", 0)
    # Fully suspended: nothing to read from, and appends that may not resume fail.
    assert (await read_all(broker, journal="a/journal"))[0].status == S.SUSPENDED
    assert await suspend_append(broker, "a/journal", Suspend.NO_RESUME) == S.SUSPENDED
    assert await suspend_append(broker, "a/journal", Suspend.KEEP) == S.SUSPENDED
    # An ordinary append resumes it (and is appended).
    response = await append(broker, "a/journal", b"hello")
    assert response.status == S.OK and response.commit.end == 5
    [listed] = await list_journals(broker.client)
    assert suspension(listed) == ("NONE", 0)
    assert content_of(await read_all(broker, journal="a/journal")) == b"hello"


async def test_a_journal_with_content_suspends_partially_only_when_told_now(
    broker: Broker,
) -> None:
    await broker.create("a/journal")
    await append(broker, "a/journal", b"data")
    # Its fragments are local, never flushed to a store: IF_FLUSHED leaves it be.
    assert await suspend_append(broker, "a/journal", Suspend.IF_FLUSHED) == S.OK
    assert suspension((await list_journals(broker.client))[0]) == ("NONE", 0)
    assert await suspend_append(broker, "a/journal", Suspend.NOW) == S.SUSPENDED
    assert suspension((await list_journals(broker.client))[0]) == ("PARTIAL", 4)
    # Partially suspended journals are still read, and their heads reset in place.
    assert content_of(await read_all(broker, journal="a/journal")) == b"data"
    assert await suspend_append(broker, "a/journal", Suspend.KEEP) == S.OK
    assert suspension((await list_journals(broker.client))[0]) == ("PARTIAL", 4)
    assert await suspend_append(broker, "a/journal", Suspend.NO_RESUME) == S.SUSPENDED
    assert (await append(broker, "a/journal", b"more")).status == S.OK
    assert suspension((await list_journals(broker.client))[0]) == ("NONE", 4)


async def test_suspension_controls_carry_no_content(broker: Broker) -> None:
    await broker.create("a/journal")
    for mode in (Suspend.IF_FLUSHED, Suspend.NOW, Suspend.KEEP):
        response = await append(broker, "a/journal", b"x", suspend=mode)
        assert response.status == S.NOT_ALLOWED
    assert content_of(await read_all(broker, journal="a/journal", block=False)) == b""


async def test_a_resume_offset_ahead_of_the_head_moves_the_head_forward(broker: Broker) -> None:
    # A journal whose spec says it resumes at 1000 (its content lived on
    # elsewhere) never reuses an offset below that.
    spec = new_journal_spec("a/journal")
    spec.suspend = pb.JournalSpecSuspend(level=pb.JournalSpecSuspendLevel.FULL, offset=1000)
    await apply_journals(broker.client, [upsert(spec)])
    response = await append(broker, "a/journal", b"after")
    assert (response.commit.begin, response.commit.end) == (1000, 1005)
    assert suspension((await list_journals(broker.client))[0]) == ("NONE", 1000)


# --------------------------------------------------------------------------
# Revisions a request asks the broker to have seen


async def test_a_request_naming_a_future_etcd_revision_waits_for_it(broker: Broker) -> None:
    await broker.create("a/journal")
    ahead = broker.core.revision + 1
    results: list[pb.Status] = []

    async def read_at_future_revision() -> None:
        responses = await read_all(broker, journal="b/journal", min_etcd_revision=ahead)
        results.append(pb.Status(responses[0].status))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_at_future_revision)
        await trio.sleep(0.05)
        assert results == []  # still waiting for the revision
        await broker.create("b/journal")  # reaches `ahead`
    # It saw the journal the awaited revision created (empty, so nothing to
    # read yet), where an impatient read would have answered JOURNAL_NOT_FOUND.
    assert results == [S.OFFSET_NOT_YET_AVAILABLE]


async def test_begin_mod_time_skips_fragments_persisted_before_it(tmp_path: Path) -> None:
    core = JournalServerCore(FileStorage(tmp_path))
    client = LocalJournalClient(core)
    await apply_journals(client, [upsert(new_journal_spec("a/journal", fragment_length=1024))])
    for part in (b"a" * 1024, b"b" * 1024, b"c" * 10):
        await client.append(pb.AppendRequest(journal="a/journal"), [part])
    fragments = (await client.list_fragments(pb.FragmentsRequest(journal="a/journal"))).fragments
    first, second = fragments[0].spec, fragments[1].spec
    # Backdate the first rolled fragment's file, as if persisted an hour ago.
    old = first.mod_time - 3600
    core._journals["a/journal"].fragments[0] = dataclasses.replace(
        core._journals["a/journal"].fragments[0], mod_time=old
    )
    async with client.read(
        pb.ReadRequest(journal="a/journal", begin_mod_time=old + 1)
    ) as stream:
        responses = [r async for r in stream]
    assert responses[0].offset == second.begin == 1024
    assert content_of(responses) == b"b" * 1024 + b"c" * 10
    core.close()


async def test_fragment_store_health_probes_file_stores_and_names_what_it_cannot_reach(
    broker: Broker, tmp_path: Path
) -> None:
    broker.core.file_root = str(tmp_path)
    (tmp_path / "store").mkdir()
    ok = await broker.client.fragment_store_health(
        pb.FragmentStoreHealthRequest(fragment_store="file:///store/")
    )
    assert ok.status == S.OK and ok.store_health_error == "" and ok.header is not None
    missing = await broker.client.fragment_store_health(
        pb.FragmentStoreHealthRequest(fragment_store="file:///nowhere/")
    )
    assert missing.status == S.FRAGMENT_STORE_UNHEALTHY
    assert missing.store_health_error.startswith("file:///nowhere/: ")
    assert str(tmp_path) not in missing.store_health_error  # no server paths to clients
    s3 = await broker.client.fragment_store_health(
        pb.FragmentStoreHealthRequest(fragment_store="s3://bucket/path/")
    )
    assert s3.status == S.FRAGMENT_STORE_UNHEALTHY and "s3://" in s3.store_health_error
    with pytest.raises(aio.InvalidArgument, match="CheckDeletePrefix"):
        await broker.client.fragment_store_health(
            pb.FragmentStoreHealthRequest(
                fragment_store="file:///store/", check_delete_prefix="x/"
            )
        )


# --------------------------------------------------------------------------
# Fragments


async def test_fragments_roll_at_the_spec_length_and_list_with_paging(broker: Broker) -> None:
    await broker.create("a/journal", fragment_length=1024)
    for _ in range(5):
        await append(broker, "a/journal", b"x" * 700)
    response = await broker.client.list_fragments(pb.FragmentsRequest(journal="a/journal"))
    spans = [(f.spec.begin, f.spec.end) for f in response.fragments]
    # A spool rolls before the append that finds it at or past the length.
    assert spans == [(0, 1400), (1400, 2800), (2800, 3500)]
    assert response.fragments[-1].spec.mod_time == 0  # the open spool is not persisted
    for f in response.fragments:
        assert sha1_digest(f.spec.sum) == hashlib.sha1(b"x" * (f.spec.end - f.spec.begin)).digest()
    page = await broker.client.list_fragments(
        pb.FragmentsRequest(journal="a/journal", page_limit=2)
    )
    assert [f.spec.begin for f in page.fragments] == [0, 1400] and page.next_page_token == 2800
    rest = await broker.client.list_fragments(
        pb.FragmentsRequest(journal="a/journal", next_page_token=2800)
    )
    assert [f.spec.begin for f in rest.fragments] == [2800] and rest.next_page_token == 0


# --------------------------------------------------------------------------
# Bad input: a Gazette status or INVALID_ARGUMENT with a message; the server goes on


async def test_a_missing_journal_is_journal_not_found_everywhere(broker: Broker) -> None:
    assert (await append(broker, "no/such/journal", b"x")).status == S.JOURNAL_NOT_FOUND
    [response] = await read_all(broker, journal="no/such/journal", block=True)
    assert response.status == S.JOURNAL_NOT_FOUND
    fragments = await broker.client.list_fragments(pb.FragmentsRequest(journal="no/such/journal"))
    assert fragments.status == S.JOURNAL_NOT_FOUND


async def test_an_invalid_spec_is_rejected_naming_the_problem(broker: Broker) -> None:
    bad_length = new_journal_spec("a/journal", fragment_length=10)
    with pytest.raises(
        aio.InvalidArgument, match=r"Changes\[0\]\.Upsert\.Fragment: invalid Length \(10;"
    ):
        await apply_journals(broker.client, [upsert(bad_length)])
    bad_type = new_journal_spec("a/journal", content_type="not a type")
    with pytest.raises(
        aio.InvalidArgument, match=r"Upsert\.Labels\.Labels\[0\]\.Value: not a valid token"
    ):
        await apply_journals(broker.client, [upsert(bad_type)])
    no_replication = new_journal_spec("a/journal", replication=0)
    with pytest.raises(
        aio.InvalidArgument, match=r"invalid Replication \(0; expected 1 <= Replication <= 5\)"
    ):
        await apply_journals(broker.client, [upsert(no_replication)])
    assert await list_journals(broker.client) == []
    await broker.create("a/journal")  # still serving


async def test_a_journal_name_with_bad_characters_is_invalid_argument(broker: Broker) -> None:
    with pytest.raises(aio.InvalidArgument, match=r"Upsert\.Name: not a valid token \(bad name!\)"):
        await apply_journals(broker.client, [upsert(new_journal_spec("bad name!"))])
    with pytest.raises(aio.InvalidArgument, match=r"Journal: not a valid token \(a/b\|c\)"):
        await append(broker, "a/b|c", b"x")
    with pytest.raises(aio.InvalidArgument, match=r"Journal: must be a clean path \(a//b\)"):
        await read_all(broker, journal="a//b")
    with pytest.raises(aio.InvalidArgument, match=r"Journal: cannot begin with '/' \(/a/b\)"):
        await broker.client.list_fragments(pb.FragmentsRequest(journal="/a/b"))
    await broker.create("a/journal")
    assert (await append(broker, "a/journal", b"ok")).status == S.OK
