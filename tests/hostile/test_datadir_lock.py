"""One process per data directory: a second one is refused, in one line.

Two `gazette-trio serve` on one data directory both ran every shard as
primary and their journals diverged; two `broker serve` would do the same to
journals. The first process holds an OS lock (flock) on
`<data dir>/gazette-trio.lock` for its whole life; a second gets a one-line
error naming the directory and the holder's pid and exits 2, and the first
goes on serving. The lock dies with its process: after a SIGKILL the next
start needs no cleanup.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gazette_trio.broker.server import FileStorage
from gazette_trio.runtime.datadir import DataDirLocked
from tests.serve_member import gazette_trio, one_line_error, write_idle_member
from tests.services import _wait_port, free_port


def start(
    args: list[str], cwd: Path, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gazette_trio", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    _wait_port(port, 60, proc)
    return proc


def start_member(directory: Path) -> subprocess.Popen[bytes]:
    """`serve` of the member in `directory`, on a port of its own."""
    port = free_port()
    return start(
        ["serve", "config.toml"], directory, port, {"GAZETTE_TRIO_MEMBER__PORT": str(port)}
    )


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def in_use(directory: Path, pid: int) -> str:
    return f"data directory {directory} is in use by process {pid}"


def test_a_second_serve_on_one_data_directory_exits_2_naming_the_holder(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    write_idle_member(tmp_path, http="enabled = false")
    first = start_member(tmp_path)
    procs.append(first)

    second = gazette_trio(
        "serve", "config.toml", cwd=tmp_path, GAZETTE_TRIO_MEMBER__PORT=str(free_port())
    )
    one_line_error(second, in_use((tmp_path / "data").absolute(), first.pid))
    assert first.poll() is None  # the holder serves on

    # The lock dies with its holder: no stale lock after a SIGKILL.
    first.kill()
    first.wait(10)
    procs.append(start_member(tmp_path))


def test_a_second_broker_serve_on_one_data_directory_exits_2_naming_the_holder(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    data = tmp_path / "journals"
    first = start(["broker", "serve", "--data-dir", str(data), "--port", str(port)], tmp_path, port)
    procs.append(first)
    second = gazette_trio(
        "broker", "serve", "--data-dir", str(data), "--port", str(free_port()), cwd=tmp_path
    )
    one_line_error(second, in_use(data.absolute(), first.pid))
    assert first.poll() is None


def test_broker_serve_on_the_journals_of_a_running_serve_is_refused(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    write_idle_member(tmp_path, http="enabled = false")
    member = start_member(tmp_path)
    procs.append(member)
    journals = tmp_path / "data" / "journals"
    broker = gazette_trio(
        "broker", "serve", "--data-dir", str(journals), "--port", str(free_port()), cwd=tmp_path
    )
    one_line_error(broker, in_use(journals.absolute(), member.pid))
    repair = gazette_trio("broker", "repair", "--data-dir", str(journals), cwd=tmp_path)
    one_line_error(repair, in_use(journals.absolute(), member.pid))


def test_file_storage_on_a_directory_this_process_holds_is_refused_too(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    try:
        with pytest.raises(DataDirLocked, match=f"is in use by process {os.getpid()}"):
            FileStorage(tmp_path)
    finally:
        storage.close()
    FileStorage(tmp_path).close()  # released on close
