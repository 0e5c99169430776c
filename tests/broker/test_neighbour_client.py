"""The neighbours' client: publishing and reading from your own code.

Each test runs a real journal server process (`python -m
gazette_trio.broker.server`) and talks to it only through
`gazette_trio.client`, as a user's script would: no island, no channel.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio

from gazette_trio import aio
from gazette_trio.broker import GrpcJournalClient, apply_journals, new_journal_spec, upsert
from gazette_trio.client import (
    BATCH_BYTES,
    PublishProgress,
    PublishTimeout,
    SyncPublisher,
    open_publisher,
    open_reader,
)
from gazette_trio.message import fnv1a_32

from .conftest import ServerProcess

PARTS = [f"clicks/part-{i:03d}" for i in range(4)]


async def create_partitions(endpoint: str) -> None:
    async with aio.asyncio_island(), aio.Channel(endpoint) as channel:
        client = GrpcJournalClient(channel)
        await apply_journals(
            client,
            [
                upsert(
                    new_journal_spec(
                        name, content_type="application/x-ndjson", labels={"topic": "clicks"}
                    )
                )
                for name in PARTS
            ],
        )


async def read_all(endpoint: str) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for journal in PARTS:
        async with open_reader(endpoint, journal, block=False) as messages:
            out[journal] = [
                {k: v for k, v in dict(envelope.message).items() if k != "_meta"}
                async for envelope in messages
            ]
    return out


@pytest.fixture
async def broker(server_process: ServerProcess) -> str:
    await create_partitions(server_process.endpoint)
    return server_process.endpoint


async def test_published_messages_are_read_back_once_each_and_keys_stay_together(
    broker: str,
) -> None:
    seen: list[PublishProgress] = []
    async with open_publisher(
        broker,
        selector="topic=clicks",
        key=lambda event: event["user"],
        txn_size=250,
        on_progress=lambda p: seen.append(PublishProgress(**vars(p))),
    ) as publisher:
        for i in range(1000):
            await publisher.publish({"user": f"user-{i % 37}", "n": i})
    assert publisher.progress.published == publisher.progress.acknowledged == 1000
    assert publisher.progress.commits == 4
    assert seen and seen[-1].acknowledged == 1000

    read = await read_all(broker)
    events = [m for messages in read.values() for m in messages]
    assert sorted(int(str(m["n"])) for m in events) == list(range(1000))  # each exactly once
    homes = {str(m["user"]): journal for journal, messages in read.items() for m in messages}
    for journal, messages in read.items():
        assert all(homes[str(m["user"])] == journal for m in messages)  # a user's events together
    # Rendezvous hashing, as the consumer's own publishers map the same key.
    for user, journal in homes.items():
        digest = fnv1a_32(user.encode())
        assert journal == max(PARTS, key=lambda name: digest ^ fnv1a_32(name.encode()))


async def test_a_publisher_that_fails_mid_block_leaves_nothing_visible_to_committed_readers(
    broker: str,
) -> None:
    with pytest.raises(RuntimeError, match="the script broke"):
        async with open_publisher(broker, journal=PARTS[0]) as publisher:
            for i in range(100):
                await publisher.publish({"n": i})
            raise RuntimeError("the script broke")
    assert (await read_all(broker))[PARTS[0]] == []
    async with open_publisher(broker, journal=PARTS[0]) as publisher:
        await publisher.publish({"n": "after"})
    assert (await read_all(broker))[PARTS[0]] == [{"n": "after"}]


async def test_memory_is_bounded_by_waiting_for_acknowledgements(broker: str) -> None:
    # 20,000 messages of ~60 bytes (1.2 MB) through a buffer of 4 KiB: what
    # is written but unacknowledged never exceeds the buffer and one batch.
    peak = 0
    async with open_publisher(
        broker, journal=PARTS[1], max_in_flight=4096, transactional=False
    ) as publisher:
        for i in range(20_000):
            await publisher.publish({"n": i, "pad": "x" * 40})
            peak = max(peak, publisher._in_flight_bytes)
    assert peak <= 4096 + BATCH_BYTES
    assert publisher.progress.bytes_acknowledged > 15 * (4096 + BATCH_BYTES)
    assert len((await read_all(broker))[PARTS[1]]) == 20_000


async def test_a_broker_that_goes_away_is_given_up_on_naming_what_is_unacknowledged(
    server_process: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    await create_partitions(server_process.endpoint)
    caplog.set_level(logging.WARNING, logger="gazette_trio.client")
    with pytest.raises(PublishTimeout) as timeout:
        async with open_publisher(
            server_process.endpoint, journal=PARTS[2], give_up_after=3, warn_every=1
        ) as publisher:
            await publisher.publish({"n": 1})
            server_process.kill()
            for i in range(5):
                await publisher.publish({"n": i})
    assert timeout.value.unacknowledged.get(PARTS[2], 0) >= 1
    assert server_process.endpoint in str(timeout.value)
    assert "message(s) unacknowledged" in str(timeout.value)
    assert any("waiting for acknowledgement" in r.getMessage() for r in caplog.records)


async def test_the_sync_publisher_serves_code_that_is_not_async(broker: str) -> None:
    def script() -> PublishProgress:
        with SyncPublisher(broker, selector="topic=clicks", key=lambda e: e["k"]) as publisher:
            for i in range(3000):
                publisher.publish({"k": str(i % 11), "n": i})
        return publisher.progress

    progress = await trio.to_thread.run_sync(script)
    assert progress.acknowledged == 3000
    counts = Counter(
        int(str(m["n"])) for messages in (await read_all(broker)).values() for m in messages
    )
    assert set(counts) == set(range(3000)) and set(counts.values()) == {1}


def test_a_destination_must_be_named_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with open_publisher("localhost:1"):
            pass

    with pytest.raises(ValueError, match="exactly one of journal= or selector="):
        trio.run(main)


async def test_the_publish_command_streams_a_million_events_in_bounded_memory(
    broker: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    with events.open("wb") as out:
        for i in range(1_000_000):
            out.write(b'{"user":"user-%d","page":"/p/%d","n":%d}\n' % (i % 5000, i % 97, i))
    # The command, reporting its own peak RSS as it exits: the high-water
    # mark of its own memory (VmHWM), not a fork's inherited from this
    # (large, by then) test process, which is what its rusage would count.
    result = await trio.run_process(
        [sys.executable, "-c", PEAK_RSS_REPORTING_CLI, *PUBLISH, broker, str(events)],
        capture_stderr=True,
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "published 1000000 message(s) to 4 journal(s)" in stderr
    peak_kb = int(re.search(r"VmHWM (\d+)", stderr).group(1))  # type: ignore[union-attr]
    assert peak_kb < 150 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    # Read back: every event once, a user's events on one journal.
    seen = bytearray(1_000_000)
    for journal in PARTS:
        users: set[str] = set()
        async with open_reader(broker, journal, block=False) as messages:
            async for envelope in messages:
                seen[int(envelope.message["n"])] += 1
                users.add(str(envelope.message["user"]))
        assert users  # rendezvous spreads 5,000 users over all four
    assert set(seen) == {1}


async def test_publish_names_a_bad_line_and_what_was_committed(
    broker: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"n": 1}\n{"n": 2}\n[3]\n{"n": 4}\n')
    command = [sys.executable, "-m", "gazette_trio", "publish", "-e", broker, "-j", PARTS[3]]
    result = await trio.run_process(
        [*command, "--txn-size", "1", str(events)], capture_stderr=True, check=False
    )
    stderr = result.stderr.decode()
    assert result.returncode == 1
    assert f"{events}:3: expected a JSON object, not list" in stderr
    assert "2 earlier message(s) were committed" in stderr
    assert [m["n"] for m in (await read_all(broker))[PARTS[3]]] == [1, 2]


PUBLISH = ["publish", "-l", "topic=clicks", "-k", "user", "-e"]

PEAK_RSS_REPORTING_CLI = """
import atexit, re, sys

