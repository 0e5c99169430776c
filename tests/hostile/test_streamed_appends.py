"""A large append is streamed to disk as it arrives, not held in memory.

Against `gazette-trio broker serve` processes, with a raw HTTP/2 client:
content past one message's size goes into the journal's spool while the
client is still sending, so the server's memory stays flat however large
the append; a stream that breaks leaves nothing and its offset is taken by
the next append; and a server killed mid-stream restarts with every
acknowledged byte, the unacknowledged ones cut as a torn tail. What was
acknowledged is checked by another process reading the journal back.
"""

from __future__ import annotations

import hashlib
import signal
import time
from pathlib import Path

from gazette_trio.broker.fragments import sha1_digest
from gazette_trio.protocol import protocol as pb

from .hostile_support import (
    APPEND,
    RawGrpc,
    Server,
    append,
    append_header,
    content_chunk,
    create_journals,
    read_back,
    rss,
    serving_broker,
    start_broker,
)

MiB = 1 << 20


def spool_bytes(server: Server, journal: str) -> int:
    """Bytes in the journal's spool files on disk, committed or not."""
    directory = server.data_dir / "journals" / journal
    return sum(p.stat().st_size for p in directory.glob("*.spool"))


def start_streaming(server: Server, journal: str) -> RawGrpc:
    """A connection carrying a large append to `journal`, left uncommitted
    once the server has written 8 MiB of it to the spool."""
    raw = RawGrpc(server.port)
    sid = raw.open(APPEND)
    raw.send(sid, append_header(journal))
    for _ in range(24):
        raw.send(sid, content_chunk(b"u" * MiB))
    deadline = time.monotonic() + 30
    while spool_bytes(server, journal) < 8 * MiB and time.monotonic() < deadline:
        raw.pump(timeout=0.1)
    assert spool_bytes(server, journal) >= 8 * MiB  # it is streaming
    return raw


def test_a_large_append_goes_to_disk_as_it_arrives_and_memory_stays_flat(tmp_path: Path) -> None:
    with serving_broker(tmp_path, limits={"max_append_size": str(1024 * MiB)}) as server:
        append(server, "hostile/a", b"before\n")
        baseline = rss(server.pid)
        digest = hashlib.sha1()
        peak = baseline
        on_disk_while_sending = 0
        raw = RawGrpc(server.port)
        try:
            sid = raw.open(APPEND)
            raw.send(sid, append_header("hostile/a"))
            for i in range(192):
                chunk = bytes([i % 251]) * MiB
                digest.update(chunk)
                assert raw.send(sid, content_chunk(chunk)), raw.outcomes[sid]
                if i % 16 == 15:
                    peak = max(peak, rss(server.pid))
                    on_disk_while_sending = spool_bytes(server, "hostile/a")
            raw.send(sid, content_chunk(b""), end=True)
            out = raw.wait(sid, timeout=120)
        finally:
            raw.close()
        assert out.status == 0, out
        reply = pb.AppendResponse.parse(next(out.messages()))
        assert reply.status == pb.Status.OK, reply
        assert reply.commit is not None
        assert (reply.commit.begin, reply.commit.end) == (7, 7 + 192 * MiB)
        assert sha1_digest(reply.commit.sum) == digest.digest()
        # Before the commit, most of it was already in the spool...
        assert on_disk_while_sending > 150 * MiB, on_disk_while_sending
        # ...and the server never held more than a few batches of it: 192 MiB
        # held whole would show as 192 MiB (and more) of RSS.
        assert peak - baseline < 64 * MiB, (baseline, peak)
        whole = read_back(server.endpoint, "hostile/a")
        assert len(whole) == 7 + 192 * MiB
        assert hashlib.sha1(whole[7:]).digest() == digest.digest()


def test_a_streamed_append_that_breaks_leaves_nothing_and_its_offset_is_reused(
    tmp_path: Path,
) -> None:
    with serving_broker(tmp_path) as server:
        append(server, "hostile/b", b"acked\n")
        start_streaming(server, "hostile/b").close()  # the client vanishes mid-append
        reply = append(server, "hostile/b", b"after\n")
        assert reply.commit is not None
        assert (reply.commit.begin, reply.commit.end) == (6, 12)
        server.assert_alive()
        assert read_back(server.endpoint, "hostile/b") == b"acked\nafter\n"
        assert spool_bytes(server, "hostile/b") == 12


def test_a_server_killed_mid_stream_restarts_with_every_acknowledged_byte(
    tmp_path: Path,
) -> None:
    server = start_broker(tmp_path)
    port = server.port
    try:
        create_journals(server)
        append(server, "hostile/c", b"acked\n")
        raw = start_streaming(server, "hostile/c")
        try:
            server.popen.send_signal(signal.SIGKILL)
            server.popen.wait(10)
        finally:
            raw.close()
    finally:
        server.stop()

    restarted = start_broker(tmp_path, port=port)
    try:
        assert read_back(restarted.endpoint, "hostile/c") == b"acked\n"
        assert "torn tail" in restarted.text()
        reply = append(restarted, "hostile/c", b"next\n")
        assert reply.commit is not None
        assert (reply.commit.begin, reply.commit.end) == (6, 11)
    finally:
        restarted.stop()
