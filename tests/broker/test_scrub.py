"""`JournalServerCore.scrub` re-verifies rolled fragments while serving.

An intact store passes and stays fully served; a fragment whose bytes
changed makes its journal damaged from that fragment on (as restart would
find it): reads before it are served, reads reaching it and appends answer
DATA_LOSS, and other journals are untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gazette_trio import aio
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import upsert
from gazette_trio.broker.server import FileStorage, JournalServerCore, MemoryStorage
from gazette_trio.protocol import protocol as pb


async def read(core: JournalServerCore, journal: str, end: int = 0) -> bytes:
    sent: list[bytes] = []

    async def send(response: pb.ReadResponse) -> None:
        sent.append(response.content)

    request = pb.ReadRequest(journal=journal, offset=0, end_offset=end, block=False)
    await core.read(request, send)
    return b"".join(sent)


async def filled(core: JournalServerCore) -> bytes:
    specs = [new_journal_spec(name, fragment_length=1024) for name in ("a/rots", "a/keeps")]
    await core.apply(pb.ApplyRequest(changes=[upsert(s) for s in specs]))
    body = b""
    for i in range(6):
        data = f"<{i}>".encode() * 200
        body += data
        for name in ("a/rots", "a/keeps"):
            await core.append(pb.AppendRequest(journal=name), [data])
    return body


async def test_an_intact_store_passes_the_scrub_and_stays_served(tmp_path: Path) -> None:
    core = JournalServerCore(FileStorage(tmp_path))
    try:
        body = await filled(core)
        assert await core.scrub() == []
        assert await read(core, "a/rots") == body
    finally:
        core.close()


async def test_a_fragment_changed_on_disk_damages_its_journal_from_there_on(
    tmp_path: Path,
) -> None:
    core = JournalServerCore(FileStorage(tmp_path))
    try:
        body = await filled(core)
        fragments = sorted((tmp_path / "journals" / "a" / "rots").glob("*.raw"))
        target = fragments[1]
        begin = int(target.name.split("-")[0], 16)
        data = bytearray(target.read_bytes())
        data[10] ^= 0xFF
        target.write_bytes(bytes(data))

        damaged = await core.scrub()
        assert [(d.journal, d.offset) for d in damaged] == [("a/rots", begin)]
        assert damaged[0].file == f"journals/a/rots/{target.name}"
        assert await read(core, "a/rots", end=begin) == body[:begin]
        with pytest.raises(aio.DataLoss, match=f"damaged at offset {begin}"):
            await read(core, "a/rots")
        with pytest.raises(aio.DataLoss, match=f"damaged at offset {begin}"):
            await core.append(pb.AppendRequest(journal="a/rots"), [b"more"])
        assert await read(core, "a/keeps") == body
        # A second pass reports nothing new.
        assert await core.scrub() == []
    finally:
        core.close()


async def test_memory_storage_has_nothing_to_scrub() -> None:
    core = JournalServerCore(MemoryStorage())
    await filled(core)
    assert await core.scrub() == []
