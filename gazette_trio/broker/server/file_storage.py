"""FileStorage: the journal server's state as files in a data directory.

Layout under the data directory:

    gazette-trio.lock                held (flock) by the one process using it
    specs.json                       journal specs and the revision counter
    journals/<journal path>/         one directory per journal (each path
                                     segment %-escaped, so any valid name maps
                                     to a safe, reversible path)
        <begin>-<end>-<sha1>.raw     rolled fragments, named as Gazette names
                                     fragment content (16 hex digits each for
                                     begin and end, 40 for the SHA-1)
        <begin>.spool                the open fragment at the write head
        <begin>.commits              its commit log (`commit_log.py`)
    quarantine/<time>/<journal path>/ files a repair set aside

Names of these files are refused as journal name segments, so a journal's
directory can never collide with another journal's file.

An append writes its content into the spool and fsyncs it, then appends a
record to the commit log (the offsets it covers, CRC-32 of its bytes, the
registers if they changed, all under checksums) and fsyncs that; only then is
the append acknowledged.

Restart verifies everything, streaming in bounded memory: each rolled
fragment against the SHA-1 in its name, each commit record against its
checksums, and each append's bytes in the spool against its record's CRC-32.
What it finds is one of:

- clean;
- a *torn tail*: the log ends inside a record that was never completely
  written, or the spool holds bytes past the last record. Those bytes were
  never acknowledged; they are cut off, with a warning;
- *damage*: acknowledged content (or the record vouching for it) does not
  check out. Nothing is cut and no file is changed: the journal is served up
  to the damage, reads at or past it and all appends fail with an error
  naming the journal, the file and the offset, and the write head stays at
  the highest offset ever acknowledged, so no offset is ever handed out
  twice. `repair` (the `gazette-trio broker repair` command) then sets the
  damaged files aside and keeps what the operator chooses.

This module owns the files, their recovery and their repair. Decisions (when
to roll, what registers are) belong to the core.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
import os
import re
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, unquote

import trio

from ... import aio
from ...protocol import protocol as pb
from ...protocol.validation import ValidationError
from ...runtime.datadir import DataDirLock, lock_data_dir
from ..fragments import content_name
from . import commit_log
from .commit_log import Bad, Record, Torn, encode_record
from .storage import (
    FragmentFile,
    JournalDamage,
    PendingAppend,
    Recovered,
    RecoveredJournal,
    SpecRecord,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_RAW = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-f]{40})\.raw$")
_SPOOL = re.compile(r"^([0-9a-f]{16})\.spool$")
_COMMITS = re.compile(r"^([0-9a-f]{16})\.commits$")
_RESERVED = (_RAW, _SPOOL, _COMMITS)

_MAX_SEGMENT = 255
_READ_FDS = 64
_CHUNK = 1 << 20
QUARANTINE = "quarantine"


def _escape_segment(segment: str) -> str:
    escaped = quote(segment, safe="-_+=.")
    # "." and ".." are path navigation, not names.
    if escaped.startswith("."):
        escaped = "%2E" + escaped[1:]
    return escaped


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


def _out_of_space(exc: BaseException, what: str) -> aio.ResourceExhausted | None:
    """A full disk (or quota) as RESOURCE_EXHAUSTED, which clients report
    rather than take for a transient failure; None for any other error.
    Only the error's text is kept: clients never see server paths."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return aio.ResourceExhausted(
            f"{what}: the journal server's data directory is full ({exc.strerror}); "
            "nothing was written, and everything acknowledged before is kept"
        )
    return None


def _crc_of(fd: int, begin: int, end: int) -> int:
    """CRC-32 of bytes [begin, end) of the file, read in bounded chunks."""
    crc = 0
    while begin < end:
        chunk = os.pread(fd, min(_CHUNK, end - begin), begin)
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        begin += len(chunk)
    return crc


def _sha1_of(path: Path, length: int | None = None, *, max_rate: int = 0) -> bytes:
    """SHA-1 of the file's first `length` bytes (all if None), streamed, at
    no more than `max_rate` bytes a second (0: as fast as it reads)."""
    digest = hashlib.sha1()
    started = time.monotonic()
    done = 0
    with open(path, "rb", buffering=0) as f:
        remaining = length
        while remaining is None or remaining > 0:
            chunk = f.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            done += len(chunk)
            if remaining is not None:
                remaining -= len(chunk)
            if max_rate:
                ahead = done / max_rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    return digest.digest()


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


