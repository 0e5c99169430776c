"""Server memory under hostile clients: readers that never read, and appends
that never commit.

Against a `gazette-trio broker serve` process, with the raw HTTP/2 client of
the hostile tests (`tests/hostile/hostile_support.py`): RSS (from /proc) per
reader that asks for 8 MiB and never reads, what is left once they are gone,
what an uncommitted 500 MiB append (refused at the append limit) and a
4 GiB length prefix cost, and what connections cost whose every call is
sent request data up to its HTTP/2 window and never read (the default
`stream_window` and `max_concurrent_streams`), against the window the
server granted them. The tests assert only generous bounds; the figures
are here.
"""

from __future__ import annotations

import struct
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from gazette_trio.protocol import protocol as pb
from tests.hostile.hostile_support import (
    APPEND,
    READ,
    RawGrpc,
    Server,
    append,
    append_header,
    content_chunk,
    frame,
    rss,
    serving_broker,
)
from tests.hostile.test_unread_streams import CountingGrpc, open_blocking_read

from .harness import Report

GROUP = "hostile"
MiB = 1 << 20


def run(report: Report) -> None:
    readers = 100 if report.quick else 400
    with tempfile.TemporaryDirectory() as tmp:
        with serving_broker(Path(tmp)) as server:
            payload = bytes(range(256)) * 4096 * 8
            for part in range(4):
                append(server, "hostile/a", payload[part * 2 * MiB : (part + 1) * 2 * MiB])
            baseline = rss(server.pid)

            connections = [RawGrpc(server.port, window=1 << 30) for _ in range(readers // 50)]
            request = frame(pb.ReadRequest(journal="hostile/a", offset=0, block=True))
            for raw in connections:
                for _ in range(50):
                    raw.send(raw.open(READ), request, end=True)
            time.sleep(3)
            during = rss(server.pid)
            report.add(
                GROUP,
                f"server memory per reader that never reads ({readers} readers)",
                (during - baseline) / readers / 1024,
                "KiB",
                higher_is_better=False,
                target_value=600,
                note="was ~3.3 MB each before stream buffers were bounded",
            )
            _report_left_after_closing(report, server, connections, baseline, "readers")

            before = rss(server.pid)
            raw = RawGrpc(server.port)
            sid = raw.open(APPEND)
            raw.send(sid, append_header("hostile/b"))
            chunk = content_chunk(b"c" * MiB)
            sent = 0
            peak = before
            while sent < 500 and raw.send(sid, chunk):
                sent += 1
                if sent % 8 == 0:
                    peak = max(peak, rss(server.pid))
            raw.wait(sid)
            sid = raw.open(APPEND)
            raw.send(sid, append_header("hostile/b") + b"\0" + struct.pack(">I", 0xFFFFFFFF))
            raw.send(sid, b"x" * (8 * MiB))
            raw.wait(sid)
            raw.close()
            peak = max(peak, rss(server.pid))
            report.add(
                GROUP,
                "server RSS growth during a 500 MiB uncommitted append and a 4 GiB prefix",
                (peak - before) / MiB,
                "MiB",
                higher_is_better=False,
                target_value=160,
                note=f"refused after {sent} MiB (max_append_size 64 MiB)",
            )
        _window_flood(report, Path(tmp) / "flood")


def _window_flood(report: Report, tmp: Path) -> None:
    count = 2 if report.quick else 4
    with serving_broker(tmp) as server:
        baseline = rss(server.pid)
        connections = [CountingGrpc(server.port) for _ in range(count)]
        granted = 0
        for raw in connections:
            streams = raw.conn.remote_settings.max_concurrent_streams
            for sid in [open_blocking_read(raw, "hostile/c") for _ in range(streams)]:
                raw.fill(sid)
            granted += raw.granted[0]
        for _ in range(8):
            for raw in connections:
                raw.pump(timeout=0.25)
        held = sum(raw.sent[0] for raw in connections)
        during = rss(server.pid)
        report.add(
            GROUP,
            f"server RSS per connection whose 100 calls are sent a full window, unread ({count})",
            (during - baseline) / count / MiB,
            "MiB",
            floor=granted / count / MiB,
            floor_name="connection window granted (stream_window x 101)",
            higher_is_better=False,
            target_ratio=1.25,
            note=f"{held / MiB:.0f} MiB sent in all; was 400 MiB of window per connection "
            "(4 MiB per call) before stream_window",
        )
        _report_left_after_closing(report, server, connections, baseline, "connections")


def _report_left_after_closing(
    report: Report, server: Server, connections: Sequence[RawGrpc], baseline: int, what: str
) -> None:
    """Close `connections` and report the server's RSS above `baseline` once
    it has let go of them."""
    for raw in connections:
        raw.close()
    time.sleep(12)  # closures noticed, collected and trimmed
    report.add(
        GROUP,
        f"server RSS above its baseline once those {what} are gone",
        (rss(server.pid) - baseline) / MiB,
        "MiB",
        higher_is_better=False,
        target_value=48,
    )
