"""A `gazette-trio serve` whose embedded recovery log was damaged fails the
shard, saying why; it does not rebuild older state and publish again.

A member counts words into a JSON-file store recorded to a recovery log on
its embedded journal server. It is stopped, one byte of the recovery log's
spool is inverted, and it is started again: the shard goes FAILED with the
DATA_LOSS error naming the log's file and offset, and the output journal
holds exactly what it held before (nothing was counted twice).
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import free_port

from .harness import flip

APP = """
import collections
from gazette_trio.consumer.stores.json_file import JSONFileStore
from gazette_trio.message import fixed_mapping

class Counter:
    def __init__(self, output):
        self.out = fixed_mapping(output, "application/x-ndjson")
        self.pending = collections.defaultdict(collections.Counter)

    async def new_store(self, shard, recorder):
        return await JSONFileStore.open(recorder=recorder)

    def new_message(self, spec):
        return dict

    async def consume_message(self, shard, store, envelope, publisher):
        for word in envelope.message["text"].split():
            store.state[word] = store.state.get(word, 0) + 1
            self.pending[shard.id][word] += 1

    async def finalize_txn(self, shard, store, publisher):
        for word, delta in sorted(self.pending.pop(shard.id, {}).items()):
            publisher.publish_uncommitted(self.out, {"word": word, "delta": delta})
"""

CONFIG = """
data_dir = "data"

[application]
module = "counter:Counter"
[application.settings]
output = "ex/counts"

[member]
port = {port}

[http]
enabled = false

[journals]
name = "ex/"
labels = [{{name = "content-type", value = "application/x-ndjson"}}]
children = [{{ name = "ex/counts" }}, {{ name = "ex/lines" }}]

[shards.common]
max_txn_duration = "200ms"
recovery_log_prefix = "ex/recovery"
hint_prefix = "/gazette/hints"

[[shards.shards]]
id = "count-000"
sources = [{{ journal = "ex/lines" }}]
"""

SPOOL = Path("data/journals/journals/ex/recovery/count-000/0000000000000000.spool")


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "gazette_trio", *args], input=stdin, capture_output=True, timeout=60
    )


class Member:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        (directory / "counter.py").write_text(textwrap.dedent(APP))
        (directory / "config.toml").write_text(CONFIG.format(port=self.port))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.directory / "serve.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gazette_trio", "serve", "config.toml"],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def shard_status(self) -> str:
        listed = cli("shards", "list", "-e", self.endpoint, "-o", "json")
        return listed.stdout.decode() if listed.returncode == 0 else ""

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.logs()
            status = self.shard_status()
            if text in status:
                return status
            time.sleep(0.2)
        raise AssertionError(f"no {text} in {self.shard_status()}:\n{self.logs()}")

    def counts(self) -> collections.Counter[str]:
        out = cli("journals", "-e", self.endpoint, "read", "ex/counts").stdout.decode()
        totals: collections.Counter[str] = collections.Counter()
        for line in out.splitlines():
            doc = json.loads(line)
            if "word" in doc:
                totals[doc["word"]] += doc["delta"]
        return totals

    def logs(self) -> str:
        return (self.directory / "serve.log").read_text()


@pytest.fixture
def member(tmp_path: Path) -> Iterator[Member]:
    m = Member(tmp_path)
    try:
        yield m
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait()


@pytest.mark.slow
def test_a_damaged_recovery_log_fails_the_shard_naming_it_and_nothing_is_counted_twice(
    member: Member,
) -> None:
    member.start()
    member.wait_for('"PRIMARY"')
    lines = [f"alpha beta {i % 3}" for i in range(40)]
    stdin = "".join(json.dumps({"text": t}) + "\n" for t in lines).encode()
    assert cli("journals", "-e", member.endpoint, "append", "ex/lines", stdin=stdin).returncode == 0
    expected = collections.Counter(w for t in lines for w in t.split())
    deadline = time.monotonic() + 60
    while member.counts() != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert member.counts() == expected
    assert member.proc is not None
    member.proc.send_signal(signal.SIGTERM)
    assert member.proc.wait(60) == 0, member.logs()

    spool = member.directory / SPOOL
    flip(spool, spool.stat().st_size // 2)
    member.start()
    status = member.wait_for('"FAILED"')
    assert "stored content is damaged at offset" in status, status
    assert "journals/ex/recovery/count-000/0000000000000000.spool" in status, status
    assert member.counts() == expected  # nothing published again
