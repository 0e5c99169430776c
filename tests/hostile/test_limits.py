"""A client cannot make a journal server hold what it likes.

Against `gazette-trio broker serve` processes: a message whose length prefix
claims 4 GiB, an append that streams content and never commits, and
hundreds of readers that never read. Each is refused or bounded; what was
acknowledged before is read back whole by another process; the server keeps
serving. Memory is judged against generous bounds (a few times what the
server needs, far below what it held before the limits), never timed.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gazette_trio.protocol import protocol as pb

from .hostile_support import (
    APPEND,
    APPLY,
    READ,
    RawGrpc,
    Server,
    append,
    append_header,
    content_chunk,
    frame,
    read_back,
    rss,
    serving_broker,
)

RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14
MiB = 1 << 20


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving_broker(tmp_path_factory.mktemp("limits")) as server:
        yield server


def test_a_4_gib_length_prefix_is_refused_before_it_is_buffered(broker: Server) -> None:
    append(broker, "hostile/a", b"acknowledged\n")
    before = rss(broker.pid)
    raw = RawGrpc(broker.port)
    try:
        # An Append whose second message claims 4 GiB, followed by 8 MiB of it.
        sid = raw.open(APPEND)
        raw.send(sid, append_header("hostile/a") + b"\0" + struct.pack(">I", 0xFFFFFFFF))
        raw.send(sid, b"x" * (8 * MiB))
        out = raw.wait(sid)
        assert out.status == RESOURCE_EXHAUSTED, out
        assert out.message == f"grpc: received message larger than max (4294967295 vs. {4 * MiB})"

        # A unary call too: the claim alone is answered.
        sid = raw.open(APPLY)
        raw.send(sid, b"\0" + struct.pack(">I", 0xFFFFFFF0) + b"y" * 1024)
        out = raw.wait(sid)
        assert out.status == RESOURCE_EXHAUSTED, out
    finally:
        raw.close()
    broker.assert_alive()
    assert rss(broker.pid) < before + 64 * MiB
    assert read_back(broker.endpoint, "hostile/a") == b"acknowledged\n"
    append(broker, "hostile/a", b"and after\n")
    assert read_back(broker.endpoint, "hostile/a") == b"acknowledged\nand after\n"


def test_a_message_over_the_limit_is_refused_and_the_limit_is_configurable(
    tmp_path: Path,
) -> None:
    with serving_broker(tmp_path, limits={"max_grpc_recv_size": "65536"}) as server:
        raw = RawGrpc(server.port)
        try:
            small = raw.call(
                APPEND,
                [append_header("hostile/a"), content_chunk(b"z" * 60_000), content_chunk(b"")],
            )
            assert small.status == 0, small
            big = raw.call(
                APPEND,
                [append_header("hostile/a"), content_chunk(b"z" * 70_000), content_chunk(b"")],
            )
            assert big.status == RESOURCE_EXHAUSTED
            assert "received message larger than max (70004 vs. 65536)" in big.message
        finally:
            raw.close()
        # Only the append within the limit is there.
        assert read_back(server.endpoint, "hostile/a") == b"z" * 60_000


def test_an_append_that_never_commits_is_cut_off_at_the_append_limit(broker: Server) -> None:
    append(broker, "hostile/c", b"first\n")
    before = rss(broker.pid)
    raw = RawGrpc(broker.port)
    chunk = content_chunk(b"c" * MiB)
    sent = 0
    try:
        sid = raw.open(APPEND)
        raw.send(sid, append_header("hostile/c"))
        # Up to 500 MiB of content and no commit chunk: the server stops it
        # long before, at max_append_size (64 MiB by default).
        while sent < 500 and raw.send(sid, chunk):
            sent += 1
        out = raw.wait(sid)
    finally:
        raw.close()
    assert out.status == RESOURCE_EXHAUSTED, out
    assert out.message == (
        f"journal hostile/c: append exceeds the server's limit of {64 * MiB} bytes "
        "(max_append_size); nothing was appended"
    )
    assert sent < 100, f"the server took {sent} MiB before refusing"
    broker.assert_alive()
    # The server held the refused content only up to the limit (plus flow
    # control windows), and nothing of it was appended.
    assert rss(broker.pid) < before + 200 * MiB
    assert read_back(broker.endpoint, "hostile/c") == b"first\n"


def _read_request(journal: str) -> bytes:
    return frame(pb.ReadRequest(journal=journal, offset=0, block=True))


def test_readers_that_never_read_hold_bounded_memory_released_on_disconnect(
    broker: Server,
) -> None:
    payload = bytes(range(256)) * 4096 * 8  # 8 MiB
    for part in range(4):
        append(broker, "hostile/d", payload[part * 2 * MiB : (part + 1) * 2 * MiB])
    baseline = rss(broker.pid)

    # 400 readers on 8 connections (50 streams each, within the per-connection
    # cap), each asking for all 8 MiB with a 1 GiB window, and never reading.
    connections = [RawGrpc(broker.port, window=1 << 30) for _ in range(8)]
    try:
        for raw in connections:
            for _ in range(50):
                sid = raw.open(READ)
                raw.send(sid, _read_request("hostile/d"), end=True)
        time.sleep(3)
        broker.assert_alive()
        during = rss(broker.pid)
        # Without bounds each such reader pinned ~3.3 MB (1.3 GB for 400);
        # now a pipe of 256 KiB and a message in flight each.
        assert during - baseline < 400 * 600 * 1024, (baseline, during)
    finally:
        for raw in connections:
            raw.close()

    # Every stream's buffers go with its connection: RSS comes back to
    # the baseline (within a generous margin) once the server has noticed.
    deadline = time.monotonic() + 30
    while rss(broker.pid) > baseline + 48 * MiB and time.monotonic() < deadline:
        time.sleep(0.5)
    assert rss(broker.pid) <= baseline + 48 * MiB, (baseline, during, rss(broker.pid))
    assert read_back(broker.endpoint, "hostile/d") == payload


def test_appends_in_progress_together_hold_a_bounded_amount(tmp_path: Path) -> None:
    # max_append_size 1 MiB: all appends in progress may hold 4 MiB together.
    with serving_broker(tmp_path, limits={"max_append_size": str(MiB)}) as server:
        raw = RawGrpc(server.port)
        try:
            chunk = content_chunk(b"h" * (900 * 1024))
            sids = []
            for _ in range(6):
                sid = raw.open(APPEND)
                raw.send(sid, append_header("hostile/b") + chunk)
                sids.append(sid)
            deadline = time.monotonic() + 20
            while sum(raw.done(sid) for sid in sids) < 2 and time.monotonic() < deadline:
                raw.pump(timeout=0.2)
            raw.pump(timeout=0.5)  # and no third
            refused = [sid for sid in sids if raw.done(sid)]
            # Four fit (3.6 MiB), the fifth and sixth would not.
            assert len(refused) == 2, [raw.outcomes[s] for s in sids]
            for sid in refused:
                out = raw.outcomes[sid]
                assert out.status == UNAVAILABLE
                assert "bytes of uncommitted appends, near its limit of 4194304" in out.message
            for sid in sids:
                if sid not in refused:
                    raw.send(sid, content_chunk(b""), end=True)
                    assert raw.wait(sid).status == 0
        finally:
            raw.close()
        assert read_back(server.endpoint, "hostile/b") == b"h" * (900 * 1024) * 4
