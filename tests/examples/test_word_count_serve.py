"""The word-count example as a user runs it: `gazette-trio serve` processes.

What is promised (examples/word_count/README.md):

- `gazette-trio serve examples/word_count/config.toml` alone (the embedded
  journal server and etcd) counts the lines `wordcountctl publish` sends,
  `wordcountctl query` reads the counts, /status.json shows the shards, and
  SIGTERM ends it with status 0;
- two members sharing a real etcd and `gazette-trio broker serve` split the
  shards; a query asked of either member is answered by the primary of the
  word's shard, forwarded there when it is the other member; when one
  member leaves (SIGTERM, exit 0) the other takes its shards over with
  their counts intact, from the recovery logs.

Each member runs the example's own config.toml; ports, data directory,
member identity, etcd and broker are set through GAZETTE_TRIO_ variables,
as the README shows.
"""

from __future__ import annotations

import collections
import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from word_count import words_of

from .processes import (
    PYTHON,
    SERVING,
    MemberPorts,
    ProcessGroup,
    broker_args,
    clean_env,
    member_env,
    serve_args,
    wait_port,
)

CTL = "examples/word_count/wordcountctl.py"
TEXT = """\
The quick brown fox jumps over the lazy dog.
A fox and a dog and THE END of the story!

It was the best of times, it was the worst of times.
"""


def expected_counts() -> dict[str, int]:
    return dict(collections.Counter(w for line in TEXT.splitlines() for w in words_of(line)))


def publish(group: ProcessGroup, broker: str, tmp_path: Path) -> str:
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT)
    code, out = group.run(
        "publish", [PYTHON, CTL, "publish", "-b", broker, str(text_file)], clean_env()
    )
    assert code == 0, out
    return out


def query(group: ProcessGroup, endpoint: str, words: list[str]) -> dict[str, tuple[int, str, str]]:
    """word → (count, shard, answering member), as wordcountctl prints them."""
    code, out = group.run("query", [PYTHON, CTL, "query", "-e", endpoint, *words], clean_env())
    assert code == 0, out
    answers = {}
    for line in out.splitlines():
        word, count, _, shard, _, member = line.split()
        answers[word] = (int(count), shard, member)
    assert set(answers) == {w.lower() for w in words}, out
    return answers


def wait_for_counts(
    group: ProcessGroup, endpoint: str, expected: dict[str, int], timeout: float = 15.0
) -> dict[str, tuple[int, str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        answers = query(group, endpoint, sorted(expected))
        if {w: a[0] for w, a in answers.items()} == expected:
            return answers
        assert time.monotonic() < deadline, f"counts never reached {expected}: {answers}"
        time.sleep(0.2)


def status(ports: MemberPorts) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{ports.http}/status.json", timeout=5) as r:
        doc: dict[str, Any] = json.load(r)
    return doc


def primaries(ports: MemberPorts) -> dict[str, str]:
    """shard → suffix of its primary, as the member's /status.json shows it."""
    out = {}
    for shard in status(ports)["shards"]:
        for replica in shard["replicas"]:
            if replica["primary"] and replica["status"] == "PRIMARY":
                out[shard["id"]] = replica["suffix"]
    return out


def test_one_member_on_the_embedded_default_counts_answers_and_exits_0_on_sigterm(
    group: ProcessGroup, tmp_path: Path
) -> None:
    ports = MemberPorts()
    member = group.start("member", serve_args("word_count"), member_env(ports, tmp_path / "data"))
    member.wait_for_log(SERVING)

    out = publish(group, ports.endpoint, tmp_path)
    assert "published 3 lines to" in out
    answers = wait_for_counts(group, ports.endpoint, expected_counts())
    assert answers["the"][0] == 6 and answers["times"][0] == 2
    assert {member for _, _, member in answers.values()} == {"local/member-one"}
    assert query(group, ports.endpoint, ["Zebra"]) == {
        "zebra": (0, "count-003", "local/member-one")
    }
    shards = primaries(ports)
    assert sorted(shards) == [
        "count-000",
        "count-001",
        "count-002",
        "count-003",
        "split-000",
        "split-001",
    ]

    assert member.terminate() == 0
    assert "Traceback" not in member.text()
    assert "drained; stopping" in member.text()


@pytest.mark.etcd
def test_two_members_split_the_shards_and_forward_queries_to_the_words_primary(
    group: ProcessGroup, tmp_path: Path, etcd_endpoint: str
) -> None:
    broker_port = MemberPorts().grpc
    group.start("broker", broker_args(tmp_path / "broker", broker_port), clean_env())
    wait_port(broker_port)
    broker = f"127.0.0.1:{broker_port}"
    prefix = f"/gazette/consumers/word-count-{uuid.uuid4().hex[:8]}"
    ports = {"alpha": MemberPorts(), "beta": MemberPorts()}
    members = {}
    for name, p in ports.items():
        env = member_env(
            p, tmp_path / name, suffix=name, etcd=etcd_endpoint, etcd_prefix=prefix, broker=broker
        )
        members[name] = group.start(name, serve_args("word_count"), env)
        members[name].wait_for_log(SERVING)

    deadline = time.monotonic() + 15
    # Until every shard has a serving primary, on both members: a shard
    # moving between them has none while its new primary plays back.
    shards = primaries(ports["alpha"])
    while len(shards) != 6 or set(shards.values()) != {"alpha", "beta"}:
        assert time.monotonic() < deadline, f"the shards never spread: {shards}"
        time.sleep(0.2)
        shards = primaries(ports["alpha"])

    publish(group, broker, tmp_path)
    expected = expected_counts()
    for asked in ("alpha", "beta"):
        answers = wait_for_counts(group, ports[asked].endpoint, expected)
        # Each answer comes from the primary of the word's shard, whoever was asked.
        for word, (_, shard, member) in answers.items():
            assert member == f"local/{shards[shard]}", word
        assert {m for _, _, m in answers.values()} == {"local/alpha", "local/beta"}, (
            "some queries should have been forwarded to the other member"
        )

    assert members["beta"].terminate() == 0
    deadline = time.monotonic() + 15
    while set((shards := primaries(ports["alpha"])).values()) != {"alpha"} or len(shards) != 6:
        assert time.monotonic() < deadline, f"alpha never took every shard: {shards}"
        time.sleep(0.2)
    answers = wait_for_counts(group, ports["alpha"].endpoint, expected)
    assert {m for _, _, m in answers.values()} == {"local/alpha"}
    assert members["alpha"].terminate() == 0
    for member in members.values():
        assert "Traceback" not in member.text(), member.tail()
