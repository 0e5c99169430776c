"""A shard without a recovery log keeps JSONFileStore state in its member's data directory.

The real consumer runtime (an in-process cluster) runs a word count whose
`new_store` is `JSONFileStore.open(recorder=recorder, shard=shard)` for a
shard with no `recovery_log_prefix`: the recorder is None, so the store
lives in the shard's durable `store_directory`,
`<member data dir>/stores/<shard id>`. A member restarted over the same data
directory resumes from that file.
"""

from __future__ import annotations

import collections
import datetime
from pathlib import Path
from typing import Any

import trio

from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.consumer.stores.directories import shard_store_directory
from gazette_trio.consumer.stores.json_file import STATE_FILE, JSONFileStore, decode_document
from gazette_trio.protocol import consumer as pc
from gazette_trio.testing.cluster import open_cluster

LINES = "lines/part-000"
SHARD = "count/part-000"


class WordCount:
    async def new_store(self, shard: Any, recorder: Any) -> JSONFileStore:
        assert recorder is None
        return await JSONFileStore.open(recorder=recorder, shard=shard)

    def new_message(self, spec: Any) -> type:
        return dict

    async def consume_message(self, shard: Any, store: Any, envelope: Any, publisher: Any) -> None:
        for word in envelope.message["text"].split():
            store.state[word] = store.state.get(word, 0) + 1

    async def finalize_txn(self, shard: Any, store: Any, publisher: Any) -> None:
        pass


def counts(lines: list[str]) -> dict[str, int]:
    return dict(collections.Counter(w for line in lines for w in line.split()))


async def test_state_lives_in_the_members_data_directory_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    # Real time, not an autojump clock: the store fsyncs in worker threads,
    # and a mock clock jumps ahead whenever the loop waits for them.
    spec = pc.ShardSpec(
        id=SHARD,
        sources=[pc.ShardSpecSource(journal=LINES)],
        max_txn_duration=datetime.timedelta(seconds=0.5),
    )
    state_file = shard_store_directory(tmp_path / "alpha", SHARD) / STATE_FILE
    assert state_file == tmp_path / "alpha" / "stores" / "count%2Fpart-000" / "state.json"
    async with open_cluster(
        WordCount,  # type: ignore[arg-type]
        data_dir=tmp_path,
        journals=[new_journal_spec(LINES, content_type="application/x-ndjson")],
        shards=[spec],
    ) as c:
        with trio.fail_after(30):  # a shard that failed would never read through
            await c.add_member("alpha")
            first = [f"apple pear {i % 3}" for i in range(10)]
            await c.publish(LINES, [{"text": t} for t in first])
            head = (await c.write_heads([LINES]))[LINES]
            await c.wait_read_through(SHARD, {LINES: head})
            state, checkpoint = decode_document(state_file.read_bytes(), state_file)
            assert state == counts(first)
            assert checkpoint.sources[LINES].read_through == head

            await c.crash("alpha")
            await c.add_member("alpha")  # the same data directory
            second = ["pear plum"] * 4
            await c.publish(LINES, [{"text": t} for t in second])
            head = (await c.write_heads([LINES]))[LINES]
            await c.wait_read_through(SHARD, {LINES: head})
            state, _ = decode_document(state_file.read_bytes(), state_file)
            assert state == counts(first + second)


def test_each_shard_gets_its_own_directory_component() -> None:
    """Ids map one-to-one onto a single path component under `stores/`."""
    member = Path("/data/member")
    names = {
        shard_id: shard_store_directory(member, shard_id)
        for shard_id in ("a/b", "a_b", "a%2Fb", "..", ".", "count-000")
    }
    assert len(set(names.values())) == len(names)
    for path in names.values():
        assert path.parent == member / "stores"
    assert names[".."].name == "%2E%2E"
