"""Connections cannot take a server down: 2,000 idle ones under `ulimit -n 1024`.

Against `gazette-trio broker serve` and `gazette-trio serve` processes whose
descriptor limit is 1,024 (soft and hard, so raising the soft limit gains
nothing). Idle TCP connections past what the process can hold are refused
(closed on accept) or, when the cap is set above what descriptors allow,
left waiting while accept fails with EMFILE; either way the process keeps
running, keeps what it acknowledged, and serves again once they go. Idle
connections are closed after the idle timeout, on the gRPC port and the
HTTP one.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gazette_trio.protocol import protocol as pb

from .hostile_support import (
    READ,
    RawGrpc,
    append,
    create_journals,
    frame,
    open_descriptors,
    read_back,
    serving_broker,
    start_broker,
    start_member,
)

IDLE = 2000


@contextmanager
def idle_connections(port: int, count: int, *, wait: bool = True) -> Iterator[list[socket.socket]]:
    """Open `count` TCP connections that send nothing. Those the server
    refuses (closes at once) are kept open on this side all the same. With
    `wait`, each connect waits for the handshake (a connect the server's
    full accept queue holds up is given up after a second); without, they
    are started a hundred at a time."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.settimeout(1 if wait else 0)
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                pass  # in progress, or held up: kept as a pending connection
            socks.append(s)
            if not wait and len(socks) % 100 == 0:
                time.sleep(0.05)  # within the listen backlog
        time.sleep(1)  # let the server take (or refuse) the last ones
        yield socks
    finally:
        for s in socks:
            s.close()


def drained_and_closed(sock: socket.socket) -> bool:
    """Read what the server sent; whether it then closed the connection."""
    try:
        while True:
            if sock.recv(1 << 16, socket.MSG_DONTWAIT) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed `sock` (what it sent before is not read)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset


def test_broker_serve_outlives_2000_idle_connections_under_ulimit_1024(tmp_path: Path) -> None:
    server = start_broker(tmp_path, nofile=1024)
    try:
        create_journals(server)
        append(server, "hostile/a", b"before the flood\n")
        with idle_connections(server.port, IDLE, wait=False) as socks:
            server.assert_alive()
            # The cap (1,024 less 256 reserved) leaves descriptors to work with.
            assert open_descriptors(server.pid) < 1024
            # Those past it were closed at once, so their clients know.
            assert any(closed_by_server(s) for s in socks)
        server.assert_alive()
        time.sleep(1)
        append(server, "hostile/a", b"after the flood\n")
        assert read_back(server.endpoint, "hostile/a") == b"before the flood\nafter the flood\n"
        assert "gRPC connection refused" in server.text()
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_accept_failing_with_emfile_pauses_accepting_and_never_exits(tmp_path: Path) -> None:
    # A cap above what the descriptors allow: accept itself runs out.
    server = start_broker(tmp_path, nofile=1024, limits={"max_connections": "100000"})
    try:
        create_journals(server)
        append(server, "hostile/b", b"kept\n")
        with idle_connections(server.port, IDLE, wait=False):
            time.sleep(1)
            server.assert_alive()
        deadline = time.monotonic() + 20
        while True:
            # The idle ones are gone; accepting resumes within a second or so.
            try:
                append(server, "hostile/b", b"served again\n")
                break
            except (AssertionError, OSError):
                assert time.monotonic() < deadline, server.text()[-3000:]
                time.sleep(0.5)
        server.assert_alive()
        assert read_back(server.endpoint, "hostile/b") == b"kept\nserved again\n"
        log = server.text()
        assert "not accepting connections for a moment: [Errno 24] Too many open files" in log
        assert "Traceback" not in log
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_idle_grpc_connections_get_goaway_then_close(tmp_path: Path) -> None:
    with serving_broker(tmp_path, limits={"idle_timeout": "1s"}) as server:
        raw = RawGrpc(server.port)  # a speaking HTTP/2 client, then silent
        with idle_connections(server.port, 20) as silent:  # never even a preface
            deadline = time.monotonic() + 10
            while not raw.closed:
                assert time.monotonic() < deadline, "an idle HTTP/2 connection stayed open"
                raw.pump(timeout=0.5)
            while not all(drained_and_closed(s) for s in silent):
                assert time.monotonic() < deadline, "silent TCP connections stayed open"
                time.sleep(0.2)
        raw.close()
        # A connection busy with a call is not idle: a blocking read outlives
        # the timeout and still receives what is appended later.
        reader = RawGrpc(server.port)
        sid = reader.open(READ)
        reader.send(sid, frame(pb.ReadRequest(journal="hostile/c", block=True)), end=True)
        time.sleep(3)
        append(server, "hostile/c", b"one\n")
        deadline = time.monotonic() + 10
        while b"one\n" not in reader.outcomes[sid].data:
            assert not reader.closed and time.monotonic() < deadline, reader.outcomes[sid]
            reader.pump(timeout=0.5)
        reader.close()
        assert read_back(server.endpoint, "hostile/c") == b"one\n"


def test_serve_outlives_2000_idle_connections_on_both_ports(tmp_path: Path) -> None:
    member, http_port = start_member(
        tmp_path, nofile=1024, limits={"idle_timeout": "3s", "max_http_connections": "16"}
    )
    try:
        with idle_connections(member.port, IDLE // 2), idle_connections(http_port, IDLE // 2):
            member.assert_alive()
            assert open_descriptors(member.pid) < 1024
        member.assert_alive()
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/status.json", timeout=20) as r:
            assert r.status == 200
        create_journals(member)
        append(member, "hostile/d", b"still serving\n")
        assert read_back(member.endpoint, "hostile/d") == b"still serving\n"
        assert "Traceback" not in member.text()
    finally:
        assert member.stop() == 0, member.text()[-3000:]


def soft_descriptor_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no descriptor limit")


def test_a_server_raises_its_soft_descriptor_limit_to_the_hard_one(tmp_path: Path) -> None:
    server = start_broker(tmp_path, nofile=(1024, 4096))
    try:
        assert soft_descriptor_limit(server.pid) == 4096
    finally:
        server.stop()
