"""What the hostile tests share: server processes started as users start them
(under a chosen descriptor limit), a raw HTTP/2 gRPC client that sends what
no well-behaved client would, an independent reader, and RSS from /proc.

The raw client is `h2` over a blocking socket: it can claim a 4 GiB message,
stream content without ever committing, open streams and never read them.
The independent reader is another process (`gazctl` when it is built,
otherwise the `gazette-trio journals read` command), so what a test checks
as acknowledged is what any client would read back.
"""

from __future__ import annotations

import os
import resource
import select
import socket
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from gazette_trio.protocol import protocol as pb

from ..examples.processes import GAZETTE_TRIO, REPO, SERVING, clean_env
from ..services import free_port

GAZCTL = REPO / ".cache" / "gazette" / "bin" / "gazctl"


# -- processes ---------------------------------------------------------------


def _limit_descriptors(n: int | tuple[int, int] | None) -> None:
    if n is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, n if isinstance(n, tuple) else (n, n))


@dataclass
class Server:
    """A `gazette-trio` server process and where it listens."""

    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    data_dir: Path

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def assert_alive(self) -> None:
        assert self.alive(), f"exited with {self.popen.returncode}:\n{self.text()[-4000:]}"

    def wait_for_log(self, text: str, within: float = 60) -> None:
        """Wait until `text` is in the log, failing if the process exits."""
        deadline = time.monotonic() + within
        while text not in self.text():
            self.assert_alive()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.1)

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                return self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(10)


def _wait_listening(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        server.assert_alive()
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"not listening after {timeout} s:\n{server.text()}") from None
            time.sleep(0.05)


def spawn(
    command: Sequence[str],
    env: dict[str, str],
    port: int,
    log: Path,
    data: Path,
    nofile: int | tuple[int, int] | None = None,
) -> Server:
    """Start `command` from the repository, its output in `log`, with `ulimit
    -n nofile` when given."""
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: _limit_descriptors(nofile),
        )
    return Server(popen, port, log, data)


def start_broker(
    tmp: Path,
    *,
    nofile: int | tuple[int, int] | None = None,
    limits: dict[str, str] | None = None,
    port: int | None = None,
    args: Sequence[str] = (),
) -> Server:
    """`gazette-trio broker serve --data-dir ... *args` with
    `GAZETTE_TRIO_LIMITS__*` set from `limits` and, with `nofile`, `ulimit -n
    nofile` (soft and hard)."""
    port = port or free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    data = tmp / "journals"
    log = tmp / f"broker-{port}.log"
    n = 1
    while log.exists():  # a restart on the same port keeps the first log
        n += 1
        log = tmp / f"broker-{port}.{n}.log"
    env = clean_env(**{f"GAZETTE_TRIO_LIMITS__{k.upper()}": v for k, v in (limits or {}).items()})
    command = [GAZETTE_TRIO, "broker", "serve", "--data-dir", str(data), "--port", str(port)]
    server = spawn([*command, *args], env, port, log, data, nofile)
    _wait_listening(server)
    return server


@contextmanager
def serving_broker(
    tmp: Path,
    *,
    nofile: int | tuple[int, int] | None = None,
    limits: dict[str, str] | None = None,
) -> Iterator[Server]:
    """`start_broker` with the `HOSTILE_JOURNALS` created, stopped on exit."""
    server = start_broker(tmp, nofile=nofile, limits=limits)
    try:
        create_journals(server)
        yield server
    finally:
        server.stop()


MEMBER_CONFIG = """
data_dir = "{data_dir}"
[application]
module = "word_count:WordCount"
[member]
port = {port}
suffix = "hostile-member"
[http]
port = {http_port}
"""


def start_member(
    tmp: Path, *, nofile: int | None = None, limits: dict[str, str] | None = None
) -> tuple[Server, int]:
    """`gazette-trio serve` of the word-count example with everything
    embedded; returns the server and its HTTP port."""
    port, http_port = free_port(), free_port()
    data = tmp / "member-data"
    config = tmp / "config.toml"
    config.write_text(MEMBER_CONFIG.format(port=port, http_port=http_port, data_dir=data))
    env = clean_env(
        PYTHONPATH=str(REPO / "examples" / "word_count"),
        **{f"GAZETTE_TRIO_LIMITS__{k.upper()}": v for k, v in (limits or {}).items()},
    )
    log = tmp / f"member-{port}.log"
    server = spawn([GAZETTE_TRIO, "serve", str(config)], env, port, log, data, nofile)
    _wait_listening(server, timeout=60)
    server.wait_for_log(SERVING)
    return server, http_port


