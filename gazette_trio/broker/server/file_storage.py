"""FileStorage: the journal server's state as files in a data directory.

Layout under the data directory:

    specs.json                       journal specs and the revision counter
    journals/<journal path>/         one directory per journal (each path
                                     segment %-escaped, so any valid name maps
                                     to a safe, reversible path)
        <begin>-<end>-<sha1>.raw     rolled fragments, named as Gazette names
                                     fragment content (16 hex digits each for
                                     begin and end, 40 for the SHA-1)
        <begin>.spool                the open fragment at the write head
        <begin>.commits              its commit log

An append writes its content into the spool and fsyncs it, then appends a
record to the commit log (new end offset, CRC-32 of the appended bytes, and
the registers if they changed) and fsyncs that; only then is the append
acknowledged. On restart the commit log is replayed: records that are torn or
whose content does not match its CRC end the log, and the spool is truncated
to the last good record, so an append the server never acknowledged is
either wholly present (it committed, the acknowledgement was lost) or wholly
absent. Rolling the spool renames it to its content name; the next spool's
commit log starts with a record of the registers, so they survive the roll.

This module owns the files and their recovery. Decisions (when to roll, what
registers are) belong to the core.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import struct
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import trio

from ...protocol import protocol as pb
from ...protocol.validation import ValidationError
from ..fragments import content_name
from .storage import FragmentFile, Recovered, RecoveredJournal, SpecRecord

log = logging.getLogger(__name__)

_RAW = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-f]{40})\.raw$")
_SPOOL = re.compile(r"^([0-9a-f]{16})\.spool$")
_COMMITS = re.compile(r"^([0-9a-f]{16})\.commits$")

_MAGIC = b"GTc1"
_HEAD = struct.Struct("<4sQIi")  # magic, end offset, crc32 of content, registers length (-1: none)
_TAIL = struct.Struct("<I")  # crc32 of the record so far
_MAX_SEGMENT = 255
_READ_FDS = 64


def _escape_segment(segment: str) -> str:
    escaped = quote(segment, safe="-_+=.")
    # "." and ".." are path navigation, not names.
    if escaped.startswith("."):
        escaped = "%2E" + escaped[1:]
    return escaped


def _encode_record(end: int, crc: int, registers: pb.LabelSet | None) -> bytes:
    regs = b"" if registers is None else bytes(registers)
    body = _HEAD.pack(_MAGIC, end, crc, -1 if registers is None else len(regs)) + regs
    return body + _TAIL.pack(zlib.crc32(body))


@dataclass(slots=True)
class _Record:
    end: int
    crc: int
    registers: pb.LabelSet | None
    stop: int  # position in the commit log just past this record


def _decode_records(data: bytes) -> list[_Record]:
    """Records up to the first torn or corrupt one."""
    out = []
    pos = 0
    while pos + _HEAD.size <= len(data):
        magic, end, crc, reg_len = _HEAD.unpack_from(data, pos)
        if magic != _MAGIC:
            break
        body_end = pos + _HEAD.size + max(reg_len, 0)
        if body_end + _TAIL.size > len(data):
            break
        (check,) = _TAIL.unpack_from(data, body_end)
        if check != zlib.crc32(data[pos:body_end]):
            break
        registers = None
        if reg_len >= 0:
            try:
                registers = pb.LabelSet.parse(data[pos + _HEAD.size : body_end])
            except Exception:
                break
        pos = body_end + _TAIL.size
        out.append(_Record(end, crc, registers, pos))
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pwrite_all(fd: int, data: bytes, position: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, position)
        view = view[n:]
        position += n


@dataclass(slots=True)
class _Spool:
    begin: int
    dir: Path
    fd: int  # content, read-write
    commits_fd: int  # commit log, append-only
    commits_size: int

    @property
    def path(self) -> Path:
        return self.dir / f"{self.begin:016x}.spool"


class FileStorage:
    """Storage in a data directory; see the module docstring for the layout.

    `sync=False` skips fsync (for throwaway data only: a crash can then lose
    acknowledged appends).
    """

    uses_threads = True

    def __init__(self, root: str | os.PathLike[str], *, sync: bool = True) -> None:
        self.root = Path(root)
        self.sync = sync
        self._journals_root = self.root / "journals"
        self._make_dirs(self._journals_root)
        self._spools: dict[str, _Spool] = {}
        self._paths: dict[tuple[str, int], Path] = {}
        self._read_fds: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._closed = False

    # -- names and paths

    def _make_dirs(self, path: Path) -> None:
        """Create `path` and missing parents, each entry durable in its parent
        (a fsynced file in a directory that vanishes in a crash is lost too)."""
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)
            if self.sync:
                _fsync_dir(directory.parent)

    def journal_dir(self, journal: str) -> Path:
        return self._journals_root.joinpath(*(_escape_segment(s) for s in journal.split("/")))

    def check_journal_name(self, journal: str) -> None:
        for segment in journal.split("/"):
            size = len(_escape_segment(segment).encode())
            if size > _MAX_SEGMENT:
                raise ValidationError(
                    f"path segment {segment[:32]!r}... of journal {journal!r} is {size} bytes "
                    f"once escaped, more than file storage allows ({_MAX_SEGMENT})"
                )

    # -- recovery

    def recover(self) -> Recovered:
        recovered = Recovered()
        specs_path = self.root / "specs.json"
        for stale in self.root.glob("*.tmp"):
            stale.unlink()
        if specs_path.exists():
            doc = json.loads(specs_path.read_text())
            recovered.revision = int(doc["revision"])
            for item in doc["journals"]:
                spec = pb.JournalSpec.parse(base64.b64decode(item["spec"]))
                recovered.specs[item["name"]] = SpecRecord(
                    spec, int(item["create_revision"]), int(item["mod_revision"])
                )
        for dirpath, _dirnames, filenames in sorted(os.walk(self._journals_root)):
            names = sorted(filenames)
            if not any(_RAW.match(n) or _SPOOL.match(n) or _COMMITS.match(n) for n in names):
                continue
            rel = Path(dirpath).relative_to(self._journals_root)
            journal = "/".join(unquote(part) for part in rel.parts)
            recovered.journals[journal] = self._recover_journal(journal, Path(dirpath), names)
        return recovered

    def _recover_journal(self, journal: str, dir: Path, names: list[str]) -> RecoveredJournal:
        out = RecoveredJournal()
        for name in names:
            m = _RAW.match(name)
            if m is None:
                continue
            begin, end = int(m.group(1), 16), int(m.group(2), 16)
            path = dir / name
            stat = path.stat()
            if stat.st_size != end - begin:
                log.error(
                    "journal %s: fragment file %s holds %d bytes, its name says %d; ignoring it",
                    journal,
                    path,
                    stat.st_size,
                    end - begin,
                )
                continue
            fragment = FragmentFile(begin, end, bytes.fromhex(m.group(3)), int(stat.st_mtime))
            out.fragments.append(fragment)
            self._paths[(journal, begin)] = path
        out.fragments.sort(key=lambda f: f.begin)
        out.write_head = out.fragments[-1].end if out.fragments else 0

        logs = sorted(int(m.group(1), 16) for n in names if (m := _COMMITS.match(n)))
        # The newest commit log with a readable first record is authoritative;
        # a newer, unreadable one is a spool start that never completed.
        while logs:
            begin = logs[-1]
            records = _decode_records((dir / f"{begin:016x}.commits").read_bytes())
            if records and records[0].end == begin:
                break
            log.warning("journal %s: discarding incomplete spool start at %d", journal, begin)
            (dir / f"{begin:016x}.commits").unlink()
            (dir / f"{begin:016x}.spool").unlink(missing_ok=True)
            logs.pop()
        for name in names:
            # Spools without a commit log never received an acknowledged byte.
            m = _SPOOL.match(name)
            if m and int(m.group(1), 16) not in logs:
                (dir / name).unlink()
        if not logs:
            return out

        begin = logs.pop()
        for older in logs:
            (dir / f"{older:016x}.commits").unlink()
        spool_path = dir / f"{begin:016x}.spool"
        records = _decode_records((dir / f"{begin:016x}.commits").read_bytes())
        if spool_path.exists():
            data = spool_path.read_bytes()
            good = [records[0]]
            for record in records[1:]:
                lo, hi = good[-1].end - begin, record.end - begin
                if hi > len(data) or zlib.crc32(data[lo:hi]) != record.crc:
                    break
                good.append(record)
            if len(good) < len(records) or len(data) > good[-1].end - begin:
                log.warning(
                    "journal %s: discarding a torn tail of %d bytes past offset %d",
                    journal,
                    len(data) - (good[-1].end - begin),
                    good[-1].end,
                )
            records = good
            self._open_spool(journal, dir, begin, truncate_to=records[-1].end - begin)
            self._truncate_commits(journal, records[-1].stop)
            out.spool_begin = begin
        for record in records:
            if record.registers is not None:
                out.registers = record.registers
        # If the spool was rolled, its log stays: it carries the registers
        # until the next spool's log does.
        out.write_head = max(out.write_head, records[-1].end)
        return out

    def _open_spool(self, journal: str, dir: Path, begin: int, *, truncate_to: int) -> None:
        spool_path = dir / f"{begin:016x}.spool"
        fd = os.open(spool_path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(fd, truncate_to)
        commits_fd = os.open(dir / f"{begin:016x}.commits", os.O_WRONLY | os.O_APPEND)
        size = os.fstat(commits_fd).st_size
        self._spools[journal] = _Spool(begin, dir, fd, commits_fd, size)
        self._paths[(journal, begin)] = spool_path
        if self.sync:
            os.fsync(fd)

    def _truncate_commits(self, journal: str, size: int) -> None:
        spool = self._spools[journal]
        os.ftruncate(spool.commits_fd, size)
        spool.commits_size = size
        if self.sync:
            os.fsync(spool.commits_fd)

    # -- specs

    async def save_specs(self, revision: int, specs: Mapping[str, SpecRecord]) -> None:
        doc = {
            "revision": revision,
            "journals": [
                {
                    "name": name,
                    "create_revision": record.create_revision,
                    "mod_revision": record.mod_revision,
                    "spec": base64.b64encode(bytes(record.spec)).decode(),
                }
                for name, record in sorted(specs.items())
            ],
        }
        data = json.dumps(doc, indent=1).encode()
        await trio.to_thread.run_sync(self._replace_file, self.root / "specs.json", data)

    def _replace_file(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _pwrite_all(fd, data, 0)
            if self.sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if self.sync:
            _fsync_dir(path.parent)

    # -- spools and fragments

    async def start_spool(self, journal: str, begin: int, registers: pb.LabelSet) -> None:
        if journal in self._spools:
            raise RuntimeError(f"journal {journal!r} already has an open spool")
        dir = self.journal_dir(journal)
        await trio.to_thread.run_sync(self._start_spool, journal, dir, begin, registers)

    def _start_spool(self, journal: str, dir: Path, begin: int, registers: pb.LabelSet) -> None:
        self._make_dirs(dir)
        commits_path = dir / f"{begin:016x}.commits"
        # The log (with the registers) is durable before the spool exists, so
        # a crash in between leaves a log recovery can use, never a spool
        # without one.
        fd = os.open(commits_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _pwrite_all(fd, _encode_record(begin, 0, registers), 0)
            if self.sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._open_spool(journal, dir, begin, truncate_to=0)
        if self.sync:
            _fsync_dir(dir)
        for name in os.listdir(dir):
            m = _COMMITS.match(name)
            if m and int(m.group(1), 16) < begin:
                os.unlink(dir / name)

    async def append(
        self,
        journal: str,
        spool_begin: int,
        offset: int,
        content: Sequence[bytes],
        registers: pb.LabelSet | None,
    ) -> None:
        spool = self._spools[journal]
        if spool.begin != spool_begin:
            raise RuntimeError(f"journal {journal!r}: no open spool at {spool_begin}")
        position = offset - spool_begin
        try:
            # Writing, checksumming and syncing all leave the Trio thread: the
            # copy into the page cache and the CRC of a large append take
            # milliseconds, which the core overlaps with hashing it.
            record = await trio.to_thread.run_sync(
                self._write_and_commit, spool, position, offset, content, registers
            )
        except BaseException:
            # Leave no trace of a failed append: the next append starts where
            # this one did, and recovery would cut these bytes anyway.
            os.ftruncate(spool.fd, position)
            os.ftruncate(spool.commits_fd, spool.commits_size)
            raise
        spool.commits_size += len(record)

    def _write_and_commit(
        self,
        spool: _Spool,
        position: int,
        offset: int,
        content: Sequence[bytes],
        registers: pb.LabelSet | None,
    ) -> bytes:
        size = 0
        crc = 0
        for chunk in content:
            _pwrite_all(spool.fd, chunk, position + size)
            size += len(chunk)
            crc = zlib.crc32(chunk, crc)
        record = _encode_record(offset + size, crc, registers)
        self._commit(spool, record)
        return record

    def _commit(self, spool: _Spool, record: bytes) -> None:
        # Content first, then the record that vouches for it: a record is
        # never durable before the bytes it describes.
        if self.sync:
            os.fdatasync(spool.fd)
        written = os.write(spool.commits_fd, record)
        if written != len(record):
            raise OSError(f"short write of a commit record ({written} of {len(record)} bytes)")
        if self.sync:
            os.fdatasync(spool.commits_fd)

    async def roll(self, journal: str, fragment: FragmentFile) -> FragmentFile:
        spool = self._spools.pop(journal)
        if spool.begin != fragment.begin:
            raise RuntimeError(f"journal {journal!r}: roll of {fragment} does not match the spool")
        target = spool.dir / content_name(fragment.begin, fragment.end, fragment.sum)
        await trio.to_thread.run_sync(self._roll, spool, target)
        os.close(spool.commits_fd)
        # The content fd stays open for readers of this fragment.
        self._remember_fd((journal, fragment.begin), spool.fd)
        self._paths[(journal, fragment.begin)] = target
        mod_time = int(target.stat().st_mtime)
        return FragmentFile(fragment.begin, fragment.end, fragment.sum, mod_time)

    def _roll(self, spool: _Spool, target: Path) -> None:
        os.rename(spool.path, target)
        if self.sync:
            _fsync_dir(spool.dir)

    async def remove(self, journal: str, fragment: FragmentFile) -> None:
        key = (journal, fragment.begin)
        fd = self._read_fds.pop(key, None)
        if fd is not None:
            os.close(fd)
        path = self._paths.pop(key, None)
        if path is not None:
            await trio.to_thread.run_sync(path.unlink)

    def _remember_fd(self, key: tuple[str, int], fd: int) -> None:
        self._read_fds[key] = fd
        while len(self._read_fds) > _READ_FDS:
            _, old = self._read_fds.popitem(last=False)
            os.close(old)

    def read(self, journal: str, fragment_begin: int, offset: int, length: int) -> bytes:
        # Reads are served synchronously: fragment data is nearly always in
        # the page cache, and a thread hop per 128 KiB chunk would cost more
        # than the read.
        spool = self._spools.get(journal)
        key = (journal, fragment_begin)
        if spool is not None and spool.begin == fragment_begin:
            fd = spool.fd
        else:
            fd = self._read_fds.get(key, -1)
            if fd < 0:
                fd = os.open(self._paths[key], os.O_RDONLY)
                self._remember_fd(key, fd)
            else:
                self._read_fds.move_to_end(key)
        data = os.pread(fd, length, offset - fragment_begin)
        if len(data) != length:
            raise OSError(
                f"journal {journal!r}: short read at offset {offset} "
                f"({len(data)} of {length} bytes)"
            )
        return data

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for spool in self._spools.values():
            os.close(spool.fd)
            os.close(spool.commits_fd)
        for fd in self._read_fds.values():
            os.close(fd)
        self._spools.clear()
        self._read_fds.clear()
