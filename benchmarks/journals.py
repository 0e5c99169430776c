"""Journals over gRPC on loopback: append and read throughput against plain files.

A journal server runs as its own process (`python -m gazette_trio.broker.server`,
file storage, fsync on), as it does in production, so client and server each
get a core. This process is the client: it appends a stream of chunks (1 KiB
and 64 KiB) through the `AppendService`, then reads the journal back with
the reader. Each figure sits beside a floor measured in the same run: plain
Python doing the same I/O on a file of the same directory.

Every figure and floor is the best of two runs (the machines are shared).

- append: MB/s of acknowledged content. Floor: `os.write` of the same chunks
  to a file with an fsync after every 2 MiB (the append service's largest
  batch), i.e. the same durability granularity. Target >= 0.3x.
- read: MB/s delivered to the caller as `Chunk`s, from offset 0 to the head.
  Floor: reading the same bytes back from a file in 128 KiB reads (the size
  of the server's content responses). Target >= 0.5x.
- one large append (48 MiB in 1 MiB chunks, one RPC): MB/s, and how much
  the server's RSS grew while it streamed, against the append's size (what
  holding it whole until the commit would cost). Floor: `os.write` of the
  same bytes with one fdatasync. Target: RSS growth <= 0.5x the append.
- sequential append: one `append()` RPC at a time, each durable before the
  next starts. Floor: `os.write` + `fdatasync` per chunk. No target; it shows
  what a round trip costs.

The file floors are memory-speed (the page cache), which no gRPC stack in
Python approaches; so each figure is also shown beside two ceilings measured
in the same run:

- the *transport ceiling*: bare grpclib between two processes, pure asyncio,
  raw bytes without protobuf, with the same h2 settings as
  `gazette_trio.aio` (cheap DATA-frame repr, the default limits' windows),
  streaming the same number of bytes (128 KiB messages for reads, 64 KiB
  for appends). Figure / ceiling says what gazette-trio adds on top of the
  transport it is built on; ceiling / append floor is how far moving the
  bytes alone gets before any hashing, writing or fsync.
- the *socket ceiling*: bare TCP on loopback between two Python processes
  (`sendall` / `recv_into` of 128 KiB), against the read floor: the most any
  socket transport from Python could deliver on this host.

The append client runs with the consumer runtime's gc settings (gc.freeze,
gen-0 threshold 50,000) and waits for the last future only (appends to one
journal resolve in order); awaiting 131,072 futures one by one costs a Trio
checkpoint each, which measures the waiting rather than the appending.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from benchmarks.harness import Report
from gazette_trio import aio
from gazette_trio.broker import (
    GrpcJournalClient,
    append,
    apply_journals,
    new_journal_spec,
    open_append_service,
    open_reader,
    upsert,
)
from gazette_trio.protocol import protocol as pb
from tests.hostile.hostile_support import rss

GROUP = "journals"

# Bare grpclib, for the transport ceiling: `serve PORT TOTAL` streams TOTAL
# zero bytes per Read and counts what a Write receives; `measure PORT TOTAL`
# prints MB/s of one Read and one Write of TOTAL bytes.
_RAW_GRPCLIB = """
import asyncio, json, sys, time
from grpclib.client import Channel
from grpclib.const import Cardinality, Handler
from grpclib.encoding.base import CodecBase
from grpclib.server import Server

# The same h2 settings as gazette_trio.aio: a cheap DATA-frame repr (h2
# formats one per received frame); clients with a connection window of
# 2**31-1, servers with the default limits' windows (1 MiB per call, the
# connection's 101 calls' worth).
import grpclib.config, hyperframe.frame as hf
_repr = hf._raw_data_repr
hf._raw_data_repr = lambda data: _repr(data[:11] if data else data)
CONFIG = grpclib.config.Configuration(http2_connection_window_size=2**31 - 1)
SERVER_CONFIG = grpclib.config.Configuration(
    http2_connection_window_size=101 << 20, http2_stream_window_size=1 << 20
)

class Raw(CodecBase):
    __content_subtype__ = "proto"
    def encode(self, message, message_type): return message
    def decode(self, data, message_type): return data

mode, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

class Service:
    def __mapping__(self):
        return {
            "/raw.Raw/Read": Handler(self.read, Cardinality.UNARY_STREAM, bytes, bytes),
            "/raw.Raw/Write": Handler(self.write, Cardinality.STREAM_UNARY, bytes, bytes),
        }
    async def read(self, stream):
        await stream.recv_message()
        data = bytes(1 << 17)
        for _ in range(total >> 17):
            await stream.send_message(data)
    async def write(self, stream):
        n = 0
        async for message in stream:
            n += len(message)
        await stream.send_message(str(n).encode())

async def serve():
    server = Server([Service()], codec=Raw(), config=SERVER_CONFIG)
    await server.start("127.0.0.1", port)
    await server.wait_closed()

