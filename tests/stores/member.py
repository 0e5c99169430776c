"""A shard member in its own process, for tests that SIGKILL it.

`python -m tests.stores.member ENDPOINT DIRECTORY STORE` connects to the
journal server at ENDPOINT, plays the shard's recovery log into DIRECTORY,
takes the log over, opens the store (`sqlite`, `sqlite-<journal mode>` such
as `sqlite-truncate`, or `json`) and commits
transactions forever: transaction `i` adds item `i` and sets `last` to `i`,
with checkpoint `read_through = i`. After each commit resolves it prints
`committed i`. It never stops by itself: the test kills it.
"""

from __future__ import annotations

import sys
from typing import Any

import trio

from gazette_trio import aio
from gazette_trio.broker.append_service import open_append_service
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol.recoverylog import FsmHints
from gazette_trio.recoverylog.author import new_author
from gazette_trio.recoverylog.player import Player
from gazette_trio.recoverylog.recorder import open_recorder

LOG = "recovery/killed-shard"
SOURCE = "source/journal"
FQN = "/gazette/consumers/test/items/killed"
SCHEMA = "CREATE TABLE IF NOT EXISTS items (i INTEGER PRIMARY KEY, payload BLOB NOT NULL)"


def payload(i: int) -> bytes:
    return (b"%08d" % i) * 200


def checkpoint(i: int) -> pc.Checkpoint:
    return pc.Checkpoint(sources={SOURCE: pc.CheckpointSource(read_through=i)})


def journal_mode(kind: str) -> str:
    """`sqlite-truncate` -> `TRUNCATE`; plain `sqlite` is the default WAL."""
    return kind.partition("-")[2].upper() or "WAL"


class _Shard:
    def __init__(self, nursery: trio.Nursery) -> None:
        self.fqn = FQN
        self.nursery = nursery


async def main(endpoint: str, directory: str, kind: str) -> None:
    from gazette_trio.consumer.stores.json_file import JSONFileStore
    from gazette_trio.consumer.stores.sqlite import SQLiteStore

    async with aio.asyncio_island(), aio.Channel(endpoint) as channel:
        client = GrpcJournalClient(channel)
        async with open_append_service(client) as appender, trio.open_nursery() as nursery:
            player = Player()
            author = new_author()
            nursery.start_soon(player.play, FsmHints(log=LOG), directory, client, appender)
            player.inject_handoff(author)
            playback = await player.wait_done()
            recorder = await open_recorder(
                log=LOG, fsm=playback.fsm, author=author, directory=directory, appender=appender
            )
            shard: Any = _Shard(nursery)
            store: Any
            if kind.startswith("sqlite"):
                store = await SQLiteStore.open(
                    recorder, bootstrap=SCHEMA, journal_mode=journal_mode(kind)
                )
            else:
                store = await JSONFileStore.open(
                    recorder=recorder, initial=lambda: {"items": [], "last": 0}
                )
            restored = await store.restore_checkpoint(shard)
            source = restored.sources.get(SOURCE)
            i = source.read_through if source is not None else 0
            print(f"restored {i}", flush=True)
            while True:
                i += 1
                if kind.startswith("sqlite"):
                    store.db.execute(
                        "INSERT INTO items (i, payload) VALUES (?, ?)", (i, payload(i))
                    )
                else:
                    store.state["items"].append(i)
                    store.state["last"] = i
                await trio.sleep(0.002)  # the kill often lands in here: mid-transaction
                await store.start_commit(shard, checkpoint(i), set())
                print(f"committed {i}", flush=True)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
