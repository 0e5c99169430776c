"""Stream sum: Gazette's self-verifying example, on gazette-trio.

Three parts, as in Gazette's `examples/stream-sum`:

1. the **chunker** (`chunker.py`, a separate command) writes many streams at
   once, interleaved: each stream is a run of chunks of random data, numbered
   from 1, then a final, empty chunk. Chunks are published in transactions
   (uncommitted, then acknowledged), spread over the `Chunk` partitions by
   stream;
2. the **summer** (`Summer`, this module's Application) keeps a running
   CRC-64 of each stream in its `SQLiteStore` and, on a stream's final chunk,
   publishes the stream's sum to the sums journal, uncommitted: the sum is
   acknowledged with the transaction that read the final chunk;
3. the chunker reads the sums journal read-committed and checks that every
   stream it finished gets exactly one sum, and the right one, within a
   delay. Anything else is a violation, reported with the stream it concerns.

The summer fails a shard loudly on anything a correct pipeline never shows:
a chunk out of sequence, a chunk after a stream's final chunk, a malformed
chunk (each error names the journal and offset). Under exactly-once
processing none of this happens, whatever crashes and hand-offs occur.

The summer also measures its own hand-offs. Each transaction records the
wall time and the process that wrote it in the store, so a member that takes
a shard over reads, with the shard's state, when the previous owner last
committed; when its own first transaction commits it logs the gap
(`shard summer-001: first commit here 2.817 s after the last commit of pid
4711 on host-a`, with `failover_s` and the two timestamps as fields).

This module owns the messages, the checksum and the summer; generation and
verification are `chunker.py`'s.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import os
import socket
import time
from typing import Any

from gazette_trio.consumer.stores import SQLiteStore
from gazette_trio.message import Envelope, fixed_mapping
from gazette_trio.opfuture import OpFuture
from gazette_trio.protocol import labels
from gazette_trio.protocol import protocol as pb

log = logging.getLogger("stream_sum")

CHUNK = "Chunk"
SUM = "Sum"
CHUNKS_SELECTOR = f"{labels.MESSAGE_TYPE}={CHUNK}"
SUMS_JOURNAL = "examples/stream-sum/sums"

# ----------------------------------------------------------------------------
# CRC-64 with the ECMA-182 polynomial, as Go's hash/crc64 with crc64.ECMA
# (CRC-64/XZ): reflected, initial value and final xor all ones. `crc64` chains
# like Go's crc64.Update: crc64(crc64(0, a), b) == crc64(0, a + b).

_MASK = (1 << 64) - 1
_ECMA = 0xC96C5795D7870F42


def _table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _table(_ECMA)


def crc64(crc: int, data: bytes) -> int:
    """`crc` (a sum of earlier data) updated with `data`."""
    crc ^= _MASK
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK


# ----------------------------------------------------------------------------
# Messages, as JSON lines:
#   chunk: {"stream": "5f0c9e21-17", "seq": 3, "data": "<base64>"}   ("" ends the stream)
#   sum:   {"stream": "5f0c9e21-17", "seq": 21, "sum": "<16 hex digits>"}


def chunk_message(stream: str, seq: int, data: bytes) -> dict[str, Any]:
    return {"stream": stream, "seq": seq, "data": base64.b64encode(data).decode()}


def sum_message(stream: str, seq: int, value: int) -> dict[str, Any]:
    return {"stream": stream, "seq": seq, "sum": f"{value:016x}"}


class BadChunk(ValueError):
    """A chunk a correct chunker never writes, or out of its stream's order."""


