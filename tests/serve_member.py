"""The `gazette-trio` command as tests run it: in a subprocess, as a user would.

`gazette_trio` runs one command to its end; `one_line_error` is what a
command that cannot start must print: exit status 2 and one line, `Error:
...`, no traceback. `ServeMember` is one `gazette-trio serve` process
started (and restarted) from a directory holding its config and the
application the config names, logging to a file there; the tests ask it
about its shards with the `gazette-trio` commands, as an operator would.
`APP` and `CONFIG` are the word-count member most of these tests serve
(the `member` fixture), `append`, `counts` and `wait_for_counts` its input
and output, `serve_pair` two such members of one group on a real etcd, and
`stat` a Shard Stat RPC to one of them. `IDLE_APP` (`write_idle_member`)
serves no shards, for tests of a member's start alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from gazette_trio import aio
from gazette_trio.protocol import consumer as pc
from tests.services import free_port

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

IDLE_APP = """
class Idle:
    async def new_store(self, shard, recorder):
        raise NotImplementedError

    def new_message(self, spec):
        return dict

    async def consume_message(self, shard, store, envelope, publisher):
        pass

    async def finalize_txn(self, shard, store, publisher):
        pass
"""


def write_idle_member(directory: Path, http: str) -> None:
    """idle.py and a config.toml serving it on any free port, with `http`
    as the [http] table's body."""
    (directory / "idle.py").write_text(textwrap.dedent(IDLE_APP))
    (directory / "config.toml").write_text(
        f'data_dir = "data"\n\n[application]\nmodule = "idle:Idle"\n\n'
        f"[member]\nport = 0\n\n[http]\n{http}\n"
    )


