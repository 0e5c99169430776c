"""Stream sum: Gazette's self-verifying example, on gazette-trio.

Three parts, as in Gazette's `examples/stream-sum`, and wire-compatible with
it: upstream's Go `chunker` verifies this summer's sums, and this example's
`chunker.py` verifies upstream's Go `summer`.

1. the **chunker** (`chunker.py`, a separate command) writes many streams at
   once, interleaved: each stream is a run of chunks of random data, numbered
   from 1, then a final, empty chunk. Chunks go to the journals labelled
   `app.gazette.dev/message-type=stream_sum.Chunk`, spread over them by
   upstream's mapping: FNV-1a of the stream's 16-byte ID, modulo the
   partitions in name order;
2. the **summer** (`Summer`, this module's Application) keeps a running
   CRC-64 of each stream in its `SQLiteStore` (upstream's table `sums`) and,
   on a stream's final chunk, publishes the stream's sum to
   `examples/stream-sum/sums`, uncommitted: the sum is acknowledged with the
   transaction that read the final chunk;
3. the chunker reads the sums journal read-committed and checks that every
   stream it finished gets exactly one sum, and the right one, within a
   delay. Anything else is a violation, reported with the stream it concerns.

Messages are JSON lines shaped as Go's encoding/json writes upstream's
structs (upstream has no custom marshalling for them):

    Chunk: {"UUID": "<uuid>", "ID": [16 numbers 0-255], "SeqNo": 3, "Data": "<base64>"}
    Sum:   {"UUID": "<uuid>", "ID": [16 numbers 0-255], "SeqNo": 21, "Value": <uint64>}

A stream's ID is a Go `[16]byte`, hence the array; `Data` is a `[]byte`,
base64, and `null` in a stream's final chunk (upstream's chunker leaves it
nil; "" is read the same way). `Value` is the CRC-64 as a JSON number, up to
2^64 - 1. ACKs are `{"UUID": ...}` and read as messages of the same type.

The summer fails a shard loudly on anything a correct pipeline never shows:
a chunk of a stream that is out of sequence, a malformed chunk (each error
names the journal and offset). Under exactly-once processing this does not
happen, whatever crashes and hand-offs occur. (Upstream's summer exits on
them; here the shard fails and the member goes on.)

The summer also measures its own hand-offs. Each transaction records the
wall time and the process that wrote it in the store (table `last_commit`,
beside upstream's `sums`), so a member that takes a shard over reads, with
the shard's state, when the previous owner last committed; when its own
first transaction commits it logs the gap (`shard chunks-part-001: first
commit here 2.817 s after the last commit of pid 4711 on host-a`, with
`failover_s` and the two timestamps as fields).

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
import struct
import time
from typing import Any, ClassVar

from gazette_trio import Envelope, JSONMessage, OpFuture, SQLiteStore, fixed_mapping
from gazette_trio.protocol import labels
from gazette_trio.protocol import protocol as pb

log = logging.getLogger("stream_sum")

CHUNK_TYPE = "stream_sum.Chunk"
SUM_TYPE = "stream_sum.Sum"
CHUNKS_SELECTOR = f"{labels.MESSAGE_TYPE}={CHUNK_TYPE}"
SUMS_JOURNAL = "examples/stream-sum/sums"
ID_BYTES = 16

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
# Messages


class Chunk(JSONMessage):
    """A chunk of a stream, as upstream's `stream_sum.Chunk` encodes to JSON."""

    uuid_path: ClassVar[tuple[str, ...]] = ("UUID",)


class Sum(JSONMessage):
    """A stream's final sum, as upstream's `stream_sum.Sum` encodes to JSON."""

    uuid_path: ClassVar[tuple[str, ...]] = ("UUID",)


def chunk_message(stream: bytes, seq: int, data: bytes) -> Chunk:
    """Chunk `seq` of `stream` (16 bytes); empty `data` ends the stream."""
    return Chunk(
        ID=list(_check_id(stream)),
        SeqNo=seq,
        Data=base64.b64encode(data).decode() if data else None,
    )


def sum_message(stream: bytes, seq: int, value: int) -> Sum:
    return Sum(ID=list(_check_id(stream)), SeqNo=seq, Value=value)


def _check_id(stream: bytes) -> bytes:
    if len(stream) != ID_BYTES:
        raise ValueError(f"a stream ID is {ID_BYTES} bytes, not {len(stream)}: {stream!r}")
    return stream


def parse_id(value: Any) -> bytes:
    """The 16 bytes of a JSON stream ID (Go's `[16]byte`: 16 numbers 0-255)."""
    if isinstance(value, list) and len(value) == ID_BYTES:
        try:
            # bytes() checks each number (an int 0-255) in C: per chunk, a
            # Python-level check costs more than the rest of parsing.
            return bytes(value)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"ID is not an array of {ID_BYTES} numbers 0-255: {value!r}")


class BadChunk(ValueError):
    """A chunk a correct chunker never writes, or out of its stream's order."""


