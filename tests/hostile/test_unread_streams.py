"""A client cannot make a server hold more unread request data than its
HTTP/2 windows allow, and those windows come from the limits.

Against a `gazette-trio broker serve` process, with a raw HTTP/2 client that
counts every byte of window the server grants it (SETTINGS_INITIAL_WINDOW_SIZE
and each WINDOW_UPDATE; exact, where RSS is noisy). Blocking reads whose
handlers never read past their one request message are sent data up to every
window they were given: the server grants nothing more until they go, still
serves other clients (and the one call on a flooded connection that it does
read), and gives the memory back once they disconnect. A client that sends
past its window is told FLOW_CONTROL_ERROR and disconnected, not buffered.
"""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from pathlib import Path

import h2.errors
import h2.events
import h2.settings
import hpack
import hyperframe.frame

from gazette_trio.protocol import protocol as pb

from .hostile_support import (
    APPEND,
    READ,
    RawGrpc,
    Server,
    append,
    append_header,
    content_chunk,
    create_journals,
    frame,
    read_back,
    rss,
    serving_broker,
    start_broker,
)

KiB = 1024
MiB = 1 << 20
WINDOW = 1 * MiB  # the default stream_window
STREAMS = 24


class CountingGrpc(RawGrpc):
    """A raw client that counts the window its server grants it."""

    def __init__(self, port: int) -> None:
        self.granted: dict[int, int] = defaultdict(int)  # by stream; 0 is the connection
        self.sent: dict[int, int] = defaultdict(int)
        self.goaway: int | None = None
        self.settings_seen = False
        super().__init__(port)
        self.granted[0] = 65_535  # HTTP/2's initial connection window
        deadline = time.monotonic() + 10
        while not self.settings_seen:
            assert time.monotonic() < deadline, "no SETTINGS from the server"
            self.pump(timeout=0.5)

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_seen = True
        elif isinstance(event, h2.events.WindowUpdated):
            self.granted[event.stream_id] += event.delta
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event.error_code
        super()._event(event)

    @property
    def stream_window(self) -> int:
        return self.conn.remote_settings.initial_window_size

    def stream_granted(self, sid: int) -> int:
        return self.stream_window + self.granted[sid]

    def fill(self, sid: int) -> int:
        """Send junk on `sid` up to the window it has now, without ending it."""
        total = 0
        while (room := min(self.conn.local_flow_control_window(sid), 16 * KiB)) > 0:
            self.conn.send_data(sid, b"j" * room)
            self._flush()
            total += room
        self.sent[sid] += total
        self.sent[0] += total
        return total


def open_blocking_read(raw: RawGrpc, journal: str) -> int:
    """A Read blocked at the end of an empty journal; its handler reads the
    one request and never the stream again."""
    sid = raw.open(READ)
    raw.send(sid, frame(pb.ReadRequest(journal=journal, offset=0, block=True)))
    return sid


def served(server: Server) -> None:
    """Another client is still served: an append acknowledged and read back."""
    before = len(read_back(server.endpoint, "hostile/a"))
    append(server, "hostile/a", b"still served\n")
    assert read_back(server.endpoint, "hostile/a")[before:] == b"still served\n"


def test_settings_come_from_the_limits(tmp_path: Path) -> None:
    server = start_broker(tmp_path, limits={"max_concurrent_streams": "7"})
    try:
        raw = CountingGrpc(server.port)
        try:
            settings = raw.conn.remote_settings
            assert settings.initial_window_size == MiB  # stream_window's default
            assert settings.max_concurrent_streams == 7
            # The connection's window: room for every stream's, and one more.
            assert raw.granted[0] == 8 * MiB
        finally:
            raw.close()
    finally:
        server.stop()


