"""No journal name can collide with another journal's storage files.

A journal's directory holds its files (`<begin>.spool`, `<begin>.commits`,
`<begin>-<end>-<sha1>.raw`) beside the directories of journals named below
it. A client could create `X/0000000000000000.spool` and then `X`: appends
to `X` then failed with IsADirectoryError, and the server could not start
again. Such segments are now refused as journal names, and a data directory
written before that still opens, serving everything it can and saying why
it cannot serve the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from gazette_trio import aio
from gazette_trio.broker.appender import append
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.server import FileStorage
from gazette_trio.broker.server.commit_log import encode_record
from gazette_trio.broker.server.storage import SpecRecord

from .harness import ServerProcess, connect, read_back, served_range

RESERVED = [
    "hostile/x/0000000000000000.spool",
    "hostile/x/0000000000000000.commits",
    "hostile/x/0000000000000000-0000000000000010-" + "ab" * 20 + ".raw",
]


@pytest.fixture
async def server(tmp_path: Path, island: None) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data")
    try:
        await server.start()
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("name", RESERVED, ids=["spool", "commits", "fragment"])
async def test_a_storage_file_name_is_refused_as_a_journal_name(
    server: ServerProcess, name: str
) -> None:
    async with connect(server) as client:
        segment = name.split("/")[2]
        with pytest.raises(
            aio.InvalidArgument,
            match=f"path segment '{segment}' is reserved for the names of file storage",
        ):
            await apply_journals(client, [upsert(new_journal_spec(name))])
        # Names that merely look alike are fine, and X itself works.
        await apply_journals(
            client,
            [
                upsert(new_journal_spec("hostile/x")),
                upsert(new_journal_spec("hostile/x/0000000000000000.spool2")),
            ],
        )
        first = await append(client, "hostile/x", b"content of X")
        await append(client, "hostile/x/0000000000000000.spool2", b"a sibling")
    server.stop()
    await server.start()
    async with connect(server) as client:
        assert first.commit is not None
        served = await read_back(client, "hostile/x")
        assert served_range(served, first.commit.begin, first.commit.end) == b"content of X"


def write_a_colliding_data_directory(root: Path) -> None:
    """What an earlier version let clients leave: journal X/<begin>.spool
    with content, and X, whose first append failed half-way."""

    async def main() -> None:
        storage = FileStorage(root)
        try:
            spec = new_journal_spec
            await storage.save_specs(
                3,
                {
                    "hostile/x": SpecRecord(spec("hostile/x"), 3, 3),
                    "hostile/x/0000000000000000.spool": SpecRecord(
                        spec("hostile/x/0000000000000000.spool"), 2, 2
                    ),
                },
            )
            inner = "hostile/x/0000000000000000.spool"
            await storage.start_spool(inner, 0, spec(inner).labels)
            await storage.append(inner, 0, 0, [b"inner content"], None)
            # X's commit log was created before its spool failed to open.
            log = storage.journal_dir("hostile/x") / "0000000000000000.commits"
            log.write_bytes(encode_record(0, 0, 0, spec("hostile/x").labels))
        finally:
            storage.close()

    trio.run(main)


async def test_a_data_directory_with_a_collision_from_before_still_opens(
    tmp_path: Path, island: None
) -> None:
    await trio.to_thread.run_sync(write_a_colliding_data_directory, tmp_path / "data")
    server = ServerProcess(tmp_path / "data")
    await server.start()
    try:
        async with connect(server) as client:
            served = await read_back(client, "hostile/x/0000000000000000.spool")
            assert served_range(served, 0, 13) == b"inner content"
            with pytest.raises(
                aio.FailedPrecondition,
                match=r"journal hostile/x: its file journals/hostile/x/0000000000000000.spool is taken by the "
                r"directory of journal hostile/x/0000000000000000.spool; delete that journal",
            ):
                await append(client, "hostile/x", b"more")
    finally:
        server.stop()
