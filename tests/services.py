"""Real external services for tests: etcd and PostgreSQL.

`etcd_endpoint` starts a private `etcd` (Debian's `etcd-server`) on free
loopback ports in a temporary directory, once per session. `postgres_dsn`
uses the PostgreSQL server `.ci/run` guarantees (the machine's own on
127.0.0.1:5432, or one it started), in a fresh database per session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

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


def etcd_binary() -> str:
    found = shutil.which("etcd") or ("/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None)
    if found is None:
        pytest.fail("etcd is not installed: `apt-get install etcd-server` (.ci/run does this)")
    return found


@pytest.fixture(scope="session")
def etcd_endpoint() -> Iterator[str]:
    """http://127.0.0.1:PORT of a fresh etcd for this test session."""
    data = tempfile.mkdtemp(prefix="gazette-trio-etcd-")
    client, peer = free_port(), free_port()
    log = open(os.path.join(data, "etcd.log"), "wb")  # noqa: SIM115 (lives as long as etcd)
    proc = subprocess.Popen(
        [
            etcd_binary(),
            "--name=test",
            f"--data-dir={data}/data",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=test=http://127.0.0.1:{peer}",
            "--log-level=error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_port(client, 30, proc)
        yield f"http://127.0.0.1:{client}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


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
