"""`gazette-trio serve` as a user runs it: a real process, signals, restarts.

A small word-count application and its config are written to a temporary
directory; the member runs on the embedded journal server and etcd. Input
is appended and output read with the `gazette-trio journals` commands, shards
listed with `gazette-trio shards list`, all against the live process.
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

WORD_COUNT_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "word_count" / "config.toml"

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
suffix = "member-one"

[http]
port = {http}

[journals]
name = "ex/"
labels = [{{name = "content-type", value = "application/x-ndjson"}}]
children = [{{ name = "ex/counts" }}, {{ name = "ex/lines" }}]

[shards.common]
max_txn_duration = "500ms"
recovery_log_prefix = "ex/recovery"
hint_prefix = "/gazette/hints"

[[shards.shards]]
id = "count-000"
sources = [{{ journal = "ex/lines" }}]
"""


class Member:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.http = free_port()
        (directory / "counter.py").write_text(textwrap.dedent(APP))
        (directory / "config.toml").write_text(CONFIG.format(port=self.port, http=self.http))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *options: str) -> None:
        self.log = open(self.directory / "serve.log", "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gazette_trio", "serve", "config.toml", *options],
            cwd=self.directory,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.logs()
            listed = cli("shards", "list", "-e", self.endpoint, "-o", "json", check=False)
            if listed.returncode == 0 and '"PRIMARY"' in listed.stdout:
                return
            time.sleep(0.2)
        raise AssertionError(f"member did not become primary:\n{self.logs()}")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self.log.close()
        return code

    def logs(self) -> str:
        return (self.directory / "serve.log").read_text()