@dataclass(slots=True)
class _Damaged:
    """What storage knows of a damaged journal, beyond what clients see."""

    damage: JournalDamage
    dir: Path
    file_begin: int
    """Begin offset of the damaged file (fragment, or spool and its log)."""
    kind: str
    """"fragment" (a rolled file), "spool" (the current spool or its commit
    log) or "orphan" (a spool with content and no commit log)."""
    path: Path
    write_head: int
    registers: pb.LabelSet
    tail: tuple[int, int] | None
    """Verified appends past the damage, in the same spool (see `_SpoolCheck`)."""


@dataclass(slots=True)
class _Problem:
    offset: int
    kind: str
    file_begin: int
    path: Path
    reason: str


@dataclass(slots=True)
class _SpoolCheck:
    """What verifying a spool against its commit log found."""

    end: int
    """End of the last append whose record and bytes check out."""
    stop: int
    """Position in the log just past that append's record."""
    log_size: int
    spool_size: int | None
    """None if there is no spool file (it was rolled)."""
    highest: int
    """The highest offset any record (checked or not) or the spool reaches."""
    registers: pb.LabelSet | None = None
    """As of the last checked record."""
    latest_registers: pb.LabelSet | None = None
    """As of the last valid record anywhere in the log."""
    torn: bool = False
    problem: _Problem | None = None
    tail: tuple[int, int] | None = None
    """Past a problem: the last run of appends [begin, end) whose records
    and bytes check out again (a repair keeps it)."""


def _never_started(log_path: Path, spool_path: Path) -> bool:
    """Whether the log and spool are a spool start a crash interrupted: the
    log's first record torn (or absent) and the spool empty. A first record
    that is there but damaged is not: it may hold acknowledged registers."""
    if spool_path.is_file() and spool_path.stat().st_size > 0:
        return False
    fd = os.open(log_path, os.O_RDONLY)
    try:
        first = next(commit_log.scan(fd), None)
    finally:
        os.close(fd)
    return first is None or isinstance(first, Torn)


def _extend_tail(
    tail: tuple[int, int] | None, record: Record, spool_fd: int, begin: int, size: int | None
) -> tuple[int, int] | None:
    """The run of verified appends past a problem, with `record` considered."""
    if record.begin is None or size is None or record.end - begin > size:
        return None  # format 1 (where does it start?) or bytes missing
    if record.begin == record.end:
        return tail
    if _crc_of(spool_fd, record.begin - begin, record.end - begin) != record.crc:
        return None
    if tail is not None and tail[1] == record.begin:
        return (tail[0], record.end)
    return (record.begin, record.end)


def _check_spool(dir: Path, begin: int) -> _SpoolCheck:
    """Verify the spool at `begin` and its commit log, in bounded memory."""
    log_path = dir / f"{begin:016x}.commits"
    spool_path = dir / f"{begin:016x}.spool"
    spool_fd = os.open(spool_path, os.O_RDONLY) if spool_path.is_file() else -1
    log_fd = os.open(log_path, os.O_RDONLY)
    try:
        spool_size = os.fstat(spool_fd).st_size if spool_fd >= 0 else None
        check = _SpoolCheck(
            end=begin,
            stop=0,
            log_size=os.fstat(log_fd).st_size,
            spool_size=spool_size,
            highest=begin + (spool_size or 0),
        )

        def fail(offset: int, path: Path, reason: str) -> None:
            check.problem = _Problem(offset, "spool", begin, path, reason)

        opened = False
        for item in commit_log.scan(log_fd):
            if isinstance(item, Record):
                check.highest = max(check.highest, item.end)
                if item.registers is not None:
                    check.latest_registers = item.registers
                if check.problem is not None:
                    check.tail = _extend_tail(check.tail, item, spool_fd, begin, spool_size)
                    continue
                if not opened:
                    if item.position != 0 or item.end != begin or item.begin not in (None, begin):
                        fail(begin, log_path, "its first record does not open the spool")
                        continue
                    opened = True
                else:
                    start = item.begin if item.begin is not None else check.end
                    if start != check.end:
                        fail(
                            check.end,
                            log_path,
                            f"the commit record at log position {item.position} covers "
                            f"[{start}, {item.end}), not an append at {check.end}",
                        )
                        continue
                    if spool_size is not None:
                        if item.end - begin > spool_size:
                            fail(
                                check.end,
                                spool_path,
                                f"it holds {spool_size} bytes, but the commit record at log "
                                f"position {item.position} vouches for offsets up to {item.end}",
                            )
                            continue
                        if _crc_of(spool_fd, check.end - begin, item.end - begin) != item.crc:
                            fail(
                                check.end,
                                spool_path,
                                f"bytes [{check.end}, {item.end}) do not match the CRC-32 of "
                                f"their commit record (log position {item.position})",
                            )
                            continue
                check.end = item.end
                check.stop = item.stop
                if item.registers is not None:
                    check.registers = item.registers
            elif isinstance(item, Torn):
                check.torn = True
            elif check.problem is None:
                assert isinstance(item, Bad)
                fail(
                    check.end,
                    log_path,
                    f"the commit record at log position {item.position} is damaged: {item.reason}",
                )
        if not opened and check.problem is None:
            # The opening record is written before the spool exists: a spool
            # with content but no readable opening record is damage.
            fail(begin, log_path, "no readable record opens the spool")
        return check
    finally:
        os.close(log_fd)
        if spool_fd >= 0:
            os.close(spool_fd)


