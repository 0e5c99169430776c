"""Query routes (`consumer.queries`): declaration, resolution and answers.

In an in-process group (`gazette_trio.testing`) built from
examples/page_views/config.toml, with an application declaring routes that
misbehave in each way a handler or resolver can: every answer is JSON
with a status saying whose fault it was, naming the route and the error.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from gazette_trio import (
    Aggregation,
    JSONMessage,
    QueryError,
    QueryParams,
    QueryShards,
    Shard,
    Store,
    query,
)
from gazette_trio.testing.cluster import open_config_cluster

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "page_views" / "config.toml"


def broken_resolver(shards: QueryShards, params: QueryParams) -> str:
    raise ValueError("resolver bug")


class Routes(Aggregation[JSONMessage, int]):
    message_type = JSONMessage

    def keys(self, event: JSONMessage) -> Iterable[str]:
        return (str(event["user"]),)

    def reduce(self, views: int | None, event: JSONMessage) -> int:
        return (views or 0) + 1

    @query("shard-id")
    async def shard_id(self, shard: Shard, store: Store, params: QueryParams) -> object:
        return shard.id

    @query("fails")
    async def fails(self, shard: Shard, store: Store, params: QueryParams) -> object:
        raise RuntimeError("handler bug")

    @query("refuses")
    async def refuses(self, shard: Shard, store: Store, params: QueryParams) -> object:
        raise QueryError(422, "not today")

    @query("not-json")
    async def not_json(self, shard: Shard, store: Store, params: QueryParams) -> object:
        return {1, 2}

    @query("unresolved", shard=broken_resolver)
    async def unresolved(self, shard: Shard, store: Store, params: QueryParams) -> object:
        return None

    @query("reader", shard=lambda shards, params: shards.reading(params["journal"]))
    async def reader(self, shard: Shard, store: Store, params: QueryParams) -> object:
        return shard.id


async def ask(tmp_path: Path, *queries: tuple[str, dict[str, Any]]) -> list[tuple[int, Any]]:
    async with open_config_cluster(CONFIG, data_dir=tmp_path, app_factory=Routes) as cluster:
        await cluster.add_member("solo")
        await cluster.wait_for_primary("views-000")
        await cluster.wait_for_primary("views-001")
        return [await cluster.query(route, params) for route, params in queries]


async def test_each_kind_of_failure_is_a_json_answer_naming_it(tmp_path: Path) -> None:
    answers = await ask(
        tmp_path,
        ("shard-id", {"shard": "views-001"}),
        ("shard-id", {}),
        ("shard-id", {"shard": "views-404"}),
        ("fails", {"shard": "views-000"}),
        ("refuses", {"shard": "views-000"}),
        ("not-json", {"shard": "views-000"}),
        ("unresolved", {}),
        ("reader", {"journal": "examples/page-views/events/part-001"}),
        ("reader", {"journal": "examples/page-views/totals"}),
        ("nothing", {}),
    )
    assert answers == [
        (200, {"shard": "views-001", "member": "local/solo", "result": "views-001"}),
        (400, {"error": "missing parameter 'shard' (route 'shard-id' names no shard)"}),
        (404, {"error": "no shard views-404"}),
        (500, {"error": "query 'fails' failed: RuntimeError: handler bug"}),
        (422, {"error": "not today"}),
        (
            500,
            {
                "error": "query 'not-json' answered what JSON cannot hold: "
                "Object of type set is not JSON serializable"
            },
        ),
        (500, {"error": "finding the shard of query 'unresolved': ValueError: resolver bug"}),
        (200, {"shard": "views-001", "member": "local/solo", "result": "views-001"}),
        (404, {"error": "no shard reads journal examples/page-views/totals"}),
        (
            404,
            {
                "error": "no query route 'nothing' (routes: fails, not-json, reader, "
                "refuses, shard-id, unresolved)"
            },
        ),
    ]


@pytest.mark.parametrize("name", ["", "a/b", " padded"])
def test_a_route_name_must_be_one_path_segment(name: str) -> None:
    with pytest.raises(ValueError, match="query route"):
        query(name)