def gazette_trio(
    *args: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = False,
    **settings: str,
) -> subprocess.CompletedProcess[str]:
    """Run `gazette-trio args` to its end, in `env` (by default this
    process's environment) plus `settings`; `check` asserts it succeeded."""
    environment = None
    if env is not None or settings:
        environment = {**(os.environ if env is None else env), **settings}
    result = subprocess.run(
        [sys.executable, "-m", "gazette_trio", *args],
        input=stdin.decode() if stdin is not None else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        # A bound: a command that hangs instead of finishing fails the test.
        timeout=60,
        env=environment,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def one_line_error(result: subprocess.CompletedProcess[str], *naming: str, code: int = 2) -> str:
    """The one line a command that could not start printed, having checked
    it exited with `code`, printed nothing else (no traceback) and names
    each of `naming`."""
    assert result.returncode == code, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for text in naming:
        assert text in lines[0], lines[0]
    return lines[0]


class ServeMember:
    """`gazette-trio serve <config>` run from `directory`, which holds the
    config and the application it names; the member listens on `port`.

    Its output goes to `log` in `directory`, appended to across restarts, so
    `logs()` tells every run's story in order. Subclasses change the
    environments the member and its operator run in."""

    host = "127.0.0.1"

    def __init__(
        self,
        directory: Path,
        *,
        config: str = "config.toml",
        log: str = "serve.log",
        port: int | None = None,
        http: int | None = None,
    ) -> None:
        self.directory = directory
        self.config = config
        self.log = directory / log
        self.port = free_port() if port is None else port
        self.http = free_port() if http is None else http
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def serve_env(self) -> dict[str, str] | None:
        """The environment the member runs in (None: this process's)."""
        return None

    def operator_env(self) -> dict[str, str] | None:
        """The environment of an operator's commands (None: this process's)."""
        return None

    def cli(
        self,
        *args: str,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """A `gazette-trio` command run by this member's operator."""
        return gazette_trio(
            *args, stdin=stdin, env=self.operator_env() if env is None else env, check=check
        )

    def start(self, *options: str, until: str | None = '"PRIMARY"', within: float = 30) -> None:
        """Start the member with `options` after its config and, unless
        `until` is None, wait until its shards' status shows `until`."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gazette_trio", "serve", self.config, *options],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.serve_env(),
            )
        if until is not None:
            self.wait_for(until, within)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def shard_status(self) -> str:
        """`shards list -o json` of the member, or "" while it cannot answer."""
        listed = self.cli("shards", "list", "-e", self.endpoint, "-o", "json")
        return listed.stdout if listed.returncode == 0 else ""

    def wait_for(self, text: str, within: float = 30) -> str:
        """The shards' status once it shows `text`; the member must not exit."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.running(), self.logs()
            status = self.shard_status()
            if text in status:
                return status
            time.sleep(0.2)
        raise AssertionError(
            f"no {text} in {self.shard_status()!r} after {within} s:\n{self.logs()}"
        )

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The member's exit status, once it exits within `timeout`."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, as an operator stops a member; killed if still running
        after `timeout`."""
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def logs(self) -> str:
        return self.log.read_text()

    def write_word_count(self, config: str = CONFIG, settings: str = "") -> None:
        """The word-count application, and `config` (formatted with the
        member's ports) followed by `settings` as the member's config."""
        (self.directory / "counter.py").write_text(textwrap.dedent(APP))
        (self.directory / self.config).write_text(
            config.format(port=self.port, http=self.http) + settings
        )


@pytest.fixture
def member(tmp_path: Path) -> Iterator[ServeMember]:
    """The word-count member of `CONFIG` in the test's directory, not yet
    started; killed at the end if still running."""
    m = ServeMember(tmp_path)
    m.write_word_count()
    try:
        yield m
    finally:
        m.kill()


def append(member: ServeMember, texts: list[str]) -> None:
    """Append `texts` to ex/lines, one {"text": ...} document each."""
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    member.cli("journals", "-e", member.endpoint, "append", "ex/lines", stdin=lines, check=True)


def counts(member: ServeMember) -> dict[str, int]:
    """The word counts in ex/counts: the sum of each word's deltas."""
    out = member.cli("journals", "-e", member.endpoint, "read", "ex/counts", check=True).stdout
    totals: dict[str, int] = {}
    for line in out.splitlines():
        doc = json.loads(line)
        if "word" in doc:
            totals[doc["word"]] = totals.get(doc["word"], 0) + doc["delta"]
    return totals


def wait_for_counts(member: ServeMember, expected: Mapping[str, int], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if counts(member) == expected:
            return
        time.sleep(0.2)
    assert counts(member) == expected


def appended_head(appended: subprocess.CompletedProcess[str]) -> int:
    """The end offset `journals append` reports: "appended [begin, end) to
    <journal>", on stderr."""
    return int(appended.stderr.split(", ")[1].split(")")[0])


PAIR_CONFIG = """
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
prefix = "/gazette/consumers/{group}"
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
hint_prefix = "/gazette/hints/{group}"
"""

PAIR = ("member-one", "member-two")


@contextmanager
def serve_pair(
    make: Callable[..., ServeMember],
    etcd: str,
    group: str,
    settings: str = "",
    *,
    app: tuple[str, str] = ("counter.py", APP),
    config: str = PAIR_CONFIG,
    **fields: str,
) -> Iterator[tuple[list[ServeMember], int]]:
    """Two word-count members of `group` sharing `etcd`, made by
    `make(config=..., log=...)` in one directory: member-one embeds the
    journal server, member-two reads journals from it. Yields them and the
    index of count-000's primary; both are stopped (SIGTERM) at the end.
    `settings` is appended to both configs.

    Another application serves as a pair with `app`, its file's name and
    source, and `config`, a template like `PAIR_CONFIG` given each member's
    suffix, port, http port, etcd, group and broker, and `fields`."""
    members = [make(config=f"{suffix}.toml", log=f"{suffix}.log") for suffix in PAIR]
    (members[0].directory / app[0]).write_text(textwrap.dedent(app[1]))
    try:
        for i, (suffix, member) in enumerate(zip(PAIR, members, strict=True)):
            broker = "" if i == 0 else f'[broker]\nendpoint = "{members[0].endpoint}"\n'
            text = config.format(
                suffix=suffix,
                port=member.port,
                http=member.http,
                etcd=etcd,
                group=group,
                broker=broker,
                **fields,
            )
            (member.directory / member.config).write_text(text + settings)
            member.start(until=None)
            # member-two's broker is member-one's embedded journal server.
            time.sleep(1.5 if i == 0 else 0)
        deadline = time.monotonic() + 40
        primary = None
        while time.monotonic() < deadline and primary is None:
            listed = members[1].cli("shards", "list", "-e", members[1].endpoint)
            if listed.returncode == 0 and ":PRIMARY" in listed.stdout:
                primary = 0 if "member-one:PRIMARY" in listed.stdout else 1
            time.sleep(0.3)
        assert primary is not None, members[1].logs()
        yield members, primary
    finally:
        for member in reversed(members):
            member.stop()


def stat(
    endpoint: str,
    read_through: dict[str, int],
    credentials: aio.DialCredentials | None = None,
) -> pc.StatResponse:
    """The Shard Stat of count-000 asked of the member at `endpoint`."""

    async def ask() -> pc.StatResponse:
        async with (
            aio.asyncio_island(),
            aio.Channel(endpoint, credentials=credentials) as channel,
        ):
            with trio.fail_after(30):
                return await aio.unary(
                    channel,
                    "/consumer.Shard/Stat",
                    pc.StatRequest(shard="count-000", read_through=read_through),
                    pc.StatResponse,
                )

    return trio.run(ask)