def parse_chunk(envelope: Envelope) -> tuple[bytes, int, bytes]:
    """(stream ID, seq, data) of a chunk message; `BadChunk` naming where it is."""
    message = envelope.message
    where = f"journal {envelope.journal.name} offset {envelope.begin}"
    seq, data = message.get("SeqNo"), message.get("Data")
    try:
        stream = parse_id(message.get("ID"))
    except ValueError:
        stream = b""
    if (
        not stream
        or not isinstance(seq, int)
        or isinstance(seq, bool)
        or seq < 1
        or not (data is None or isinstance(data, str))
    ):
        raise BadChunk(
            f'{where}: expected a chunk {{"ID": <16 numbers 0-255>, '
            f'"SeqNo": <integer ≥ 1>, "Data": <base64 or null>}}, got {dict(message)!r}'
        )
    if not data:
        return stream, seq, b""
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise BadChunk(
            f"{where}: stream {stream.hex()} chunk {seq}: Data is not base64: {exc}"
        ) from None
    return stream, seq, raw


# ----------------------------------------------------------------------------
# The summer

# `sums` is upstream's summer's table, column for column: the 16-byte ID, the
# last chunk summed, and the CRC-64 through it as 8 little-endian bytes.
SCHEMA = """
CREATE TABLE IF NOT EXISTS sums (
    id     BLOB PRIMARY KEY NOT NULL,
    seq_no INTEGER,
    val    BLOB
);
CREATE TABLE IF NOT EXISTS last_commit (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    process TEXT    NOT NULL,    -- who wrote the last committed transaction
    wall_ns INTEGER NOT NULL     -- and when (unix ns, as it closed)
);
"""
_SELECT_SUM = "SELECT seq_no, val FROM sums WHERE id = ?"
_UPSERT_SUM = (
    "INSERT INTO sums (id, seq_no, val) VALUES (?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET seq_no = excluded.seq_no, val = excluded.val"
)
_UPSERT_COMMIT = (
    "INSERT INTO last_commit (id, process, wall_ns) VALUES (0, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET process = excluded.process, wall_ns = excluded.wall_ns"
)
_VALUE = struct.Struct("<Q")

STORE_LABEL = "store"
"""The ShardSpec label upstream's summer picks its store by."""


@dataclasses.dataclass
class StreamState:
    seq: int = 0
    value: int = 0


@dataclasses.dataclass
class ShardState:
    """The summer's state of one shard beside its database."""

    touched: dict[bytes, StreamState] = dataclasses.field(default_factory=dict)
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
    Shards may carry upstream's `store` label; this summer keeps its sums in
    SQLite only, so the label must be `sqlite` when present.
    """

    def __init__(self, *, sums: str = SUMS_JOURNAL) -> None:
        self.sums = fixed_mapping(sums, labels.CONTENT_TYPE_JSON_LINES)
        self.process = this_process()

    async def new_store(self, shard: Any, recorder: Any) -> SQLiteStore:
        store_label = labels.value_of(shard.spec.labels, STORE_LABEL)
        if store_label.lower() not in ("", "sqlite"):
            raise ValueError(
                f"shard {shard.spec.id}: label {STORE_LABEL}={store_label!r}: "
                "gazette-trio's summer keeps its sums in SQLite only (label store=sqlite)"
            )
        store = await SQLiteStore.open(recorder, bootstrap=SCHEMA)
        row = store.db.execute("SELECT process, wall_ns FROM last_commit").fetchone()
        store.cache = ShardState(previous=(row[0], row[1]) if row else None)
        return store

    def new_message(self, spec: pb.JournalSpec) -> type:
        return Chunk

    async def begin_txn(self, shard: Any, store: SQLiteStore) -> None:
        pass

    async def consume_message(
        self, shard: Any, store: SQLiteStore, envelope: Envelope, publisher: Any
    ) -> None:
        stream, seq, data = parse_chunk(envelope)
        state: ShardState = store.cache
        current = state.touched.get(stream)
        if current is None:
            row = store.db.execute(_SELECT_SUM, (stream,)).fetchone()
            current = StreamState(row[0], _VALUE.unpack(row[1])[0]) if row else StreamState()
            state.touched[stream] = current
        if seq != current.seq + 1:
            raise BadChunk(
                f"journal {envelope.journal.name} offset {envelope.begin}: stream "
                f"{stream.hex()}: chunk {seq} follows chunk {current.seq}"
            )
        current.seq = seq
        current.value = crc64(current.value, data)
        if not data:
            publisher.publish_uncommitted(self.sums, sum_message(stream, seq, current.value))

    async def finalize_txn(self, shard: Any, store: SQLiteStore, publisher: Any) -> None:
        state: ShardState = store.cache
        db = store.db
        db.executemany(
            _UPSERT_SUM,
            [(s, c.seq, _VALUE.pack(c.value)) for s, c in state.touched.items()],
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
