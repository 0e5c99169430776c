"""File storage: everything acknowledged survives a restart, nothing torn does.

These tests stop a server core (closing its storage, as a process exit
would) or damage its files the way a crash can, then build a new core on
the same directory and check what it recovered.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import pytest

from gazette_trio import aio
from gazette_trio.broker.appender import append
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, delete, list_journals, upsert
from gazette_trio.broker.local import LocalJournalClient
from gazette_trio.broker.reader import read_journal
from gazette_trio.broker.server import FileStorage, JournalServerCore, MemoryStorage, file_storage
from gazette_trio.protocol import labels as L
from gazette_trio.protocol import protocol as pb


def append_bytes(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def open_core(path: Path) -> tuple[JournalServerCore, LocalJournalClient]:
    core = JournalServerCore(FileStorage(path))
    return core, LocalJournalClient(core)


async def damage_second_append(path: Path) -> Path:
    """Append `first;` and `second;` to a/journal, close, then flip a byte
    of the second (acknowledged) append on disk; returns the spool file."""
    core, client = open_core(path)
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    await append(client, "a/journal", b"first;")
    await append(client, "a/journal", b"second;")
    core.storage.close()
    spool = path / "journals" / "a" / "journal" / "0000000000000000.spool"
    data = bytearray(spool.read_bytes())
    data[8] ^= 0xFF
    spool.write_bytes(bytes(data))
    return spool


async def test_a_restart_recovers_specs_content_fragments_and_registers(tmp_path: Path) -> None:
    core, client = open_core(tmp_path)
    revision = await apply_journals(
        client,
        [upsert(new_journal_spec("logs/app", fragment_length=1024, content_type="text/plain"))],
    )
    await append(client, "logs/app", b"a" * 1000, union_registers=L.label_set({"owner": "one"}))
    await append(client, "logs/app", b"b" * 1000)  # rolls the first spool
    await append(client, "logs/app", b"c" * 100)
    before = await client.list_fragments(pb.FragmentsRequest(journal="logs/app"))
    core.storage.close()

    core, client = open_core(tmp_path)
    assert core.revision == revision
    [listed] = await list_journals(client)
    assert listed.spec == new_journal_spec(
        "logs/app", fragment_length=1024, content_type="text/plain"
    )
    assert await read_journal(client, "logs/app") == b"a" * 1000 + b"b" * 1000 + b"c" * 100
    assert core.write_head("logs/app") == 2100
    assert core.registers("logs/app") == L.label_set({"owner": "one"})
    after = await client.list_fragments(pb.FragmentsRequest(journal="logs/app"))
    assert [(f.spec.begin, f.spec.end, f.spec.sum) for f in after.fragments] == [
        (f.spec.begin, f.spec.end, f.spec.sum) for f in before.fragments
    ]
    # Appends continue at the recovered head.
    response = await append(client, "logs/app", b"d")
    assert (response.commit.begin, response.commit.end) == (2100, 2101)
    core.storage.close()


async def test_fragments_are_files_named_like_gazettes_content_names(tmp_path: Path) -> None:
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec("a/b/journal", fragment_length=1024))])
    await append(client, "a/b/journal", b"x" * 2000)
    await append(client, "a/b/journal", b"y" * 10)
    core.storage.close()
    directory = tmp_path / "journals" / "a" / "b" / "journal"
    digest = hashlib.sha1(b"x" * 2000).hexdigest()
    assert sorted(os.listdir(directory)) == [
        f"0000000000000000-00000000000007d0-{digest}.raw",
        "00000000000007d0.commits",
        "00000000000007d0.spool",
    ]
    assert (
        directory / f"0000000000000000-00000000000007d0-{digest}.raw"
    ).read_bytes() == b"x" * 2000


async def test_a_torn_tail_is_discarded_on_restart(tmp_path: Path) -> None:
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    await append(client, "a/journal", b"acknowledged one;")
    await append(client, "a/journal", b"acknowledged two;")
    core.storage.close()

    # A crash mid-append: content bytes written, the commit record torn.
    directory = tmp_path / "journals" / "a" / "journal"
    append_bytes(directory / "0000000000000000.spool", b"half an unacknowledged app")
    append_bytes(directory / "0000000000000000.commits", b"GTc1\x00\x01")

    core, client = open_core(tmp_path)
    assert await read_journal(client, "a/journal") == b"acknowledged one;acknowledged two;"
    assert core.write_head("a/journal") == 34
    assert (directory / "0000000000000000.spool").stat().st_size == 34
    await append(client, "a/journal", b"three")
    assert await read_journal(client, "a/journal") == b"acknowledged one;acknowledged two;three"
    core.storage.close()


async def test_acknowledged_content_that_does_not_match_its_record_is_refused_not_cut(
    tmp_path: Path,
) -> None:
    spool = await damage_second_append(tmp_path)

    storage = FileStorage(tmp_path)
    damage = storage.recover().journals["a/journal"].damage
    storage.close()
    assert damage is not None
    assert (damage.offset, damage.file) == (6, "journals/a/journal/0000000000000000.spool")

    core, client = open_core(tmp_path)
    # The write head stays where the acknowledged appends put it, the damaged
    # bytes stay on disk, and both reads and appends say what is wrong.
    assert core.write_head("a/journal") == 13
    assert spool.stat().st_size == 13
    expected = r"journal a/journal: stored content is damaged at offset 6 \(journals/a/journal/"
    with pytest.raises(aio.DataLoss, match=expected):
        await read_journal(client, "a/journal")
    with pytest.raises(aio.DataLoss, match=expected):
        await append(client, "a/journal", b"third;")
    # What lies before the damage, in the same spool, is served right up to it.
    served: list[bytes] = []

    async def collect(response: pb.ReadResponse) -> None:
        served.append(response.content)

    with pytest.raises(aio.DataLoss, match=expected):
        await core.read(pb.ReadRequest(journal="a/journal", block=False), collect)
    assert b"".join(served) == b"first;"
    core.storage.close()


async def test_registers_survive_a_roll_and_a_restart(tmp_path: Path) -> None:
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec("a/log", fragment_length=1024))])
    await append(client, "a/log", b"x" * 1500, union_registers=L.label_set({"author": "me"}))
    await append(client, "a/log", b"y" * 10)  # rolls: the registers move to the new spool's log
    core.storage.close()
    core, client = open_core(tmp_path)
    assert core.registers("a/log") == L.label_set({"author": "me"})
    fenced = await client.append(
        pb.AppendRequest(
            journal="a/log",
            check_registers=pb.LabelSelector(include=L.label_set({"author": "you"})),
        ),
        [b"z"],
    )
    assert fenced.status == pb.Status.REGISTER_MISMATCH
    core.storage.close()


async def test_a_spool_start_torn_by_a_crash_falls_back_to_the_previous_log(tmp_path: Path) -> None:
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec("a/log", fragment_length=1024))])
    await append(client, "a/log", b"x" * 1500, union_registers=L.label_set({"author": "me"}))
    core.storage.close()
    directory = tmp_path / "journals" / "a" / "log"
    # The spool was rolled, and the crash hit while its successor's log was
    # being created.
    os.rename(
        directory / "0000000000000000.spool",
        directory
        / f"0000000000000000-00000000000005dc-{hashlib.sha1(b'x' * 1500).hexdigest()}.raw",
    )
    (directory / "00000000000005dc.commits").write_bytes(b"GTc")

    core, client = open_core(tmp_path)
    assert core.write_head("a/log") == 1500
    assert core.registers("a/log") == L.label_set({"author": "me"})
    response = await append(client, "a/log", b"y")
    assert response.commit.begin == 1500
    assert await read_journal(client, "a/log") == b"x" * 1500 + b"y"
    core.storage.close()


async def test_a_failed_write_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    await append(client, "a/journal", b"before;")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full_disk)
    with pytest.raises(aio.ResourceExhausted, match=r"data directory is full \(No space left"):
        await append(client, "a/journal", b"lost;")
    monkeypatch.undo()
    assert core.write_head("a/journal") == 7
    await append(client, "a/journal", b"after")
    core.storage.close()
    core, client = open_core(tmp_path)
    assert await read_journal(client, "a/journal") == b"before;after"
    core.storage.close()


async def test_unusual_journal_names_map_to_safe_reversible_directories(tmp_path: Path) -> None:
    names = ["odd/.hidden/x=1%2F", "ünï/cödé", "a/b/c"]
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec(n)) for n in names])
    for name in names:
        await append(client, name, name.encode())
    core.storage.close()
    for path in (tmp_path / "journals").rglob("*"):
        assert path.resolve().is_relative_to((tmp_path / "journals").resolve())
    assert (tmp_path / "journals" / "odd" / "%2Ehidden").is_dir()
    core, client = open_core(tmp_path)
    for name in names:
        assert await read_journal(client, name) == name.encode()
    core.storage.close()


async def test_a_name_too_long_for_the_file_system_is_rejected_clearly(tmp_path: Path) -> None:
    core, client = open_core(tmp_path)
    with pytest.raises(
        aio.InvalidArgument, match=r"once escaped, more than file storage allows \(255\)"
    ):
        await apply_journals(client, [upsert(new_journal_spec("a/" + "x" * 300))])
    core.storage.close()


async def test_a_deleted_journal_keeps_its_content_and_resumes_when_recreated(
    tmp_path: Path,
) -> None:
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    await append(client, "a/journal", b"kept")
    await apply_journals(client, [delete("a/journal")])
    core.storage.close()
    core, client = open_core(tmp_path)
    assert await list_journals(client) == []
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    response = await append(client, "a/journal", b"+more")
    assert response.commit.begin == 4
    assert await read_journal(client, "a/journal") == b"kept+more"
    core.storage.close()


async def test_a_new_core_on_the_same_memory_storage_models_a_restart() -> None:
    storage = MemoryStorage()
    core = JournalServerCore(storage)
    client = LocalJournalClient(core)
    revision = await apply_journals(
        client, [upsert(new_journal_spec("a/journal", fragment_length=1024))]
    )
    await append(client, "a/journal", b"x" * 1500, union_registers=L.label_set({"owner": "one"}))
    await append(client, "a/journal", b"y" * 10)

    core = JournalServerCore(storage)
    client = LocalJournalClient(core)
    assert core.revision == revision
    assert core.registers("a/journal") == L.label_set({"owner": "one"})
    assert await read_journal(client, "a/journal") == b"x" * 1500 + b"y" * 10
    response = await append(client, "a/journal", b"z")
    assert response.commit.begin == 1510


async def test_a_data_directory_written_in_the_old_record_format_still_opens(
    tmp_path: Path,
) -> None:
    """Commit logs of earlier versions (format 1: no begin offset, no header
    checksum) are read as they are; appends add format-2 records to them."""
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec("a/old"))])
    core.storage.close()
    directory = tmp_path / "journals" / "a" / "old"
    directory.mkdir(parents=True)
    registers = bytes(L.label_set({"owner": "old"}))

    def v1(end: int, crc: int, regs: bytes | None) -> bytes:
        body = struct.pack("<4sQIi", b"GTc1", end, crc, -1 if regs is None else len(regs))
        body += regs or b""
        return body + struct.pack("<I", zlib.crc32(body))

    (directory / "0000000000000000.spool").write_bytes(b"written by an older version;")
    (directory / "0000000000000000.commits").write_bytes(
        v1(0, 0, registers)
        + v1(12, zlib.crc32(b"written by a"), None)
        + v1(28, zlib.crc32(b"n older version;"), None)
    )

    core, client = open_core(tmp_path)
    assert core.write_head("a/old") == 28
    assert core.registers("a/old") == L.label_set({"owner": "old"})
    response = await append(client, "a/old", b" and a newer one")
    assert (response.commit.begin, response.commit.end) == (28, 44)
    core.storage.close()

    core, client = open_core(tmp_path)
    assert await read_journal(client, "a/old") == b"written by an older version; and a newer one"
    log = (directory / "0000000000000000.commits").read_bytes()
    assert log.count(b"GTc1") == 3 and log.count(b"GTc2") == 1
    core.storage.close()


async def test_a_damaged_log_beside_a_rolled_spool_is_refused_not_taken_for_an_unfinished_start(
    tmp_path: Path,
) -> None:
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec("a/log", fragment_length=1024))])
    await append(client, "a/log", b"x" * 1500, union_registers=L.label_set({"author": "me"}))
    core.storage.close()
    directory = tmp_path / "journals" / "a" / "log"
    # The spool was rolled; its log alone still carries the registers.
    os.rename(
        directory / "0000000000000000.spool",
        directory
        / f"0000000000000000-00000000000005dc-{hashlib.sha1(b'x' * 1500).hexdigest()}.raw",
    )
    log = directory / "0000000000000000.commits"
    data = bytearray(log.read_bytes())
    data[10] ^= 0xFF  # inside the opening record
    log.write_bytes(bytes(data))

    core, client = open_core(tmp_path)
    assert core.write_head("a/log") == 1500
    with pytest.raises(
        aio.DataLoss,
        match=r"damaged at offset 0 \(journals/a/log/0000000000000000.commits: the commit "
        r"record at log position 0 is damaged",
    ):
        await append(client, "a/log", b"y")
    assert log.read_bytes() == bytes(data)  # kept as it is, for the operator
    core.storage.close()

    # The repair keeps the registers the later record still vouches for.
    storage = FileStorage(tmp_path)
    storage.recover(["a/log"])
    storage.repair("a/log", 0)
    storage.close()
    core, client = open_core(tmp_path)
    assert core.registers("a/log") == L.label_set({"author": "me"})
    assert await read_journal(client, "a/log") == b"x" * 1500
    response = await append(client, "a/log", b"y")
    assert response.commit.begin == 1500
    core.storage.close()


class _Crash(Exception):
    pass


@pytest.mark.parametrize("renames_before_the_crash", range(5))
async def test_a_repair_interrupted_at_any_step_can_be_run_again_and_loses_no_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renames_before_the_crash: int
) -> None:
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
    acked = [await append(client, "a/journal", f"append {i};".encode()) for i in range(6)]
    core.storage.close()
    spool = tmp_path / "journals" / "a" / "journal" / "0000000000000000.spool"
    damaged = acked[2].commit
    data = bytearray(spool.read_bytes())
    data[damaged.begin + 1] ^= 0xFF
    spool.write_bytes(bytes(data))
    head = acked[-1].commit.end

    # Every file step of the repair is a rename; the process dies after n.
    real_rename = os.rename
    left = [renames_before_the_crash]

    def rename(src: object, dst: object) -> None:
        if left[0] == 0:
            raise _Crash()
        left[0] -= 1
        real_rename(src, dst)  # type: ignore[arg-type]

    storage = FileStorage(tmp_path)
    storage.recover(["a/journal"])
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(_Crash):
        storage.repair("a/journal", damaged.begin)
    monkeypatch.undo()
    storage.close()

    storage = FileStorage(tmp_path)
    recovered = storage.recover(["a/journal"]).journals["a/journal"]
    assert recovered.write_head == head
    damage = storage.damage("a/journal")
    if damage is not None:  # run it again, as the report says
        storage.repair("a/journal", damage.offset)
    storage.close()

    core, client = open_core(tmp_path)
    assert core.write_head("a/journal") == head
    content = await read_journal(client, "a/journal")
    kept = [f"append {i};".encode() for i in range(6) if i != 2]
    assert content == b"".join(kept)
    response = await append(client, "a/journal", b"next")
    assert response.commit.begin == head
    core.storage.close()


async def test_a_fragment_file_removed_behind_the_servers_back_is_data_loss_without_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_storage, "_READ_FDS", 1)  # the first fragment's fd is let go
    core, client = open_core(tmp_path)
    await apply_journals(client, [upsert(new_journal_spec("a/log", fragment_length=1024))])
    await append(client, "a/log", b"x" * 1500)
    await append(client, "a/log", b"y" * 1500)  # rolls [0, 1500)
    await append(client, "a/log", b"z")  # rolls [1500, 3000)
    first = next((tmp_path / "journals" / "a" / "log").glob("0000000000000000-*.raw"))
    first.unlink()
    with pytest.raises(
        aio.DataLoss, match=rf"journal a/log: fragment file journals/a/log/{first.name} is missing"
    ) as refused:
        await read_journal(client, "a/log")
    assert str(tmp_path) not in str(refused.value)
    core.storage.close()


async def test_a_repair_keeps_only_verified_content_and_says_what_it_may_keep(
    tmp_path: Path,
) -> None:
    await damage_second_append(tmp_path)

    storage = FileStorage(tmp_path)
    storage.recover()
    with pytest.raises(ValueError, match=r"--truncate-at 7 is outside \[0, 6\]"):
        storage.repair("a/journal", 7)  # past the damage: not verified
    with pytest.raises(ValueError, match="journal a/other: no damage found"):
        storage.repair("a/other", 0)
    assert storage.repair("a/journal", 6)[0] == (
        "kept offsets [0, 6) as journals/a/journal/0000000000000000-0000000000000006-"
        + hashlib.sha1(b"first;").hexdigest()
        + ".raw"
    )
    storage.close()
