"""Real processes for the example and chaos tests: members, brokers, clients.

Everything is started the way a user starts it (the `gazette-trio` command,
`python examples/...`), from the repository root, with settings passed as
`GAZETTE_TRIO_...` environment variables over the example's own config.toml.
Each process logs to a file in the test's directory. `ProcessGroup` owns the
processes of a test: whatever is still running when the test ends is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..services import free_port

REPO = Path(__file__).resolve().parents[2]
GAZETTE_TRIO = str(Path(sys.executable).with_name("gazette-trio"))
PYTHON = sys.executable


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any GAZETTE_TRIO_ variable, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GAZETTE_TRIO_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


@dataclass
class Proc:
    name: str
    args: list[str]
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def json_lines(self) -> Iterator[dict[str, Any]]:
        """Records of a member logging with log.format = "json"."""
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def wait_for_log(self, needle: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.popen.returncode} before logging "
                    f"{needle!r}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not log {needle!r}:\n{self.tail()}")
            time.sleep(0.05)

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running after {timeout} s:\n{self.tail()}"
            ) from None

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM, then the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


@dataclass
class ProcessGroup:
    """The processes of one test, killed at the end if still running."""

    log_dir: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], env: dict[str, str]) -> Proc:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        n = 1
        while log.exists():
            n += 1
            log = self.log_dir / f"{name}.{n}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                list(args), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        proc = Proc(name, list(args), popen, log)
        self.procs.append(proc)
        return proc

    def run(
        self, name: str, args: Sequence[str], env: dict[str, str], timeout: float = 60.0
    ) -> tuple[int, str]:
        """Run a command to its end: (exit status, its output)."""
        proc = self.start(name, args, env)
        code = proc.wait(timeout)
        return code, proc.text()

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.kill()


@dataclass
class MemberPorts:
    grpc: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc}"


def member_env(
    ports: MemberPorts,
    data_dir: Path,
    *,
    suffix: str = "member-one",
    zone: str = "local",
    etcd: str | None = None,
    etcd_prefix: str | None = None,
    lease_ttl: str | None = None,
    broker: str | None = None,
    json_logs: bool = False,
) -> dict[str, str]:
    """A member's settings over its example config: ports, data, identity,
    and, for a group of several, the shared etcd and broker."""
    settings = {
        "GAZETTE_TRIO_MEMBER__PORT": str(ports.grpc),
        "GAZETTE_TRIO_HTTP__PORT": str(ports.http),
        "GAZETTE_TRIO_DATA_DIR": str(data_dir),
        "GAZETTE_TRIO_MEMBER__SUFFIX": suffix,
        "GAZETTE_TRIO_MEMBER__ZONE": zone,
    }
    if etcd is not None:
        settings["GAZETTE_TRIO_ETCD__ENDPOINTS"] = etcd
    if etcd_prefix is not None:
        settings["GAZETTE_TRIO_ETCD__PREFIX"] = etcd_prefix
    if lease_ttl is not None:
        settings["GAZETTE_TRIO_ETCD__LEASE_TTL"] = lease_ttl
    if broker is not None:
        settings["GAZETTE_TRIO_BROKER__ENDPOINT"] = broker
    if json_logs:
        settings["GAZETTE_TRIO_LOG__FORMAT"] = "json"
    return clean_env(**settings)


SERVING = "serving consumer group"


def serve_args(example: str) -> list[str]:
    return [GAZETTE_TRIO, "serve", f"examples/{example}/config.toml"]


def broker_args(data_dir: Path, port: int) -> list[str]:
    return [
        GAZETTE_TRIO,
        "broker",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")
