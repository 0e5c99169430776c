"""The durable file behind a persisted `MemoryEtcd`: a snapshot and a log.

The file is a sequence of frames, each `[u32 length][u32 crc32][msgpack
record]` (little-endian). The first record is a snapshot of the live keys and
leases at a revision; every later record is one committed change: a store
revision with its events, a lease grant, or a lease's end. Each append is
fsynced before the write it records is acknowledged.

On open the file is replayed and rewritten as a single snapshot (written to
a temporary file, fsynced, renamed over the old one, directory fsynced), so
the log never grows across restarts. A torn frame at the very end (a crash
mid-append) is dropped with a warning, as that write was never acknowledged;
a bad frame followed by more data is corruption and raises
`CorruptLogError` naming the file and offset.

History before the snapshot is not kept: after a restart the store is
compacted at its snapshot revision, and watchers from older revisions see
`Compacted` and reload, exactly as after an etcd compaction. Lease deadlines
restart from the full TTL, as etcd does when a leader changes.

This module owns the file format and its I/O (blocking; the caller runs it
in a worker thread). It does not own the store's semantics.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from .types import EtcdError, Event, EventType, KeyValue

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
_MAX_FRAME = 1 << 30


class CorruptLogError(EtcdError):
    """The persisted store cannot be read back."""


@dataclass
class Snapshot:
    revision: int = 1
    kvs: dict[bytes, KeyValue] = field(default_factory=dict)
    leases: dict[int, int] = field(default_factory=dict)  # id -> ttl


def _kv_row(kv: KeyValue) -> list[Any]:
    return [kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease]


def _kv_from(row: list[Any]) -> KeyValue:
    return KeyValue(bytes(row[0]), bytes(row[1]), row[2], row[3], row[4], row[5])


def revision_record(revision: int, events: Iterable[Event]) -> dict[str, Any]:
    return {
        "k": "rev",
        "rev": revision,
        "ev": [[e.type.value, *_kv_row(e.kv)] for e in events],
    }


def grant_record(lease_id: int, ttl: int) -> dict[str, Any]:
    return {"k": "grant", "id": lease_id, "ttl": ttl}


def end_lease_record(lease_id: int) -> dict[str, Any]:
    return {"k": "end", "id": lease_id}


def _frame(record: dict[str, Any]) -> bytes:
    payload = msgspec.msgpack.encode(record)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _apply(snap: Snapshot, record: dict[str, Any], path: Path, offset: int) -> None:
    kind = record.get("k")
    if kind == "snap":
        snap.revision = record["rev"]
        snap.kvs = {kv.key: kv for kv in map(_kv_from, record["kvs"])}
        snap.leases = {lease_id: ttl for lease_id, ttl in record["leases"]}
    elif kind == "rev":
        snap.revision = record["rev"]
        for row in record["ev"]:
            kv = _kv_from(row[1:])
            if row[0] == EventType.PUT.value:
                snap.kvs[kv.key] = kv
            else:
                snap.kvs.pop(kv.key, None)
    elif kind == "grant":
        snap.leases[record["id"]] = record["ttl"]
    elif kind == "end":
        snap.leases.pop(record["id"], None)
    else:
        raise CorruptLogError(f"{path}: unknown record kind {kind!r} at offset {offset}")


def read(path: Path) -> tuple[Snapshot, int]:
    """Replay the file; returns the state and the length of its valid prefix."""
    snap = Snapshot()
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            log.warning("%s: dropping a torn frame at offset %d (crash mid-append)", path, offset)
            break
        length, crc = _HEADER.unpack_from(data, offset)
        start, end = offset + _HEADER.size, offset + _HEADER.size + length
        if length > _MAX_FRAME or end > len(data):
            if length <= _MAX_FRAME:
                log.warning(
                    "%s: dropping a torn frame at offset %d (crash mid-append)", path, offset
                )
                break
            raise CorruptLogError(f"{path}: frame at offset {offset} claims {length} bytes")
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            if end == len(data):
                log.warning("%s: dropping a torn frame at offset %d (bad checksum)", path, offset)
                break
            raise CorruptLogError(f"{path}: checksum mismatch in the frame at offset {offset}")
        try:
            record = msgspec.msgpack.decode(payload)
        except msgspec.DecodeError as exc:
            raise CorruptLogError(f"{path}: undecodable frame at offset {offset}: {exc}") from exc
        if not isinstance(record, dict):
            raise CorruptLogError(f"{path}: frame at offset {offset} is not a record")
        _apply(snap, record, path, offset)
        offset = end
    return snap, offset


class StoreFile:
    """An open, append-only store file."""

    def __init__(self, path: Path, fh: BinaryIO) -> None:
        self.path = path
        self._fh = fh

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> tuple[StoreFile, Snapshot]:
        """Read (or create) the file, rewrite it as one snapshot, open it for appends."""
        p = Path(path)
        snap = Snapshot()
        if p.exists():
            snap, _ = read(p)
        tmp = p.with_name(p.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(
                _frame(
                    {
                        "k": "snap",
                        "rev": snap.revision,
                        "kvs": [_kv_row(kv) for _, kv in sorted(snap.kvs.items())],
                        "leases": sorted(snap.leases.items()),
                    }
                )
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        _fsync_dir(p.parent)
        return cls(p, open(p, "ab")), snap

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append records and make them durable."""
        self._fh.write(b"".join(_frame(r) for r in records))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
