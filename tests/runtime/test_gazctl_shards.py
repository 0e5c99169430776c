"""Gazette's own `gazctl` drives a gazette-trio member's shards.

`gazctl shards list` and `shards apply` validate every response header the
way Go clients do (non-zero etcd cluster, member and raft term; a valid
route). A member with the in-process etcd serves its Shard API on loopback
(with its embedded journal server, which `apply` asks about the shards'
journals) and the upstream binary, built at the pinned version, talks to
it. Skipped
when the binary has not been built (`.cache/gazette/bin/gazctl`).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import yaml

from gazette_trio import aio
from gazette_trio.broker.server import journal_service
from gazette_trio.testing.cluster import Cluster
from tests.consumer.test_e2e import count_shards, open_word_count
from tests.services import absent

GAZCTL = Path(__file__).resolve().parents[2] / ".cache" / "gazette" / "bin" / "gazctl"


@pytest.fixture(autouse=True)
def gazctl_built() -> None:
    if not GAZCTL.exists():
        absent(f"{GAZCTL} is not built (`bash .ci/run` builds it)")


@pytest.fixture
async def member(island: None, tmp_path: Path) -> AsyncIterator[tuple[Cluster, str]]:
    async with open_word_count(tmp_path, shards=count_shards(2)) as (cluster, _):
        handle = await cluster.add_member("alpha")
        await cluster.wait_for_primary("count-000")
        assert handle.consumer is not None
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                aio.serve,
                [handle.consumer.api.grpc_service(), journal_service(cluster.core)],
                "127.0.0.1",
                0,
            )
            yield cluster, f"http://127.0.0.1:{port}"
            nursery.cancel_scope.cancel()


async def gazctl(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [str(GAZCTL), "shards", *args],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_gazctl_lists_and_reapplies_the_shards_of_a_member(
    member: tuple[Cluster, str],
) -> None:
    _, address = member
    listed = await gazctl("list", f"--consumer.address={address}", "--format=yaml")
    assert listed.returncode == 0, listed.stderr.decode()
    space = yaml.safe_load(listed.stdout)
    assert [s["id"] for s in space["shards"]] == ["count-000", "count-001"]

    # What was listed applies back unchanged: the revisions still match,
    # and gazctl accepts the Apply's header too.
    # gazctl checks the shards' journals through the broker: here the
    # member's embedded journal server, on the same port.
    applied = await gazctl(
        "apply", f"--consumer.address={address}", f"--broker.address={address}", stdin=listed.stdout
    )
    assert applied.returncode == 0, applied.stderr.decode()

    relisted = await gazctl("list", f"--consumer.address={address}", "--format=yaml")
    assert relisted.returncode == 0, relisted.stderr.decode()
    revisions = [s["revision"] for s in yaml.safe_load(relisted.stdout)["shards"]]
    assert all(r > s["revision"] for r, s in zip(revisions, space["shards"], strict=True))

    table = await gazctl("list", f"--consumer.address={address}", "--primary")
    assert table.returncode == 0, table.stderr.decode()
    assert "alpha:PRIMARY" in table.stdout.decode()