def cli(
    endpoint: str, *args: str, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`gazette-trio journals -e endpoint args...`."""
    return subprocess.run(
        [GAZETTE_TRIO, "journals", "-e", endpoint, *args],
        input=input,
        capture_output=True,
        env=clean_env(),
        cwd=REPO,
        timeout=120,
    )


HOSTILE_JOURNALS = ("hostile/a", "hostile/b", "hostile/c", "hostile/d")


def create_journals(server: Server) -> None:
    """Create the `HOSTILE_JOURNALS` with an Apply."""
    from gazette_trio.broker.journal_spec import new_journal_spec

    request = pb.ApplyRequest(
        changes=[pb.ApplyRequestChange(upsert=new_journal_spec(name)) for name in HOSTILE_JOURNALS]
    )
    raw = RawGrpc(server.port)
    try:
        out = raw.call(APPLY, [frame(request)])
    finally:
        raw.close()
    assert out.status == 0, out
    reply = pb.ApplyResponse.parse(next(out.messages()))
    assert reply.status == pb.Status.OK, reply


def append(server: Server, journal: str, data: bytes) -> pb.AppendResponse:
    """One append, acknowledged (status OK) or the test fails."""
    raw = RawGrpc(server.port)
    try:
        out = raw.call(APPEND, [append_header(journal), content_chunk(data), content_chunk(b"")])
    finally:
        raw.close()
    assert out.status == 0, out
    reply = pb.AppendResponse.parse(next(out.messages()))
    assert reply.status == pb.Status.OK, reply
    return reply


def read_back(endpoint: str, journal: str) -> bytes:
    """Everything `journal` holds, read by another process: gazctl if built,
    else the gazette-trio CLI."""
    if os.access(GAZCTL, os.X_OK):
        env = clean_env(BROKER_ADDRESS=f"http://{endpoint}")
        done = subprocess.run(
            [str(GAZCTL), "journals", "read", "-l", f"name={journal}"],
            capture_output=True,
            env=env,
            timeout=120,
        )
    else:
        done = cli(endpoint, "read", journal)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def rss(pid: int) -> int:
    """Resident set size of `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# -- a raw gRPC client ---------------------------------------------------------


def frame(message: bytes | object) -> bytes:
    """A gRPC length-prefixed message."""
    body = message if isinstance(message, bytes) else bytes(message)  # type: ignore[call-overload]
    return b"\0" + struct.pack(">I", len(body)) + body


@dataclass
class Outcome:
    """How the server ended a stream."""

    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)
    trailers: dict[str, str] = field(default_factory=dict)
    reset: int | None = None
    ended: bool = False

    @property
    def status(self) -> int | None:
        value = self.trailers.get("grpc-status") or self.headers.get("grpc-status")
        return None if value is None else int(value)

    @property
    def message(self) -> str:
        from urllib.parse import unquote

        return unquote(self.trailers.get("grpc-message") or self.headers.get("grpc-message", ""))

    def messages(self) -> Iterator[bytes]:
        view = bytes(self.data)
        while len(view) >= 5:
            (n,) = struct.unpack(">I", view[1:5])
            yield view[5 : 5 + n]
            view = view[5 + n :]


class RawGrpc:
    """One HTTP/2 connection speaking gRPC by hand, over a blocking socket."""

    def __init__(self, port: int, *, window: int | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.outcomes: dict[int, Outcome] = {}
        self.closed = False
        self._flush()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def open(self, path: str) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            sid,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", path),
                (":authority", "127.0.0.1"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ],
        )
        self.outcomes[sid] = Outcome()
        self._flush()
        return sid

    def done(self, sid: int) -> bool:
        out = self.outcomes[sid]
        return out.ended or out.reset is not None or self.closed

    def send(self, sid: int, data: bytes, *, end: bool = False) -> bool:
        """Send `data` as flow control allows; False if the server ended the
        stream (or the connection) first."""
        view = memoryview(data)
        while view:
            if self.done(sid):
                return False
            window = min(
                self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                self.pump(timeout=5)
                continue
            chunk, view = view[:window], view[window:]
            try:
                self.conn.send_data(sid, bytes(chunk), end_stream=end and not view)
            except h2.exceptions.StreamClosedError:
                return False
            self._flush()
            self.pump(timeout=0)
        if end and not data:
            self.conn.end_stream(sid)
            self._flush()
        return True

    def pump(self, timeout: float) -> None:
        """Read and process what the server sent, waiting up to `timeout`."""
        if self.closed:
            return
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, TimeoutError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self._event(event)
        self._flush()

    def _event(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        out = self.outcomes.get(sid) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and out is not None:
            out.headers = dict(event.headers)  # type: ignore[arg-type]
        elif isinstance(event, h2.events.TrailersReceived) and out is not None:
            out.trailers = dict(event.headers)  # type: ignore[arg-type]
        elif isinstance(event, h2.events.DataReceived) and out is not None:
            out.data += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and out is not None:
            out.ended = True
        elif isinstance(event, h2.events.StreamReset) and out is not None:
            out.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True

    def wait(self, sid: int, timeout: float = 30.0) -> Outcome:
        deadline = time.monotonic() + timeout
        while not self.done(sid):
            assert time.monotonic() < deadline, f"stream {sid} not ended after {timeout} s"
            self.pump(timeout=0.5)
        return self.outcomes[sid]

    def call(self, path: str, messages: Sequence[bytes], timeout: float = 30.0) -> Outcome:
        """Send raw `messages` (already framed) as one call and wait for its end."""
        sid = self.open(path)
        body = b"".join(messages)
        self.send(sid, body, end=True)
        return self.wait(sid, timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


APPEND = "/protocol.Journal/Append"
READ = "/protocol.Journal/Read"
APPLY = "/protocol.Journal/Apply"


def append_header(journal: str) -> bytes:
    return frame(pb.AppendRequest(journal=journal))


def content_chunk(content: bytes) -> bytes:
    return frame(pb.AppendRequest(content=content))