def cli(
    *args: str, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gazette_trio", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def member(tmp_path: Path) -> Iterator[Member]:
    m = Member(tmp_path)
    try:
        yield m
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait()


def append(m: Member, texts: list[str]) -> None:
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    cli("journals", "-e", m.endpoint, "append", "ex/lines", stdin=lines)


def counts(m: Member) -> dict[str, int]:
    out = cli("journals", "-e", m.endpoint, "read", "ex/counts").stdout
    totals: collections.Counter[str] = collections.Counter()
    for line in out.splitlines():
        doc = json.loads(line)
        if "word" in doc:
            totals[doc["word"]] += doc["delta"]
    return dict(totals)


def wait_for_counts(m: Member, expected: dict[str, int]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if counts(m) == expected:
            return
        time.sleep(0.2)
    assert counts(m) == expected


@pytest.mark.slow
def test_sigterm_drains_and_a_restart_loses_and_repeats_nothing(member: Member) -> None:
    member.start()
    first = [f"alpha beta {i % 3}" for i in range(30)]
    append(member, first)
    member.signal(signal.SIGTERM)
    assert member.wait(30) == 0, member.logs()
    assert "drained; stopping" in member.logs()

    member.start()
    second = [f"beta gamma {i % 4}" for i in range(30)]
    append(member, second)
    expected = collections.Counter(w for t in first + second for w in t.split())
    # The ACKs of the last transaction before the restart may be rewritten on
    # recovery; read-committed, every delta still counts exactly once.
    wait_for_counts(member, dict(expected))
    member.signal(signal.SIGINT)
    assert member.wait(30) == 0, member.logs()


def test_a_killed_members_playback_directories_are_removed_at_its_next_start(
    member: Member,
) -> None:
    member.start()
    append(member, ["alpha beta"])
    wait_for_counts(member, {"alpha": 1, "beta": 1})
    member.signal(signal.SIGKILL)
    member.wait(30)
    playback = member.directory / "data" / "member" / "shards"
    left = {p.name for p in playback.iterdir()}
    assert left, "a killed member leaves its playback directory behind"

    member.start()
    assert not left & {p.name for p in playback.iterdir()}
    assert "removed 1 playback directory" in member.logs()
    append(member, ["alpha"])
    wait_for_counts(member, {"alpha": 2, "beta": 1})


@pytest.mark.slow
def test_a_second_signal_exits_at_once(member: Member) -> None:
    member.start()
    member.signal(signal.SIGTERM)
    member.signal(signal.SIGTERM)
    assert member.wait(10) in (0, 130)


@pytest.mark.slow
def test_the_operator_commands_work_against_a_live_member(member: Member) -> None:
    member.start()
    listed = json.loads(cli("shards", "list", "-e", member.endpoint, "-o", "json").stdout)
    assert listed and "count-000" in json.dumps(listed)
    journals = cli("journals", "-e", member.endpoint, "list", "-o", "json").stdout
    assert "ex/recovery/count-000" in journals
    dry = cli("shards", "unassign", "-e", member.endpoint, "--dry-run", "-l", "id=count-000")
    assert "count-000" in dry.stdout + dry.stderr
    status = json.loads(
        subprocess.run(
            ["curl", "-s", f"http://127.0.0.1:{member.http}/status.json"],
            capture_output=True,
            text=True,
        ).stdout
    )
    assert status["shards"][0]["id"] == "count-000"


def test_serve_options_override_their_config_keys(member: Member) -> None:
    # The config names one pair of ports; the options move the member to another.
    member.port, member.http = free_port(), free_port()
    member.start("--port", str(member.port), "--http-port", str(member.http), "--log-level", "DEBUG")
    status = json.loads(
        subprocess.run(
            ["curl", "-sf", f"http://127.0.0.1:{member.http}/status.json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    )
    assert status
    assert " DEBUG " in member.logs()
    bad = subprocess.run(
        [sys.executable, "-m", "gazette_trio", "serve", "config.toml", "--port", "99999"],
        cwd=member.directory,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--port" in bad.stderr


def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[application]\nmodule = "counter:Counter"\n[member]\nport = "x"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "gazette_trio", "serve", str(tmp_path / "config.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "member.port" in result.stderr


def test_an_application_that_does_not_import_exits_2(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[application]\nmodule = "nowhere:Counter"\n')
    result = subprocess.run(
        [sys.executable, "-m", "gazette_trio", "serve", str(tmp_path / "config.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "application.module" in result.stderr and "nowhere" in result.stderr


TWO_MEMBER_CONFIG = """
data_dir = "data-{suffix}"

[application]
module = "counter:Counter"
[application.settings]
output = "ex/counts"

[member]
port = {port}
suffix = "{suffix}"

[http]
enabled = false

[etcd]
endpoints = ["{etcd}"]
prefix = "/gazette/consumers/two-members"
{broker}
[journals]
name = "ex/"
labels = [{{name = "content-type", value = "application/x-ndjson"}}]
children = [{{ name = "ex/counts" }}, {{ name = "ex/lines" }}]

[[shards.shards]]
id = "count-000"
sources = [{{ journal = "ex/lines" }}]
max_txn_duration = "500ms"
recovery_log_prefix = "ex/recovery"
hint_prefix = "/gazette/hints/two-members"
"""


@pytest.mark.slow
def test_a_stat_sent_to_either_member_is_answered_by_the_primary(
    tmp_path: Path, etcd_endpoint: str
) -> None:
    """Two members share a real etcd; the first embeds the journal server and
    the second reads journals from it. A Stat with read_through sent to the
    member that is not primary is proxied to the one that is."""
    (tmp_path / "counter.py").write_text(textwrap.dedent(APP))
    ports = [free_port(), free_port()]
    procs = []
    try:
        for i, suffix in enumerate(["member-one", "member-two"]):
            broker = "" if i == 0 else f'[broker]\nendpoint = "127.0.0.1:{ports[0]}"\n'
            config = tmp_path / f"{suffix}.toml"
            config.write_text(
                TWO_MEMBER_CONFIG.format(
                    suffix=suffix, port=ports[i], etcd=etcd_endpoint, broker=broker
                )
            )
            log = open(tmp_path / f"{suffix}.log", "wb")  # noqa: SIM115 (closed below)
            procs.append(
                (
                    subprocess.Popen(
                        [sys.executable, "-m", "gazette_trio", "serve", config.name],
                        cwd=tmp_path,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    ),
                    log,
                )
            )
            time.sleep(1.5 if i == 0 else 0)
        endpoints = [f"127.0.0.1:{p}" for p in ports]
        deadline = time.monotonic() + 40
        primary = None
        while time.monotonic() < deadline and primary is None:
            listed = cli("shards", "list", "-e", endpoints[1], "-o", "json", check=False)
            if listed.returncode == 0 and '"PRIMARY"' in listed.stdout:
                primary = (
                    0
                    if "member-one:PRIMARY" in cli("shards", "list", "-e", endpoints[1]).stdout
                    else 1
                )
            time.sleep(0.3)
        assert primary is not None, (tmp_path / "member-two.log").read_text()
        other = 1 - primary

        lines = "".join(json.dumps({"text": f"x y {i}"}) + "\n" for i in range(10)).encode()
        appended = cli("journals", "-e", endpoints[0], "append", "ex/lines", stdin=lines)
        # "appended [begin, end) to ex/lines", on stderr.
        head = int(appended.stderr.split(", ")[1].split(")")[0])

        from gazette_trio.protocol import consumer as pc

        async def stat() -> pc.StatResponse:
            import trio

            from gazette_trio import aio

            async with aio.asyncio_island(), aio.Channel(endpoints[other]) as channel:
                with trio.fail_after(30):
                    return await aio.unary(
                        channel,
                        "/consumer.Shard/Stat",
                        pc.StatRequest(shard="count-000", read_through={"ex/lines": head}),
                        pc.StatResponse,
                    )

        import trio

        reply = trio.run(stat)
        assert reply.status == pc.Status.OK
        assert reply.read_through["ex/lines"] >= head
        # The answer is the primary's: its header names it, not the member asked.
        assert reply.header.process_id.suffix == ["member-one", "member-two"][primary]
    finally:
        for proc, log in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


async def test_two_members_starting_at_once_both_create_the_declared_journals() -> None:
    """Members of one group declare the same journals; whichever applies
    second sees the conflict, looks again and finds them created."""
    import functools

    import trio

    from gazette_trio.broker import LocalJournalClient, list_journals
    from gazette_trio.broker.server import JournalServerCore, MemoryStorage
    from gazette_trio.etcd import MemoryEtcd
    from gazette_trio.runtime.config import load_config
    from gazette_trio.runtime.serve import create_declared

    cfg = load_config(WORD_COUNT_CONFIG)
    journals = LocalJournalClient(JournalServerCore(MemoryStorage()))
    async with MemoryEtcd.open() as etcd, trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(
                functools.partial(create_declared, cfg, etcd, journals, embedded=False)
            )
    listed = await list_journals(journals)
    assert len(listed) == len(cfg.declared_journals())