async def measure():
    channel = Channel("127.0.0.1", port, codec=Raw(), config=CONFIG)
    start = time.perf_counter()
    async with channel.request("/raw.Raw/Read", Cardinality.UNARY_STREAM, bytes, bytes) as stream:
        await stream.send_message(b"", end=True)
        got = 0
        async for message in stream:
            got += len(message)
    read = got / (time.perf_counter() - start) / 1e6
    data = bytes(1 << 16)
    start = time.perf_counter()
    async with channel.request("/raw.Raw/Write", Cardinality.STREAM_UNARY, bytes, bytes) as stream:
        for _ in range(total >> 16):
            await stream.send_message(data)
        await stream.end()
        await stream.recv_message()
    write = total / (time.perf_counter() - start) / 1e6
    channel.close()
    print(json.dumps({"read": read, "write": write}))

asyncio.run(serve() if mode == "serve" else measure())
"""

# Bare TCP between two Python processes, for the ceiling of any transport:
# `serve PORT TOTAL` sends TOTAL zero bytes to each connection in 128 KiB
# `sendall`s; `measure PORT TOTAL` prints MB/s of receiving them with `recv_into`.
_RAW_SOCKET = """
import socket, sys, time
mode, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if mode == "serve":
    listener = socket.create_server(("127.0.0.1", port))
    data = bytes(1 << 17)
    while True:
        conn, _ = listener.accept()
        try:
            for _ in range(total >> 17):
                conn.sendall(data)
        except OSError:  # the readiness probe connects and leaves at once
            pass
        conn.close()
else:
    conn = socket.create_connection(("127.0.0.1", port))
    buf = bytearray(1 << 17)
    got = 0
    start = time.perf_counter()
    while got < total:
        n = conn.recv_into(buf)
        if not n:
            break
        got += n
    print(got / (time.perf_counter() - start) / 1e6)
"""
MB = 1e6
BATCH_SYNC = 1 << 21


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gazette_trio.broker.server",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port, proc)
    return proc


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode}")
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"nothing listens on port {port}")


def _transport_ceiling(total: int) -> dict[str, float]:
    """MB/s of bare grpclib reading and writing `total` bytes between two processes."""
    import json

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", _RAW_GRPCLIB, "serve", str(port), str(total)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, server)
        out = subprocess.run(
            [sys.executable, "-c", _RAW_GRPCLIB, "measure", str(port), str(total)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        result: dict[str, float] = json.loads(out.stdout)
        return result
    finally:
        server.kill()
        server.wait(10)


def _socket_ceiling(total: int) -> float:
    """MB/s of bare TCP on loopback between two Python processes (best of two)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", _RAW_SOCKET, "serve", str(port), str(total)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, server)
        rates = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", _RAW_SOCKET, "measure", str(port), str(total)],
                check=True,
                capture_output=True,
                timeout=300,
            )
            rates.append(float(out.stdout))
        return max(rates)
    finally:
        server.kill()
        server.wait(10)


def _file_write_floor(path: Path, chunk: bytes, count: int, sync_every: int) -> float:
    """MB/s writing `count` chunks with an fsync every `sync_every` bytes."""
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    unsynced = 0
    for _ in range(count):
        os.write(fd, chunk)
        unsynced += len(chunk)
        if unsynced >= sync_every:
            os.fdatasync(fd)
            unsynced = 0
    os.fdatasync(fd)
    os.close(fd)
    return len(chunk) * count / (time.perf_counter() - start) / MB


def _file_read_floor(path: Path) -> float:
    start = time.perf_counter()
    total = 0
    with open(path, "rb", buffering=0) as f:
        while data := f.read(1 << 17):
            total += len(data)
    return total / (time.perf_counter() - start) / MB


async def _append_service_rate(
    client: GrpcJournalClient, journal: str, chunk: bytes, count: int
) -> float:
    start = time.perf_counter()
    async with open_append_service(client) as service:
        futures = [service.append(journal, chunk) for _ in range(count)]
        # Appends to one journal resolve in order, so the last one resolving
        # means all have. (Awaiting each would cost a Trio checkpoint per
        # append, which measures the waiting, not the appending.)
        await futures[-1]
        for future in futures:
            future.result()  # raises if any failed
    return len(chunk) * count / (time.perf_counter() - start) / MB


async def _read_rate(client: GrpcJournalClient, journal: str) -> float:
    start = time.perf_counter()
    total = 0
    async with open_reader(client, journal, 0, block=False) as reader:
        async for chunk in reader:
            total += len(chunk.content)
    return total / (time.perf_counter() - start) / MB


async def _sequential_rate(
    client: GrpcJournalClient, journal: str, chunk: bytes, count: int
) -> float:
    start = time.perf_counter()
    for _ in range(count):
        await append(client, journal, chunk)
    return len(chunk) * count / (time.perf_counter() - start) / MB


