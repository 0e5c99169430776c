"""`gazette-trio serve` with its journals and recovery logs on Gazette's brokers.

Two members of the word-count example (two zones) share the suite's etcd
and run on the two Gazette brokers; their journals (input, deltas, counts,
recovery logs) are replicated on both brokers and persisted to the `file://`
store. What is promised:

- every word is counted exactly once: the counts the members answer equal
  those of the text sent, no more and no less;
- that stays so when a member is SIGKILLed (the other takes its shards over
  from their recovery logs) and when a Gazette broker is SIGKILLed and
  started again (its journals go on, on the other broker);
- the stream-sum example sums every stream of its chunker exactly once on
  the same brokers, a member being SIGKILLed and restarted meanwhile.

Input is written by `gazctl` (`attach-uuids`, then `journals append`), and
counts are asked of the members' Query API with the example's client.
"""

from __future__ import annotations

import collections
import re
import time
import uuid
from pathlib import Path
from typing import Any

import trio

from gazette_trio import aio
from gazette_trio.broker import GrpcJournalClient
from gazette_trio.message import open_committed

from ..examples.processes import PYTHON, REPO, ProcessGroup, clean_env
from .conftest import Gazctl, GazetteCluster, Member, start_member, wait_until
from .gazctl_output import column

WORD_COUNT = REPO / "examples" / "word_count"
COUNTS = "examples/word-count/counts"
SHARDS = ["count-000", "count-001", "count-002", "count-003", "split-000", "split-001"]
FIRST = ["the quick brown fox", "jumps over the lazy dog", "the end"]
SECOND = ["a fox and a dog", "and the fox again"]
THIRD = ["the dog sleeps", "quick quick quick"]


def on_brokers_config(tmp_path: Path, example: str) -> Path:
    """The example's config, its journals replicated on both brokers and
    persisted to the file:// store."""
    text = (REPO / "examples" / example / "config.toml").read_text()
    text, n = re.subn(
        r"^replication = 1$",
        'replication = 2\nfragment = { length = 65536, compression_codec = "SNAPPY", '
        'stores = ["file:///"], refresh_interval = "1s" }',
        text,
        count=1,
        flags=re.MULTILINE,
    )
    assert n == 1, "the example's journals no longer say `replication = 1`"
    config = tmp_path / f"{example}.toml"
    config.write_text(text)
    return config


def start_group(
    group: ProcessGroup, gazette: GazetteCluster, tmp_path: Path, example: str
) -> tuple[str, Path, dict[str, Member]]:
    prefix = f"/gazette/consumers/{example}-{uuid.uuid4().hex[:8]}"
    config = on_brokers_config(tmp_path, example)
    members = {}
    for suffix, zone in (("alpha", "zone-a"), ("beta", "zone-b")):
        members[suffix] = start_member(
            group,
            example,
            tmp_path / suffix,
            suffix=suffix,
            zone=zone,
            etcd=gazette.etcd,
            etcd_prefix=prefix,
            broker=gazette.endpoint,
            lease_ttl="2s",
            config=config,
        )
    return prefix, config, members


# What an append meets while the brokers re-assign a journal after a broker died.
TRANSIENT = (
    "Unavailable",
    "INSUFFICIENT_JOURNAL_BROKERS",
    "NO_JOURNAL_PRIMARY_BROKER",
    "NOT_JOURNAL_PRIMARY_BROKER",
)


def publish(ctl: Gazctl, lines: list[str]) -> None:
    """Text lines as TextLine messages, alternately to the two input partitions.

    UUIDs are attached once; an append the brokers could not complete is
    sent again, byte for byte, as a Gazette producer retries: readers drop
    the messages they have already seen by their UUIDs."""
    template = '{"_meta":{"uuid":"{{.UUID}}"},"text":"{{.Line}}"}\n'
    for part in (0, 1):
        chunk = lines[part::2]
        if not chunk:
            continue
        framed = ctl(
            "attach-uuids", f"--template={template}", input="".join(f"{x}\n" for x in chunk)
        )
        journal = f"examples/word-count/lines/part-00{part}"
        # A broker's gRPC connection to a restarted peer backs off for a
        # while before it redials; Gazette's own clients retry through it.
        deadline = time.monotonic() + 90
        while True:
            done = ctl("journals", "append", "-l", f"name={journal}", input=framed.ok())
            transient = any(e in done.stderr for e in TRANSIENT)
            if done.code == 0 or not transient or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        done.ok()


def query(group: ProcessGroup, endpoint: str, words: list[str]) -> dict[str, int]:
    code, out = group.run(
        "query",
        [PYTHON, str(WORD_COUNT / "wordcountctl.py"), "query", "-e", endpoint, *words],
        clean_env(),
    )
    assert code == 0, out
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.strip()}


def wait_for_counts(group: ProcessGroup, endpoint: str, lines: list[str]) -> None:
    expected = dict(collections.Counter(w for line in lines for w in line.split()))
    seen: dict[str, int] = {}

    def exact() -> bool:
        nonlocal seen
        seen = query(group, endpoint, sorted(expected))
        return seen == expected

    try:
        wait_until("the counts of what was sent", exact, timeout=60, every=0.3)
    except AssertionError:
        raise AssertionError(f"counts {seen}, expected {expected}") from None


