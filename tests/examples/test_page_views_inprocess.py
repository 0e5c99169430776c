"""page_views's query route in an in-process group (`gazette_trio.testing`).

`Cluster.query` asks a member as `GET /query/<route>` would: the route's
shard is resolved, the query forwarded to the primary when that is another
member (the same forwarding as over gRPC, with the resolution's header
checked at the primary), and answered there; a member crash moves the
shards and the answers follow, counts intact.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import gazette_trio
from gazette_trio.message import Partitions, rendezvous_mapping
from gazette_trio.testing.cluster import Cluster, open_config_cluster

from .processes import REPO

CONFIG = REPO / "examples" / "page_views" / "config.toml"
SELECTOR = "app.gazette.dev/message-type=PageView"
EVENTS = [{"user": f"user-{i % 9}", "page": f"/p{i}"} for i in range(90)]


async def publish(cluster: Cluster, events: list[dict[str, str]]) -> None:
    """Events mapped by user, as `gazette-trio publish -k user` maps them."""
    partitions = Partitions(cluster.journals, SELECTOR)
    await partitions.refresh()
    mapping = rendezvous_mapping(partitions, key=lambda e: e["user"])
    async with cluster.publisher() as publisher:
        for event in events:
            publisher.publish_committed(mapping, event)


async def read_through_all(cluster: Cluster) -> None:
    heads = await cluster.write_heads([f"examples/page-views/events/part-00{i}" for i in range(2)])
    for i in range(2):
        journal = f"examples/page-views/events/part-00{i}"
        await cluster.wait_read_through(f"views-00{i}", {journal: heads[journal]})


async def test_queries_are_answered_by_the_owning_primary_whichever_member_is_asked(
    tmp_path: Path,
) -> None:
    async with open_config_cluster(CONFIG, data_dir=tmp_path) as cluster:
        await cluster.add_member("alpha")
        await cluster.add_member("beta")
        await cluster.wait_for_primary("views-000")
        await cluster.wait_for_primary("views-001")
        await publish(cluster, EVENTS)
        await read_through_all(cluster)
        expected = collections.Counter(e["user"] for e in EVENTS)
        owners = {s: cluster.primary_of(s)[0] for s in ("views-000", "views-001")}  # type: ignore[index]
        assert set(owners.values()) == {"alpha", "beta"}, "each member should be one's primary"

        for asked in ("alpha", "beta"):
            for user, views in expected.items():
                status, answer = await cluster.query("views", {"user": user}, member=asked)
                assert status == 200, answer
                assert answer["result"] == {"user": user, "views": views}
                assert answer["member"] == f"local/{owners[answer['shard']]}"
        assert await cluster.query("views", {}) == (400, {"error": "missing parameter 'user'"})

        await cluster.crash("alpha")
        await cluster.wait_for_primary("views-000")
        await cluster.wait_for_primary("views-001")
        for user, views in expected.items():
            status, answer = await cluster.query("views", {"user": user}, member="beta")
            assert (status, answer["result"], answer["member"]) == (
                200,
                {"user": user, "views": views},
                "local/beta",
            )


def test_the_example_is_at_most_60_lines_against_the_public_api_alone() -> None:
    source = (REPO / "examples" / "page_views" / "page_views.py").read_text()
    assert len(source.splitlines()) <= 60
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            if node.module == "gazette_trio":
                assert {a.name for a in node.names} <= set(gazette_trio.__all__)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert {m for m in imported if m.startswith("gazette_trio")} == {"gazette_trio"}
