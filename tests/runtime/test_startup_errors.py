"""A member or journal server that cannot start says why in one line.

Each failure an operator fixes by changing the surroundings (a port held by
another process, a data directory that is a file or on a read-only disk, an
etcd nobody answers at) stops `gazette-trio serve` and `gazette-trio broker
serve` with exit status 2 and one line on stderr naming the config key (or
option), the address or path, and what to do; so does a broker refusing the
connection that creates the declared journals. `--debug` shows the
traceback instead. (A data directory held by another process: tests/hostile/
test_datadir_lock.py.)
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_member import gazette_trio, one_line_error, write_idle_member
from tests.services import tmpfs


@pytest.fixture
def member(tmp_path: Path) -> Path:
    write_idle_member(tmp_path, http="port = 0")
    return tmp_path


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another process's socket listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def closed() -> str:
    """The endpoint of a port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def declare_a_journal(member: Path) -> None:
    """A journal in the member's config, so that starting creates it."""
    config = member / "config.toml"
    config.write_text(
        config.read_text() + '\n[journals]\nname = "x/"\nchildren = [{ name = "x/one" }]\n'
    )


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a read-only file system (root ignores permission bits,
    so a mode 0555 directory would not do)."""
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        yield mount


# -- gazette-trio serve


def test_member_port_in_use_names_member_port(member: Path, held_port: int) -> None:
    line = one_line_error(
        gazette_trio("serve", "config.toml", "--port", str(held_port), cwd=member)
    )
    assert f"member.port = {held_port}: 127.0.0.1:{held_port} is already in use" in line
    assert "--port" in line  # how to choose another


def test_http_port_in_use_names_http_port_before_joining_the_group(
    member: Path, held_port: int
) -> None:
    declare_a_journal(member)
    # One line only: the member stopped before it created its journals (a
    # logged "creating journal") or joined the group.
    line = one_line_error(
        gazette_trio("serve", "config.toml", "--http-port", str(held_port), cwd=member)
    )
    assert f"http.port = {held_port}: 127.0.0.1:{held_port} is already in use" in line
    assert "--http-port" in line


def test_data_dir_that_is_a_file_names_data_dir(member: Path) -> None:
    (member / "data").write_text("not a directory\n")
    line = one_line_error(gazette_trio("serve", "config.toml", cwd=member))
    assert f"data_dir = {member / 'data'}: {member / 'data'} is a file, not a directory" in line


def test_data_dir_under_a_file_names_data_dir(member: Path) -> None:
    (member / "plain").write_text("")
    line = one_line_error(
        gazette_trio("serve", "config.toml", cwd=member, GAZETTE_TRIO_DATA_DIR="plain/data")
    )
    assert f"data_dir = {member / 'plain' / 'data'}: a part of" in line
    assert "is a file, not a directory" in line


@pytest.mark.parametrize("part", ["etcd", "journals", "member"])
def test_a_file_where_data_dir_needs_a_directory_names_data_dir(member: Path, part: str) -> None:
    # The embedded etcd's, journals' and shards' directories inside data_dir.
    (member / "data").mkdir()
    (member / "data" / part).write_text("")
    line = one_line_error(gazette_trio("serve", "config.toml", cwd=member))
    assert line.startswith(f"Error: data_dir = {member / 'data'}: "), line
    assert f"{member / 'data' / part}" in line
    assert "is a file, not a directory" in line


def test_read_only_data_dir_names_data_dir(member: Path, read_only_dir: Path) -> None:
    line = one_line_error(
        gazette_trio("serve", "config.toml", cwd=member, GAZETTE_TRIO_DATA_DIR=str(read_only_dir))
    )
    assert f"data_dir = {read_only_dir}:" in line
    assert "read-only file system" in line
    # A directory to be made on it fails alike.
    below = read_only_dir / "data"
    line = one_line_error(
        gazette_trio("serve", "config.toml", cwd=member, GAZETTE_TRIO_DATA_DIR=str(below))
    )
    assert f"data_dir = {below}: {below} is on a read-only file system" in line


def test_etcd_refusing_connections_names_etcd_endpoints(member: Path, closed: str) -> None:
    line = one_line_error(
        gazette_trio("serve", "config.toml", cwd=member, GAZETTE_TRIO_ETCD__ENDPOINTS=closed)
    )
    assert f"etcd.endpoints = {closed}: cannot reach etcd" in line
    assert "leave [etcd] out" in line


def test_broker_refusing_connections_names_broker_endpoint(member: Path, closed: str) -> None:
    declare_a_journal(member)
    line = one_line_error(
        gazette_trio("serve", "config.toml", cwd=member, GAZETTE_TRIO_BROKER__ENDPOINT=closed)
    )
    assert f"broker.endpoint = {closed}: cannot reach the broker" in line
    assert "leave [broker] out" in line


@pytest.mark.slow  # waits out the bound on etcd's first answer (10 s)
def test_etcd_that_never_answers_names_etcd_endpoints(member: Path, held_port: int) -> None:
    # The held port accepts connections (the kernel's backlog) and says nothing.
    silent = f"http://127.0.0.1:{held_port}"
    line = one_line_error(
        gazette_trio("serve", "config.toml", cwd=member, GAZETTE_TRIO_ETCD__ENDPOINTS=silent)
    )
    assert f"etcd.endpoints = {silent}: no answer from etcd within" in line


def test_debug_shows_the_traceback(member: Path, held_port: int) -> None:
    result = gazette_trio("serve", "config.toml", "--port", str(held_port), "--debug", cwd=member)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "StartupError: member.port" in result.stderr


# -- gazette-trio broker serve


def test_broker_serve_port_in_use_names_port(tmp_path: Path, held_port: int) -> None:
    result = gazette_trio(
        "broker", "serve", "--data-dir", "j", "--port", str(held_port), cwd=tmp_path
    )
    line = one_line_error(result)
    assert f"--port {held_port}: 127.0.0.1:{held_port} is already in use" in line


def test_broker_serve_data_dir_that_is_a_file_names_data_dir(tmp_path: Path) -> None:
    (tmp_path / "j").write_text("")
    line = one_line_error(
        gazette_trio("broker", "serve", "--data-dir", "j", "--port", "0", cwd=tmp_path)
    )
    assert f"--data-dir j: {tmp_path / 'j'} is a file, not a directory" in line


def test_broker_serve_read_only_data_dir_names_data_dir(
    tmp_path: Path, read_only_dir: Path
) -> None:
    result = gazette_trio(
        "broker", "serve", "--data-dir", str(read_only_dir), "--port", "0", cwd=tmp_path
    )
    line = one_line_error(result)
    assert f"--data-dir {read_only_dir}:" in line
    assert "read-only file system" in line