def test_unread_streams_are_held_to_their_windows(tmp_path: Path) -> None:
    server = start_broker(
        tmp_path,
        limits={"stream_window": str(WINDOW), "max_concurrent_streams": str(STREAMS)},
    )
    try:
        create_journals(server)
        append(server, "hostile/a", b"before\n")
        baseline = rss(server.pid)
        connections = [CountingGrpc(server.port) for _ in range(4)]
        for raw in connections:
            assert raw.stream_window == WINDOW
            assert raw.granted[0] == (STREAMS + 1) * WINDOW

        # Every stream of three connections, and all but one of the fourth,
        # filled to its window and never read.
        flooded: dict[CountingGrpc, list[int]] = {}
        for n, raw in enumerate(connections):
            count = STREAMS - 1 if n == 3 else STREAMS
            flooded[raw] = [open_blocking_read(raw, "hostile/c") for _ in range(count)]
            for sid in flooded[raw]:
                assert raw.fill(sid) > WINDOW - 1 * KiB  # all of it, less the request
        for _ in range(6):
            for raw in connections:
                raw.pump(timeout=0.25)
        for raw, sids in flooded.items():
            assert not raw.closed and raw.goaway is None
            for sid in sids:
                # Nothing granted past the first window: the server holds
                # what was sent and will not take more until it is read.
                assert raw.stream_granted(sid) == WINDOW, raw.granted[sid]
                assert raw.conn.local_flow_control_window(sid) == 0
                assert not raw.done(sid)
            # Nor any connection window: none of it was read.
            assert raw.granted[0] == (STREAMS + 1) * WINDOW
        during = rss(server.pid)
        server.assert_alive()

        # The call the server does read goes through on the flooded
        # connection: the unread streams' data cannot use up its window.
        last = connections[3]
        sid = last.open(APPEND)
        content = bytes(range(256)) * (8 * WINDOW // 256)
        chunks = [content[i : i + WINDOW // 2] for i in range(0, len(content), WINDOW // 2)]
        body = b"".join(
            [append_header("hostile/b"), *map(content_chunk, chunks), content_chunk(b"")]
        )
        assert last.send(sid, body, end=True)
        outcome = last.wait(sid)
        assert outcome.status == 0, outcome
        assert pb.AppendResponse.parse(next(outcome.messages())).status == pb.Status.OK
        assert read_back(server.endpoint, "hostile/b") == content
        # It was given window as it was read, never more than one window
        # ahead of what it sent.
        assert last.stream_granted(sid) <= len(body) + WINDOW

        served(server)
        for raw in connections:
            raw.close()
        time.sleep(12)  # closures noticed, collected and trimmed
        after = rss(server.pid)
        server.assert_alive()
        served(server)
        assert after - baseline < max(32 * MiB, (during - baseline) // 2), (
            f"baseline {baseline >> 20} MiB, during {during >> 20} MiB, after {after >> 20} MiB"
        )
    finally:
        server.stop()


def test_data_past_the_window_is_a_flow_control_error(tmp_path: Path) -> None:
    with serving_broker(tmp_path, limits={"stream_window": str(256 * KiB)}) as server:
        raw = CountingGrpc(server.port)
        sid = open_blocking_read(raw, "hostile/c")
        raw.fill(sid)
        # One frame more than the window, sent around the client's own flow
        # control, as a hostile client would.
        extra = hyperframe.frame.DataFrame(sid, data=b"x" * 1024)
        raw.sock.sendall(extra.serialize())
        deadline = time.monotonic() + 10
        while not raw.closed:
            assert time.monotonic() < deadline, "the connection was not closed"
            raw.pump(timeout=0.5)
        assert raw.goaway == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR
        raw.close()
        server.assert_alive()
        served(server)


def test_settings_in_force_without_the_clients_ack(tmp_path: Path) -> None:
    """A client that never acknowledges the server's SETTINGS is held to
    them all the same: the limits are in the first SETTINGS frame, which is
    in force from the start."""
    server = start_broker(
        tmp_path, limits={"stream_window": str(256 * KiB), "max_concurrent_streams": "4"}
    )
    try:
        create_journals(server)
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            # A client preface and SETTINGS, and no ACK of the server's.
            preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            sock.sendall(preface + hyperframe.frame.SettingsFrame(0).serialize())
            received = b""
            deadline = time.monotonic() + 10
            frames: list[hyperframe.frame.Frame] = []
            while not frames:
                assert time.monotonic() < deadline
                received += sock.recv(1 << 16)
                frames, received = _frames(received)
            # The first frame a server sends is its SETTINGS.
            settings = frames[0]
            assert isinstance(settings, hyperframe.frame.SettingsFrame)
            codes = h2.settings.SettingCodes
            assert settings.settings[codes.MAX_CONCURRENT_STREAMS] == 4
            assert settings.settings[codes.INITIAL_WINDOW_SIZE] == 256 * KiB
            # A fifth stream is one too many even though nothing was acked.
            encoder = _headers_encoder()
            for sid in (1, 3, 5, 7, 9):
                block = encoder.encode(
                    [
                        (":method", "POST"),
                        (":scheme", "http"),
                        (":path", READ),
                        (":authority", "127.0.0.1"),
                        ("content-type", "application/grpc"),
                        ("te", "trailers"),
                    ]
                )
                headers = hyperframe.frame.HeadersFrame(sid, data=block, flags=["END_HEADERS"])
                sock.sendall(headers.serialize())
            goaway = None
            deadline = time.monotonic() + 10
            while goaway is None:
                assert time.monotonic() < deadline, "no GOAWAY"
                data = sock.recv(1 << 16)
                assert data, "closed without a GOAWAY"
                received += data
                frames, received = _frames(received)
                for f in frames:
                    if isinstance(f, hyperframe.frame.GoAwayFrame):
                        goaway = f
            assert goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
        finally:
            sock.close()
        server.assert_alive()
        served(server)
    finally:
        server.stop()


def _frames(data: bytes) -> tuple[list[hyperframe.frame.Frame], bytes]:
    """The whole frames at the start of `data`, and what is left."""
    frames = []
    while len(data) >= 9:
        f, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        if len(data) < 9 + length:
            break
        f.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(f)
        data = data[9 + length :]
    return frames, data


def _headers_encoder() -> hpack.Encoder:
    return hpack.Encoder()
