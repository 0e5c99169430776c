"""A shard failed by an outage of its database heals when the database is back.

A `gazette-trio serve` member runs one shard counting lines into PostgreSQL
through an SQLStore. The test's own PostgreSQL (`initdb` and `pg_ctl` on a
free port in a scratch directory, so no other test's database is touched)
is stopped while lines keep arriving: the shard fails, its status says it
is retrying and why, and once the database is started again the shard
starts over by itself and counts every acknowledged line exactly once. An
independent reader (gazctl) reads the lines back.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..examples.processes import GAZETTE_TRIO, SERVING, clean_env
from ..services import absent, free_port
from .hostile_support import Server, append, read_back, spawn, start_broker

HERE = Path(__file__).resolve().parent


class PrivatePostgres:
    """A PostgreSQL server of this test's own, run as the `postgres` user."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            absent("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin = Path(bins[-1]).parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gazette-trio-pg-"))
        shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        self._as_postgres(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"
        )

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _as_postgres(self, tool: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args]
        done = subprocess.run(command, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode(errors="replace")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def count(self, key: str) -> int | None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            try:
                row = conn.execute("SELECT n FROM hostile_counts WHERE k = %s", (key,)).fetchone()
            except psycopg.errors.UndefinedTable:
                return None  # the shard's store has not created it yet
        return None if row is None else int(row[0])

    def close(self) -> None:
        try:
            self.stop()
        except AssertionError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    if os.geteuid() != 0 and not shutil.which("runuser"):
        absent("needs to run PostgreSQL as its own user")
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.close()


CONFIG = """{extra}
data_dir = "{data_dir}"
[application]
module = "pg_counter:LineCounter"
[application.settings]
dsn = "{dsn}"
[member]
port = {port}
suffix = "hostile-outage"
[http]
port = {http_port}
[journals]
name = "hostile/"
replication = 1
labels = [{{ name = "content-type", value = "application/x-ndjson" }}]
children = [{{ name = "hostile/lines" }}{log_journal}]
[shards.common]
max_txn_duration = "500ms"
{shard_extra}
[[shards.shards]]
id = "count-000"
sources = [{{ journal = "hostile/lines" }}]
"""

# With a broker of its own and a recovery log (the SQLStore does not need
# one, but the shard then plays and records it through the broker).
ON_A_BROKER = """
[broker]
endpoint = "{broker}"
"""
RECOVERY_LOG_JOURNAL = (
    ', { name = "hostile/recovery/count-000", labels = '
    '[{ name = "content-type", value = "application/x-gazette-recoverylog" }] }'
)
RECOVERY_LOG = """recovery_log_prefix = "hostile/recovery"
hint_prefix = "/gazette/hints"
"""


def _start(tmp: Path, dsn: str, broker: str | None = None) -> tuple[Server, int]:
    port, http_port = free_port(), free_port()
    config = tmp / "config.toml"
    text = CONFIG.format(
        extra="",
        shard_extra=RECOVERY_LOG if broker else "",
        log_journal=RECOVERY_LOG_JOURNAL if broker else "",
        data_dir=tmp / "data",
        dsn=dsn,
        port=port,
        http_port=http_port,
    )
    if broker:
        # Tables come before the journals' and shards' sub-tables.
        text = text.replace("[member]", ON_A_BROKER.format(broker=broker) + "[member]")
    config.write_text(text)
    log = tmp / "member.log"
    server = spawn(
        [GAZETTE_TRIO, "serve", str(config)],
        clean_env(PYTHONPATH=str(HERE)),
        port,
        log,
        tmp / "data",
    )
    server.wait_for_log(SERVING)
    return server, http_port


def _shard_errors(http_port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/status.json", timeout=10) as r:
        data = json.load(r)
    return [e for shard in data["shards"] for r in shard["replicas"] for e in r.get("errors", [])]


def _wait(what: str, check: object, server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        server.assert_alive()
        assert time.monotonic() < deadline, f"{what}:\n{server.text()[-4000:]}"
        time.sleep(0.25)


def lines(n: int) -> bytes:
    return b"".join(b'{"k": "a"}\n' for _ in range(n))


@pytest.mark.slow
def test_a_postgres_outage_heals_without_an_operator(
    tmp_path: Path, postgres: PrivatePostgres
) -> None:
    member, http_port = _start(tmp_path, postgres.dsn)
    try:
        append(member, "hostile/lines", lines(10))
        _wait("the first 10 lines counted", lambda: postgres.count("a") == 10, member)

        postgres.stop()
        append(member, "hostile/lines", lines(5))  # acknowledged while the database is down

        def retrying() -> bool:
            return any(
                e.startswith("retrying, transient (the database is unreachable)")
                for e in _shard_errors(http_port)
            )

        _wait("the shard reporting that it retries", retrying, member)

        postgres.start()
        append(member, "hostile/lines", lines(5))
        _wait("all 20 lines counted once", lambda: postgres.count("a") == 20, member)
        _wait("the error cleared", lambda: _shard_errors(http_port) == [], member)
        time.sleep(1)
        assert postgres.count("a") == 20  # and not more: exactly once
        assert read_back(member.endpoint, "hostile/lines") == lines(20)
        assert "retrying in" not in member.text() or "starting over" in member.text()
    finally:
        assert member.stop() == 0, member.text()[-3000:]


@pytest.mark.slow
def test_a_broker_outage_heals_a_shard_with_a_recovery_log(
    tmp_path: Path, postgres: PrivatePostgres
) -> None:
    port = free_port()
    broker = start_broker(tmp_path / "broker", port=port)
    member, http_port = _start(tmp_path, postgres.dsn, broker=broker.endpoint)
    try:
        append(broker, "hostile/lines", lines(10))
        _wait("the first 10 lines counted", lambda: postgres.count("a") == 10, member)

        broker.popen.kill()
        broker.popen.wait(10)
        time.sleep(3)  # the member's reads, recorder and hints meet no broker
        member.assert_alive()
        broker = start_broker(tmp_path / "broker", port=port)
        append(broker, "hostile/lines", lines(10))
        _wait("all 20 lines counted once", lambda: postgres.count("a") == 20, member, 90)
        _wait("no error left", lambda: _shard_errors(http_port) == [], member)
        time.sleep(1)
        assert postgres.count("a") == 20
        assert read_back(broker.endpoint, "hostile/lines") == lines(20)
    finally:
        member.stop()
        broker.stop()