def parse_chunk(envelope: Envelope) -> tuple[str, int, bytes]:
    """(stream, seq, data) of a chunk message; `BadChunk` naming where it is."""
    message = envelope.message
    where = f"journal {envelope.journal.name} offset {envelope.begin}"
    stream, seq, data = message.get("stream"), message.get("seq"), message.get("data")
    if (
        not isinstance(stream, str)
        or not stream
        or not isinstance(seq, int)
        or isinstance(seq, bool)
        or seq < 1
        or not isinstance(data, str)
    ):
        raise BadChunk(
            f"{where}: expected a chunk "
            f'{{"stream": <string>, "seq": <integer ≥ 1>, "data": <base64>}}, got {message!r}'
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise BadChunk(f"{where}: stream {stream} chunk {seq}: data is not base64: {exc}") from None
    return stream, seq, raw


# ----------------------------------------------------------------------------
# The summer

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    stream TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL,     -- last chunk summed
    sum    TEXT    NOT NULL,     -- CRC-64 through it, 16 hex digits
    done   INTEGER NOT NULL      -- 1 once the final chunk was read
);
CREATE TABLE IF NOT EXISTS last_commit (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    process TEXT    NOT NULL,    -- who wrote the last committed transaction
    wall_ns INTEGER NOT NULL     -- and when (unix ns, as it closed)
);
"""
_UPSERT_STREAM = (
    "INSERT INTO streams (stream, seq, sum, done) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, sum = excluded.sum, done = excluded.done"
)
_UPSERT_COMMIT = (
    "INSERT INTO last_commit (id, process, wall_ns) VALUES (0, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET process = excluded.process, wall_ns = excluded.wall_ns"
)


@dataclasses.dataclass
class StreamState:
    seq: int = 0
    value: int = 0
    done: bool = False


@dataclasses.dataclass
class ShardState:
    """The summer's state of one shard beside its database."""

    touched: dict[str, StreamState] = dataclasses.field(default_factory=dict)
    """Streams the current transaction changed (written at its end)."""
    previous: tuple[str, int] | None = None
    """(process, wall ns) of the last committed transaction when the store opened."""
    reported: bool = False
    """Whether this store's first commit was reported."""


def this_process() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


class Summer:
    """The Application; see the module docstring.

    Settings (`[application.settings]`): `sums`, the journal sums go to.
    """

    def __init__(self, *, sums: str = SUMS_JOURNAL) -> None:
        self.sums = fixed_mapping(sums, labels.CONTENT_TYPE_JSON_LINES)
        self.process = this_process()

    async def new_store(self, shard: Any, recorder: Any) -> SQLiteStore:
        store = await SQLiteStore.open(recorder, bootstrap=SCHEMA)
        row = store.db.execute("SELECT process, wall_ns FROM last_commit").fetchone()
        store.cache = ShardState(previous=(row[0], row[1]) if row else None)
        return store

    def new_message(self, spec: pb.JournalSpec) -> type:
        return dict

    async def begin_txn(self, shard: Any, store: SQLiteStore) -> None:
        pass

    async def consume_message(
        self, shard: Any, store: SQLiteStore, envelope: Envelope, publisher: Any
    ) -> None:
        stream, seq, data = parse_chunk(envelope)
        state: ShardState = store.cache
        current = state.touched.get(stream)
        if current is None:
            row = store.db.execute(
                "SELECT seq, sum, done FROM streams WHERE stream = ?", (stream,)
            ).fetchone()
            current = StreamState(row[0], int(row[1], 16), bool(row[2])) if row else StreamState()
            state.touched[stream] = current
        where = f"journal {envelope.journal.name} offset {envelope.begin}"
        if current.done:
            raise BadChunk(
                f"{where}: stream {stream}: chunk {seq} after its final chunk {current.seq}"
            )
        if seq != current.seq + 1:
            raise BadChunk(f"{where}: stream {stream}: chunk {seq} follows chunk {current.seq}")
        current.seq = seq
        current.value = crc64(current.value, data)
        if not data:
            current.done = True
            publisher.publish_uncommitted(self.sums, sum_message(stream, seq, current.value))

    async def finalize_txn(self, shard: Any, store: SQLiteStore, publisher: Any) -> None:
        state: ShardState = store.cache
        db = store.db
        db.executemany(
            _UPSERT_STREAM,
            [(s, c.seq, f"{c.value:016x}", int(c.done)) for s, c in state.touched.items()],
        )
        db.execute(_UPSERT_COMMIT, (self.process, time.time_ns()))
        state.touched.clear()

    def finished_txn(self, shard: Any, store: SQLiteStore, future: OpFuture[None]) -> None:
        state: ShardState = store.cache
        if not state.reported:
            state.reported = True
            shard.nursery.start_soon(self._report_first_commit, shard.id, state.previous, future)

    async def _report_first_commit(
        self, shard_id: str, previous: tuple[str, int] | None, future: OpFuture[None]
    ) -> None:
        try:
            await future.wait()
        except Exception:
            return  # The shard fails with this error; nothing was handed over.
        now = time.time_ns()
        if previous is None:
            log.info("shard %s: first commit of the shard", shard_id, extra={"shard": shard_id})
            return
        process, then = previous
        gap = (now - then) / 1e9
        log.info(
            "shard %s: first commit here %.3f s after the last commit of %s",
            shard_id,
            gap,
            process,
            extra={
                "shard": shard_id,
                "failover_s": round(gap, 6),
                "previous_process": process,
                "previous_commit_ns": then,
                "first_commit_ns": now,
                "this_process": self.process,
            },
        )