async def _large_append_rate(
    client: GrpcJournalClient, journal: str, size: int, pid: int
) -> tuple[float, int]:
    """MB/s of one `size`-byte append sent in 1 MiB chunks, and the most the
    server's RSS grew while it streamed."""
    chunk = os.urandom(1 << 20)
    peak = before = rss(pid)

    async def content() -> AsyncIterator[bytes]:
        nonlocal peak
        for i in range(size >> 20):
            if i % 8 == 0:
                peak = max(peak, rss(pid))
            yield chunk

    start = time.perf_counter()
    response = await client.append(pb.AppendRequest(journal=journal), content())
    elapsed = time.perf_counter() - start
    assert response.status == pb.Status.OK, response
    return size / elapsed / MB, max(peak, rss(pid)) - before


async def run(report: Report) -> None:
    total = (8 << 20) if report.quick else (128 << 20)
    sequential = 100 if report.quick else 1000
    ceiling = _transport_ceiling(total)
    socket_ceiling = _socket_ceiling(total)
    work = Path(tempfile.mkdtemp(prefix="gazette-trio-bench-journals-"))
    port = _free_port()
    server = _start_server(work / "server", port)
    # The client runs with the consumer runtime's gc settings (what `serve`
    # sets once a member has started): holding 100,000s of pending appends,
    # default thresholds spend a third of the client's time in collections.
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        async with aio.asyncio_island(), aio.Channel(f"127.0.0.1:{port}") as channel:
            client = GrpcJournalClient(channel)
            for size in (1 << 10, 1 << 16):
                label = f"{size >> 10} KiB"
                chunk = os.urandom(size)
                count = total // size
                journal = f"bench/append-{size}"
                await apply_journals(
                    client, [upsert(new_journal_spec(journal, fragment_length=1 << 27))]
                )
                floor_file = work / f"floor-{size}"

                # Best of two runs each (the second appends after the first):
                # this machine's disk and CPUs are shared and noisy.
                value = max(
                    [await _append_service_rate(client, journal, chunk, count) for _ in range(2)]
                )
                floor = max(
                    _file_write_floor(floor_file, chunk, count, BATCH_SYNC) for _ in range(2)
                )
                report.add(
                    GROUP,
                    f"append, {label} chunks, vs transport",
                    value,
                    "MB/s",
                    floor=ceiling["write"],
                    floor_name="bare grpclib client stream, 64 KiB messages",
                )
                report.add(
                    GROUP,
                    f"append, {label} chunks (AppendService, gRPC)",
                    value,
                    "MB/s",
                    floor=floor,
                    floor_name="os.write + fsync per 2 MiB",
                    target_ratio=0.3,
                )
                report.add(
                    GROUP,
                    f"bare grpclib client stream (no disk), vs the {label} append floor",
                    ceiling["write"],
                    "MB/s",
                    floor=floor,
                    floor_name="os.write + fsync per 2 MiB",
                    note="moving the bytes alone, before any hashing, writing or fsync",
                )

                value = max([await _read_rate(client, journal) for _ in range(2)])
                floor = max(_file_read_floor(floor_file) for _ in range(2))
                report.add(
                    GROUP,
                    f"read, journal of {label} appends, vs transport",
                    value,
                    "MB/s",
                    floor=ceiling["read"],
                    floor_name="bare grpclib server stream, 128 KiB messages",
                )
                report.add(
                    GROUP,
                    f"read, journal of {label} appends (reader, gRPC)",
                    value,
                    "MB/s",
                    floor=floor,
                    floor_name="file read, 128 KiB reads",
                    target_ratio=0.5,
                )
                report.add(
                    GROUP,
                    f"bare TCP loopback (no gRPC), vs the {label} read floor",
                    socket_ceiling,
                    "MB/s",
                    floor=floor,
                    floor_name="file read, 128 KiB reads",
                    note="the ceiling of any socket transport from Python on this host",
                )

                journal = f"bench/sequential-{size}"
                await apply_journals(client, [upsert(new_journal_spec(journal))])
                value = await _sequential_rate(client, journal, chunk, sequential)
                floor = _file_write_floor(floor_file, chunk, sequential, 1)
                report.add(
                    GROUP,
                    f"sequential append RPCs, {label} each",
                    value,
                    "MB/s",
                    floor=floor,
                    floor_name="os.write + fdatasync per chunk",
                    note=f"{value * MB / size:,.0f} appends/s",
                )
                floor_file.unlink()

            # One append far larger than a message: the server streams it
            # to disk as it arrives instead of holding it until the commit.
            large = (16 << 20) if report.quick else (48 << 20)
            journal = "bench/large-append"
            await apply_journals(client, [upsert(new_journal_spec(journal))])
            value, grew = await _large_append_rate(client, journal, large, server.pid)
            floor_file = work / "floor-large"
            floor = _file_write_floor(floor_file, os.urandom(1 << 20), large >> 20, large)
            floor_file.unlink()
            report.add(
                GROUP,
                f"one {large >> 20} MiB append, streamed to disk",
                value,
                "MB/s",
                floor=floor,
                floor_name="os.write + one fdatasync",
            )
            report.add(
                GROUP,
                f"journal server RSS growth during one {large >> 20} MiB append",
                grew / MB,
                "MB",
                floor=large / MB,
                floor_name="the append's size (what holding it whole would cost)",
                higher_is_better=False,
                target_ratio=0.5,
            )
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)