def report():
    status = open("/proc/self/status").read()
    sys.stderr.write("VmHWM " + re.search(r"VmHWM:\\s+(\\d+)", status).group(1) + "\\n")

atexit.register(report)
from gazette_trio.cli import main
sys.argv[0] = "gazette-trio"
main()
"""


def docs_snippet(title: str) -> str:
    """The first Python block under the docs/messages.md heading `title`."""
    text = (Path(__file__).parents[2] / "docs" / "messages.md").read_text()
    section = text[text.index(title) :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


async def test_the_docs_publishing_snippet_runs_as_written(broker: str, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(docs_snippet("## Publishing and reading from your own code"))
    result = await trio.run_process(
        [sys.executable, str(script)],
        env={**os.environ, "GAZETTE_BROKER_ENDPOINT": broker},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "1000 events published"
    on_part_zero = (await read_all(broker))[PARTS[0]]
    assert lines[1:] == [f"{m['user']} {m['page']}" for m in on_part_zero]


async def test_a_publisher_whose_brokers_cannot_be_reached_gives_up_naming_them() -> None:
    with trio.fail_after(30), pytest.raises(aio.Unavailable) as refused:
        async with open_publisher("127.0.0.1:1", selector="topic=clicks", give_up_after=2):
            raise AssertionError("a publisher without a listing must not start")
    assert "127.0.0.1:1" in str(refused.value) and "after 2 s" in str(refused.value)