class FileStorage:
    """Storage in a data directory; see the module docstring for the layout.

    Holds the directory's lock (`gazette_trio.runtime.datadir`) until
    `close()`: a second FileStorage on the same directory, in this process
    or another, raises `DataDirLocked`.

    `sync=False` skips fsync (for throwaway data only: a crash can then lose
    acknowledged appends).
    """

    uses_threads = True

    def __init__(self, root: str | os.PathLike[str], *, sync: bool = True) -> None:
        self.root = Path(root)
        self.sync = sync
        # Durable in its parent before anything is written inside it.
        self._make_dirs(self.root)
        self._lock: DataDirLock = lock_data_dir(self.root)
        self._journals_root = self.root / "journals"
        self._make_dirs(self._journals_root)
        self._spools: dict[str, _Spool] = {}
        self._paths: dict[tuple[str, int], Path] = {}
        self._read_fds: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._damaged: dict[str, _Damaged] = {}
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

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def check_journal_name(self, journal: str) -> None:
        for segment in journal.split("/"):
            escaped = _escape_segment(segment)
            size = len(escaped.encode())
            if size > _MAX_SEGMENT:
                raise ValidationError(
                    f"path segment {segment[:32]!r}... of journal {journal!r} is {size} bytes "
                    f"once escaped, more than file storage allows ({_MAX_SEGMENT})"
                )
            if any(pattern.match(escaped) for pattern in _RESERVED):
                raise ValidationError(
                    f"journal {journal!r}: path segment {segment!r} is reserved for the "
                    "names of file storage's own files (<16 hex digits>.spool, .commits, "
                    "<begin>-<end>-<sha1>.raw)"
                )

    # -- damage

    def damage(self, journal: str) -> JournalDamage | None:
        """The damage recovery found in `journal`'s stored content, if any."""
        damaged = self._damaged.get(journal)
        return damaged.damage if damaged is not None else None

    def damaged_journals(self) -> list[JournalDamage]:
        return [self._damaged[name].damage for name in sorted(self._damaged)]

    def _refuse_if_damaged(self, journal: str) -> None:
        damaged = self._damaged.get(journal)
        if damaged is not None:
            raise aio.DataLoss(damaged.damage.message)

    # -- recovery

    def recover(self, journals: Sequence[str] | None = None) -> Recovered:
        """Specs and the verified state of every journal (or only of
        `journals`: the repair command looks at one)."""
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
        wanted = None if journals is None else set(journals)
        for dirpath, _dirnames, filenames in sorted(os.walk(self._journals_root)):
            names = sorted(filenames)
            if not any(p.match(n) for n in names for p in _RESERVED):
                continue
            rel = Path(dirpath).relative_to(self._journals_root)
            journal = "/".join(unquote(part) for part in rel.parts)
            if wanted is not None and journal not in wanted:
                continue
            recovered.journals[journal] = self._recover_journal(journal, Path(dirpath), names)
        return recovered

    def _recover_journal(self, journal: str, dir: Path, names: list[str]) -> RecoveredJournal:
        out = RecoveredJournal()
        problems: list[_Problem] = []
        for name in names:
            m = _RAW.match(name)
            if m is None:
                continue
            begin, end, digest = int(m.group(1), 16), int(m.group(2), 16), bytes.fromhex(m.group(3))
            path = dir / name
            stat = path.stat()
            # A damaged fragment stays listed: readers reaching it must get an
            # error, not silently jump over acknowledged content.
            out.fragments.append(FragmentFile(begin, end, digest, int(stat.st_mtime)))
            self._paths[(journal, begin)] = path
            if stat.st_size != end - begin:
                reason = f"it holds {stat.st_size} bytes, its name says {end - begin}"
                problems.append(_Problem(begin, "fragment", begin, path, reason))
            elif _sha1_of(path) != digest:
                reason = "its content does not match the SHA-1 in its name"
                problems.append(_Problem(begin, "fragment", begin, path, reason))
        out.fragments.sort(key=lambda f: f.begin)
        fragments_end = max((f.end for f in out.fragments), default=0)

        logs = sorted(int(m.group(1), 16) for n in names if (m := _COMMITS.match(n)))
        # The newest commit log is authoritative, unless it is a spool start
        # that never completed: then the one before it still is.
        while logs:
            begin = logs[-1]
            spool_path = dir / f"{begin:016x}.spool"
            if not _never_started(dir / f"{begin:016x}.commits", spool_path):
                break
            log.warning("journal %s: discarding an incomplete spool start at %d", journal, begin)
            (dir / f"{begin:016x}.commits").unlink()
            spool_path.unlink(missing_ok=True)
            logs.pop()
        current = logs[-1] if logs else None
        for name in names:
            if name.startswith(".repair-") and name.endswith(".tmp"):
                (dir / name).unlink()  # an interrupted repair's unfinished copy
                continue
            m = _SPOOL.match(name)
            if m is None or int(m.group(1), 16) == current:
                continue
            path = dir / name
            size = path.stat().st_size
            if size == 0:
                path.unlink()  # created, never appended to
            else:
                begin = int(m.group(1), 16)
                reason = "a spool holding content has no commit log vouching for it"
                problems.append(_Problem(begin, "orphan", begin, path, reason))
                fragments_end = max(fragments_end, begin + size)

        check = _check_spool(dir, current) if current is not None else None
        if check is not None and check.problem is not None:
            problems.append(check.problem)
        if check is not None and check.registers is not None:
            out.registers = check.registers

        if problems:
            first = min(problems, key=lambda p: p.offset)
            highest = fragments_end
            if check is not None:
                highest = max(highest, check.highest)
            out.write_head = highest
            if check is not None and check.spool_size is not None:
                assert current is not None
                out.spool_begin = current
                self._paths[(journal, current)] = dir / f"{current:016x}.spool"
            damage = JournalDamage(journal, first.offset, self._relative(first.path), first.reason)
            out.damage = damage
            latest = check.latest_registers if check is not None else None
            self._damaged[journal] = _Damaged(
                damage,
                dir,
                first.file_begin,
                first.kind,
                first.path,
                highest,
                latest if latest is not None else out.registers,
                check.tail if check is not None and first.kind == "spool" else None,
            )
            for problem in problems:
                log.error(
                    "journal %s: acknowledged content is damaged at offset %d: %s: %s",
                    journal,
                    problem.offset,
                    problem.path,
                    problem.reason,
                )
            log.error(
                "journal %s: refusing reads at or past offset %d and all appends; nothing was "
                "cut. Inspect with `gazette-trio broker repair --data-dir %s --journal %s`, "
                "repair with `... --truncate-at %d` (docs/journals.md)",
                journal,
                first.offset,
                self.root,
                journal,
                first.offset,
            )
            return out

        out.write_head = fragments_end
        if check is None or current is None:
            return out
        if check.spool_size is not None:
            cut = check.spool_size - (check.end - current)
            if check.torn or cut:
                log.warning(
                    "journal %s: cutting a torn tail past offset %d (%d spool bytes, %d "
                    "commit-log bytes): the process stopped before committing them, so they "
                    "were never acknowledged",
                    journal,
                    check.end,
                    cut,
                    check.log_size - check.stop,
                )
            self._open_spool(journal, dir, current, truncate_to=check.end - current)
            if check.log_size != check.stop:
                self._truncate_commits(journal, check.stop)
            out.spool_begin = current
        for older in logs[:-1]:
            (dir / f"{older:016x}.commits").unlink()
        # If the spool was rolled, its log stays: it carries the registers
        # until the next spool's log does.
        out.write_head = max(out.write_head, check.end)
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

    # -- repair

    def repair(self, journal: str, truncate_at: int) -> list[str]:
        """Repair `journal` (recovered by this storage, not serving): keep its
        damaged spool's content before `truncate_at` and the run of appends
        after the damage that verify again, as rolled fragments; set the
        damaged files aside under `quarantine/`; resume the journal at the
        highest offset ever acknowledged. A damaged rolled fragment, or a
        spool without its log, is set aside whole. Returns what was done,
        one line each.

        `truncate_at` must lie between the begin of the damaged file and the
        damage's offset: bytes there were verified, bytes past it were not.
        """
        damaged = self._damaged.get(journal)
        if damaged is None:
            raise ValueError(f"journal {journal}: no damage found; nothing to repair")
        lo, hi = damaged.file_begin, damaged.damage.offset
        if not lo <= truncate_at <= hi:
            raise ValueError(
                f"journal {journal}: --truncate-at {truncate_at} is outside [{lo}, {hi}]: "
                f"the damaged file begins at {lo} and its content is verified up to {hi}"
            )
        dir = damaged.dir
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        quarantine = self.root / QUARANTINE / stamp / dir.relative_to(self._journals_root)
        self._make_dirs(quarantine)
        done: list[str] = []
        write_head = damaged.write_head
        # The steps are ordered so that a crash between any two leaves either
        # the damage as it was (run the repair again) or the repaired state,
        # and never a write head below one acknowledged.
        if damaged.kind == "spool":
            spool = dir / f"{lo:016x}.spool"
            source = spool if spool.is_file() else None
            set_aside_to = write_head
            if source is not None and truncate_at > lo:
                kept = self._copy_range(source, lo, dir, lo, truncate_at)
                done.append(f"kept offsets [{lo}, {truncate_at}) as {self._relative(kept)}")
            if source is not None and damaged.tail is not None:
                tail_begin, tail_end = damaged.tail
                kept = self._copy_range(source, lo, dir, tail_begin, tail_end)
                done.append(
                    f"kept offsets [{tail_begin}, {tail_end}) (verified appends after the "
                    f"damage) as {self._relative(kept)}"
                )
                set_aside_to = tail_begin
            moving = [p for p in (dir / f"{lo:016x}.commits", spool) if p.is_file()]
            if write_head != lo:
                # Before the damaged log leaves: from here on, the newest log
                # holds the write head (and the registers) whatever happens.
                self._write_opening_log(dir, write_head, damaged.registers)
            for path in moving:
                os.rename(path, quarantine / path.name)
                done.append(f"moved {self._relative(path)} to {self._relative(quarantine)}/")
            if write_head == lo:
                self._write_opening_log(dir, write_head, damaged.registers)
            if truncate_at < set_aside_to:
                done.append(
                    f"offsets [{truncate_at}, {set_aside_to}) are no longer stored: readers "
                    "skip them"
                )
            done.append(f"appends resume at offset {write_head} (no offset is used twice)")
        else:
            # A rolled fragment (its SHA-1 says that it changed, not where) or
            # a spool no commit log vouches for: set aside whole.
            os.rename(damaged.path, quarantine / damaged.path.name)
            done.append(
                f"moved {self._relative(damaged.path)} to {self._relative(quarantine)}/; its "
                "offsets are no longer stored: readers skip them"
            )
        _fsync_dir(dir)
        _fsync_dir(quarantine)
        del self._damaged[journal]
        return done

    def _write_opening_log(self, dir: Path, begin: int, registers: pb.LabelSet) -> None:
        """A commit log opening a spool at `begin` (none yet): the next append
        starts the spool there with `registers`, as after a roll."""
        path = dir / f"{begin:016x}.commits"
        if path.exists():
            return  # an interrupted repair already wrote it
        tmp = dir / f".repair-{begin:016x}.commits.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _pwrite_all(fd, encode_record(begin, begin, 0, registers), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        _fsync_dir(dir)

    def _copy_range(self, source: Path, source_begin: int, dir: Path, begin: int, end: int) -> Path:
        """Journal bytes [begin, end) of `source` (a file holding the journal
        from `source_begin`) as a rolled fragment file named by their SHA-1."""
        # A leading "." can never be a journal's directory (segments are escaped).
        tmp = dir / f".repair-{begin:016x}.tmp"
        digest = hashlib.sha1()
        with open(source, "rb", buffering=0) as src, open(tmp, "wb") as dst:
            src.seek(begin - source_begin)
            remaining = end - begin
            while remaining:
                chunk = src.read(min(_CHUNK, remaining))
                if not chunk:
                    raise OSError(f"{source}: ends before offset {end}")
                digest.update(chunk)
                dst.write(chunk)
                remaining -= len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        target = dir / content_name(begin, end, digest.digest())
        os.rename(tmp, target)
        return target

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
        try:
            await trio.to_thread.run_sync(self._replace_file, self.root / "specs.json", data)
        except OSError as exc:
            full = _out_of_space(exc, "saving journal specs")
            if full is not None:
                raise full from None
            raise

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
        self._refuse_if_damaged(journal)
        if journal in self._spools:
            raise RuntimeError(f"journal {journal!r} already has an open spool")
        dir = self.journal_dir(journal)
        for name in (f"{begin:016x}.commits", f"{begin:016x}.spool"):
            if (dir / name).is_dir():
                # Only data directories from before such names were refused.
                raise aio.FailedPrecondition(
                    f"journal {journal}: its file {self._relative(dir / name)} is taken by "
                    f"the directory of journal {journal}/{name}; delete that journal to "
                    "append to this one"
                )
        try:
            await trio.to_thread.run_sync(self._start_spool, journal, dir, begin, registers)
        except OSError as exc:
            # A half-written first record and an empty spool are what
            # recovery takes for a spool start that never completed.
            full = _out_of_space(exc, f"journal {journal}: append")
            if full is not None:
                raise full from None
            raise

    def _start_spool(self, journal: str, dir: Path, begin: int, registers: pb.LabelSet) -> None:
        self._make_dirs(dir)
        commits_path = dir / f"{begin:016x}.commits"
        # The log (with the registers) is durable before the spool exists, so
        # a crash in between leaves a log recovery can use, never a spool
        # without one.
        fd = os.open(commits_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _pwrite_all(fd, encode_record(begin, begin, 0, registers), 0)
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
        # A whole append is a pending one written and committed in a single
        # trip to a worker thread.
        await self._pending(journal, spool_begin, offset).write_and_commit(content, registers)

    def begin_append(self, journal: str, spool_begin: int, offset: int) -> PendingAppend:
        return self._pending(journal, spool_begin, offset)

    def _pending(self, journal: str, spool_begin: int, offset: int) -> _FilePendingAppend:
        self._refuse_if_damaged(journal)
        spool = self._spools[journal]
        if spool.begin != spool_begin:
            raise RuntimeError(f"journal {journal!r}: no open spool at {spool_begin}")
        return _FilePendingAppend(self, journal, spool, offset)

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
        self._refuse_if_damaged(journal)
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

    def verify(
        self,
        journal: str,
        fragment: FragmentFile,
        write_head: int,
        registers: pb.LabelSet,
        max_rate: int,
    ) -> JournalDamage | None:
        path = self._paths.get((journal, fragment.begin))
        if path is None or not _RAW.match(path.name) or journal in self._damaged:
            return None  # removed meanwhile, still the spool, or known damaged
        try:
            size = path.stat().st_size
            if size != fragment.end - fragment.begin:
                reason = f"it holds {size} bytes, its name says {fragment.end - fragment.begin}"
            elif _sha1_of(path, max_rate=max_rate) != fragment.sum:
                reason = "its content no longer matches the SHA-1 in its name"
            else:
                return None
        except FileNotFoundError:
            if (journal, fragment.begin) not in self._paths:
                return None  # removed while it was being read
            reason = "its file is gone"
        damage = JournalDamage(journal, fragment.begin, self._relative(path), reason)
        self._damaged[journal] = _Damaged(
            damage, path.parent, fragment.begin, "fragment", path, write_head, registers, None
        )
        log.error(
            "journal %s: acknowledged content is damaged at offset %d: %s: %s; refusing reads "
            "at or past it and all appends. Stop the server and repair with `gazette-trio "
            "broker repair --data-dir %s --journal %s` (docs/journals.md)",
            journal,
            fragment.begin,
            path,
            reason,
            self.root,
            journal,
        )
        return damage

    def _remember_fd(self, key: tuple[str, int], fd: int) -> None:
        self._read_fds[key] = fd
        while len(self._read_fds) > _READ_FDS:
            _, old = self._read_fds.popitem(last=False)
            os.close(old)

    def read(self, journal: str, fragment_begin: int, offset: int, length: int) -> bytes:
        # Reads are served synchronously: fragment data is nearly always in
        # the page cache, and a thread hop per 128 KiB chunk would cost more
        # than the read.
        damaged = self._damaged.get(journal)
        if damaged is not None and offset + length > damaged.damage.offset:
            if offset >= damaged.damage.offset:
                raise aio.DataLoss(damaged.damage.message)
            # Served right up to the damage; the next read reaches it.
            length = damaged.damage.offset - offset
        spool = self._spools.get(journal)
        key = (journal, fragment_begin)
        if spool is not None and spool.begin == fragment_begin:
            fd = spool.fd
        else:
            fd = self._read_fds.get(key, -1)
            if fd < 0:
                path = self._paths[key]
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    # Removed behind the server's back: acknowledged content
                    # is gone, which the client must hear as such.
                    raise aio.DataLoss(
                        f"journal {journal}: fragment file {self._relative(path)} is missing"
                    ) from None
                self._remember_fd(key, fd)
            else:
                self._read_fds.move_to_end(key)
        try:
            data = os.pread(fd, length, offset - fragment_begin)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            raise aio.DataLoss(
                f"journal {journal}: reading offset {offset} failed ({exc.strerror})"
            ) from None
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
        self._lock.release()


class _FilePendingAppend:
    """An append in progress: each piece is written into the spool past the
    write head (in a worker thread: the copy into the page cache and the CRC
    of a large append take milliseconds, which the core overlaps with
    hashing it), its CRC-32 kept running; `commit` syncs the spool and then
    writes the record that vouches for all of it. Until then the bytes are a
    torn tail to recovery. On any error the spool and its log are cut back
    to where they were: the next append starts where this one did."""

    def __init__(self, storage: FileStorage, journal: str, spool: _Spool, offset: int) -> None:
        self._storage = storage
        self._journal = journal
        self._spool = spool
        self._offset = offset
        self._start = offset - spool.begin  # where the append begins in the spool file
        self._position = self._start
        self._crc = 0
        self._finished = False

    def _write(self, content: Sequence[bytes]) -> None:
        position, crc = self._position, self._crc
        for chunk in content:
            _pwrite_all(self._spool.fd, chunk, position)
            position += len(chunk)
            crc = zlib.crc32(chunk, crc)
        self._position, self._crc = position, crc

    def _record(self, registers: pb.LabelSet | None) -> bytes:
        end = self._offset + self._position - self._start
        return encode_record(self._offset, end, self._crc, registers)

    def _write_then_commit(self, content: Sequence[bytes], registers: pb.LabelSet | None) -> bytes:
        self._write(content)
        record = self._record(registers)
        self._storage._commit(self._spool, record)
        return record

    async def _in_thread(self, work: Callable[..., T], *args: object) -> T:
        try:
            return await trio.to_thread.run_sync(work, *args)
        except BaseException as exc:
            self._discard()
            full = _out_of_space(exc, f"journal {self._journal}: append of {self._offset} onwards")
            if full is not None:
                raise full from None
            raise

    async def write(self, content: Sequence[bytes]) -> None:
        if self._finished:
            raise RuntimeError(f"journal {self._journal!r}: write to a finished append")
        self._storage._refuse_if_damaged(self._journal)
        await self._in_thread(self._write, content)

    async def commit(self, registers: pb.LabelSet | None) -> None:
        if self._finished:
            raise RuntimeError(f"journal {self._journal!r}: commit of a finished append")
        record = self._record(registers)
        await self._in_thread(self._storage._commit, self._spool, record)
        self._committed(record)

    async def write_and_commit(
        self, content: Sequence[bytes], registers: pb.LabelSet | None
    ) -> None:
        """`write` and `commit` in one trip to a worker thread."""
        if self._finished:
            raise RuntimeError(f"journal {self._journal!r}: commit of a finished append")
        record = await self._in_thread(self._write_then_commit, content, registers)
        self._committed(record)

    def _committed(self, record: bytes) -> None:
        self._spool.commits_size += len(record)
        self._finished = True

    async def abort(self) -> None:
        self._discard()
        await trio.lowlevel.checkpoint()

    def _discard(self) -> None:
        if self._finished:
            return
        self._finished = True
        # As a failed whole append: the spool and its log end where they did.
        os.ftruncate(self._spool.fd, self._start)
        os.ftruncate(self._spool.commits_fd, self._spool.commits_size)
