"""`serve`'s declared journals and shards reach a real etcd in batches.

etcd takes at most 128 operations per transaction (its default
`--max-txn-ops`). A config declaring 300 journals and 300 shards is applied
in transactions under that limit, as Gazette's ApplyShardsInBatches, where
one transaction of 300 would be refused.
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path

import pytest

from gazette_trio.allocator import ApplyConflict, apply_shard_specs
from gazette_trio.allocator.apply import apply_in_batches, batches
from gazette_trio.broker import LocalJournalClient, list_journals
from gazette_trio.broker.server import JournalServerCore, MemoryStorage
from gazette_trio.etcd import GrpcEtcd, InvalidRequest
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol.recoverylog import FnodeSegments, FsmHints, Segment
from gazette_trio.runtime.config import load_config
from gazette_trio.runtime.serve import create_declared

COUNT = 300


def config_text(prefix: str, etcd_endpoint: str) -> str:
    children = ", ".join(f'{{ name = "many/lines/part-{i:03d}" }}' for i in range(COUNT))
    shards = "".join(
        f'\n[[shards.shards]]\nid = "count-{i:03d}"\n'
        f'sources = [{{ journal = "many/lines/part-{i:03d}" }}]\n'
        for i in range(COUNT)
    )
    return (
        '[application]\nmodule = "json:JSONDecoder"\nname = "many"\n'
        f'[etcd]\nendpoints = ["{etcd_endpoint}"]\nprefix = "{prefix}"\n'
        '[broker]\nendpoint = "http://127.0.0.1:1"\n'
        '[journals]\nname = "many/lines/"\nreplication = 1\n'
        'labels = [{ name = "content-type", value = "application/x-ndjson" }]\n'
        f"children = [{children}]\n"
        '[shards.common]\nmax_txn_duration = "1s"\ndisable = true\n' + shards
    )


async def test_three_hundred_declared_journals_and_shards_are_created(
    island: None, tmp_path: Path, etcd_endpoint: str
) -> None:
    prefix = f"/test-{uuid.uuid4().hex[:12]}/consumers/many"
    path = tmp_path / "config.toml"
    path.write_text(config_text(prefix, etcd_endpoint))
    cfg = load_config(path, env={})
    assert len(cfg.declared_shards()) == COUNT
    journals = LocalJournalClient(JournalServerCore(MemoryStorage()))
    async with GrpcEtcd.open(etcd_endpoint) as etcd:
        # What serve would have done before: one transaction of them all.
        with pytest.raises(InvalidRequest, match="too many operations in txn request"):
            await apply_shard_specs(
                etcd,
                prefix,
                [pc.ApplyRequestChange(upsert=s) for s in cfg.declared_shards()],
            )
        await create_declared(cfg, etcd, journals, embedded=False)
        items = await etcd.range(prefix + "/items/", prefix=True, keys_only=True)
        assert items.count == COUNT
        # Declared again (a restart): nothing to change, nothing fails.
        await create_declared(cfg, etcd, journals, embedded=False)
    assert len(await list_journals(journals)) == COUNT


def hints(log: str) -> FsmHints:
    return FsmHints(
        log=log,
        live_nodes=[
            FnodeSegments(
                fnode=1,
                segments=[
                    Segment(
                        author=0x1234,
                        first_seq_no=1,
                        first_offset=0,
                        first_checksum=1,
                        last_seq_no=1,
                        last_offset=10,
                    )
                ],
            )
        ],
    )


def test_batches_count_the_hints_an_upsert_writes() -> None:
    """An upsert with primary hints is two etcd operations: a batch of them
    holds 64, with the 129th plain change starting the next batch."""
    plain = [pc.ApplyRequestChange(upsert=pc.ShardSpec(id=f"s-{i:03d}")) for i in range(129)]
    with_hints = [
        pc.ApplyRequestChange(upsert=pc.ShardSpec(id=f"h-{i:03d}"), primary_hints=hints("l/x"))
        for i in range(65)
    ]
    assert [len(b) for b in batches(plain)] == [128, 1]
    assert [len(b) for b in batches(with_hints)] == [64, 1]
    assert [len(b) for b in batches(with_hints[:1] + plain)] == [127, 3]


async def test_batched_apply_stops_at_a_conflicting_batch(island: None, etcd_endpoint: str) -> None:
    """Batches apply in order; a stale revision fails its own batch and
    leaves the earlier ones applied (the documented cost of batching)."""
    root = f"/test-{uuid.uuid4().hex[:12]}/consumers/b"

    def upsert(i: int, expect: int = 0) -> pc.ApplyRequestChange:
        return pc.ApplyRequestChange(
            upsert=pc.ShardSpec(
                id=f"count-{i:03d}",
                sources=[pc.ShardSpecSource(journal="many/lines")],
                max_txn_duration=datetime.timedelta(seconds=1),
            ),
            expect_mod_revision=expect,
        )

    async with GrpcEtcd.open(etcd_endpoint) as etcd:
        changes = [upsert(i) for i in range(200)]
        changes[150] = upsert(150, expect=12345)  # no such revision
        with pytest.raises(ApplyConflict):
            await apply_in_batches(etcd, root, changes)
        items = await etcd.range(root + "/items/", prefix=True, keys_only=True)
        assert items.count == 128
