"""Page views: per-user page-view counts, with a JSON query route.

Events `{"user": "ann", "page": "/home"}` are published to the journals
labelled `app.gazette.dev/message-type=PageView` (`gazette-trio publish -l
... -k user` maps each user to one of them), each read by one shard. The
shard counts views per user in an SQLiteStore recorded into its recovery
log, exactly once through crashes, and publishes each user's new total to
`examples/page-views/totals`. `GET /query/views?user=ann` on any member's
HTTP port answers from the primary of the shard owning the user.

Written against the public API alone (`from gazette_trio import ...`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

from gazette_trio import (
    Aggregation,
    JSONMessage,
    QueryParams,
    QueryShards,
    Recorder,
    Shard,
    SQLiteStore,
    fixed_mapping,
    query,
)

EVENTS = "app.gazette.dev/message-type=PageView"


def owner(shards: QueryShards, params: QueryParams) -> Awaitable[str]:
    """The shard reading the user's journal, mapped as the publisher maps."""
    return shards.owning(EVENTS, params["user"])


class PageViews(Aggregation[JSONMessage, int]):
    message_type = JSONMessage
    output = fixed_mapping("examples/page-views/totals", "application/x-ndjson")

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> SQLiteStore:
        return await SQLiteStore.open(recorder)

    def keys(self, event: JSONMessage) -> Iterable[str]:
        user = event.get("user")
        if not isinstance(user, str) or not isinstance(event.get("page"), str):
            raise ValueError(f'expected {{"user": <string>, "page": <string>}}, got {event!r}')
        return (user,)

    def reduce(self, views: int | None, event: JSONMessage) -> int:
        return (views or 0) + 1

    def derive(self, user: str, views: int) -> JSONMessage:
        return JSONMessage(user=user, views=views)

    @query("views", shard=owner)
    async def views(self, shard: Shard, store: SQLiteStore, params: QueryParams) -> object:
        return {"user": params["user"], "views": await self.value(store, params["user"]) or 0}
