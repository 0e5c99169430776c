"""A shard that reads only duplicates still reports reading them.

Issue 17's reproduction, on the production runtime: a message is appended
twice (a writer retried after a lost acknowledgement, say). The second copy
is a duplicate, so no transaction begins, and yet waiting for the shard to
read through the journal's head (what `Stat` with `read_through` does) must
return rather than wait for a message that may never come.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import trio
import trio.testing

from gazette_trio.broker.appender import append
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.consumer.stores.memory import MemoryDatabase, MemoryStore
from gazette_trio.message.framing import framing_by_content_type
from gazette_trio.message.message import set_uuid
from gazette_trio.message.uuids import OUTSIDE_TXN, build_uuid, new_producer_id
from gazette_trio.protocol import consumer as pc
from gazette_trio.testing.cluster import open_cluster

LINES = "lines/part-000"
NDJSON = "application/x-ndjson"


class Collect:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db
        self.seen: list[Any] = []

    async def new_store(self, shard: Any, recorder: Any) -> MemoryStore:
        return MemoryStore(self.db)

    def new_message(self, spec: Any) -> type:
        return dict

    async def consume_message(self, shard: Any, store: Any, envelope: Any, publisher: Any) -> None:
        self.seen.append(envelope.message["n"])

    async def finalize_txn(self, shard: Any, store: Any, publisher: Any) -> None:
        pass


async def test_waiting_for_a_head_reached_only_by_duplicates_returns(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    db = MemoryDatabase()
    app = Collect(db)
    async with open_cluster(
        lambda: app,  # type: ignore[arg-type,return-value]
        data_dir=tmp_path,
        journals=[new_journal_spec(LINES, content_type=NDJSON)],
        shards=[
            pc.ShardSpec(
                id="collect",
                sources=[pc.ShardSpecSource(journal=LINES)],
                max_txn_duration=datetime.timedelta(seconds=1),
            )
        ],
    ) as c:
        await c.add_member("alpha")
        message: dict[str, Any] = {"n": 1}
        set_uuid(message, build_uuid(new_producer_id(), 1 << 40, OUTSIDE_TXN))
        frame = framing_by_content_type(NDJSON).marshal(message)

        first = (await append(c.journals, LINES, frame)).commit
        assert first is not None
        await c.wait_read_through("collect", {LINES: first.end})
        again = (await append(c.journals, LINES, frame)).commit
        assert again is not None and again.begin == first.end

        with trio.fail_after(30):
            shard = await c.wait_read_through("collect", {LINES: again.end})
        assert shard.progress()[0][LINES] == again.end
        assert app.seen == [1]