def primaries(ctl: Gazctl) -> dict[str, str]:
    out = ctl("shards", "list", "--primary").ok()
    status = column(out, "STATUS")
    return {
        shard: primary.split(":")[0]
        for shard, primary in column(out, "PRIMARY").items()
        if status[shard] == "PRIMARY"
    }


def test_word_count_on_gazette_brokers_counts_exactly_once_through_kills(
    gazctl: Gazctl, gazette: GazetteCluster, group: ProcessGroup, tmp_path: Path
) -> None:
    _, _, members = start_group(group, gazette, tmp_path, "word_count")
    ctl = gazctl.at(broker=gazette.address, consumer=members["alpha"].endpoint)
    wait_until(
        "the shards spread over both members",
        lambda: len(p := primaries(ctl)) == 6 and set(p.values()) == {"alpha", "beta"},
        timeout=60,
    )
    # Journals and recovery logs are on Gazette's brokers, replicated on both.
    replicas = column(
        ctl("journals", "list", "-l", "name:prefix=examples/word-count/", "--replicas").ok(),
        "REPLICAS",
    )
    assert "examples/word-count/recovery/count-000" in replicas
    assert all(r.strip() for r in replicas.values()), replicas

    publish(ctl, FIRST)
    wait_for_counts(group, members["beta"].endpoint, FIRST)

    members["beta"].proc.kill()
    wait_until(
        "alpha took every shard over",
        lambda: len(p := primaries(ctl)) == 6 and set(p.values()) == {"alpha"},
        timeout=60,
    )
    publish(ctl, SECOND)
    wait_for_counts(group, members["alpha"].endpoint, FIRST + SECOND)

    # A broker dies and comes back; the member dials the other one.
    victim = gazette.brokers[1]
    assert victim.proc is not None
    victim.proc.kill()
    gazette.start(victim)
    gazette.wait_announced()

    def replicated() -> bool:
        out = ctl("journals", "list", "-l", "name:prefix=examples/word-count/", "--replicas")
        return all(r not in ("", "<none>") for r in column(out.ok(), "REPLICAS").values())

    wait_until("every journal has its replica again", replicated, timeout=60)
    publish(ctl, THIRD)
    wait_for_counts(group, members["alpha"].endpoint, FIRST + SECOND + THIRD)

    # The output journal, read committed, holds each change exactly once:
    # the deltas of each word add up to its count, and the last count is it.
    everything = FIRST + SECOND + THIRD
    expected = collections.Counter(w for line in everything for w in line.split())
    deltas: collections.Counter[str] = collections.Counter()
    last: dict[str, int] = {}
    for change in trio.run(committed_changes, gazette.endpoint):
        deltas[change["word"]] += change["delta"]
        last[change["word"]] = change["count"]
    assert deltas == expected and last == dict(expected)

    log = members["alpha"].proc.text()
    assert "Traceback" not in log, members["alpha"].proc.tail()


async def committed_changes(endpoint: str) -> list[dict[str, Any]]:
    """The WordCount messages the counts journal committed (ACKs left out)."""
    async with aio.asyncio_island(), aio.Channel(endpoint) as channel:
        client = GrpcJournalClient(channel, timeout=30)
        async with open_committed(client, COUNTS, dict, block=False) as reader:
            return [envelope.message async for envelope in reader if not envelope.is_ack]


def test_stream_sum_on_gazette_brokers_sums_each_stream_once_through_a_kill(
    gazctl: Gazctl, gazette: GazetteCluster, group: ProcessGroup, tmp_path: Path
) -> None:
    prefix, config, members = start_group(group, gazette, tmp_path, "stream_sum")
    # Each shard has a primary and, on the other member, a hot standby.
    shards = gazctl.at(broker=gazette.address, consumer=members["alpha"].endpoint)

    def standing() -> dict[str, tuple[str, str]]:
        out = shards("shards", "list", "--primary", "--replicas").ok()
        primary, replicas = column(out, "PRIMARY"), column(out, "REPLICAS")
        return {shard: (primary[shard], replicas[shard]) for shard in primary}

    def paired() -> bool:
        table = standing()
        return len(table) == 4 and all(
            {p.split(":")[0], r.split(":")[0]} == {"alpha", "beta"}
            and p.endswith(":PRIMARY")
            and r.endswith(":STANDBY")
            for p, r in table.values()
        )

    wait_until("every shard has a primary and a standby", paired, timeout=60)
    chunker = group.start(
        "chunker",
        [
            PYTHON,
            str(REPO / "examples" / "stream_sum" / "chunker.py"),
            "-b",
            gazette.endpoint,
            "--streams",
            "60",
            "--chunks",
            "8",
        ],
        clean_env(),
    )
    # Killed once some sums are out, so the run spans the kill.
    ctl = gazctl.at(broker=gazette.address)
    wait_until(
        "the first sums",
        lambda: ctl("journals", "read", "-l", "name=examples/stream-sum/sums").ok() != "",
        timeout=60,
    )
    members["beta"].proc.kill()
    members["beta"] = start_member(
        group,
        "stream_sum",
        tmp_path / "beta-again",
        suffix="beta",
        zone="zone-b",
        etcd=gazette.etcd,
        etcd_prefix=prefix,
        broker=gazette.endpoint,
        lease_ttl="2s",
        config=config,
    )
    code = chunker.wait(180)
    out = chunker.text()
    assert code == 0, out
    assert "60 streams, each sum arrived exactly once and matched" in out
