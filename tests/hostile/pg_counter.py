"""The application the outage tests run: counts `{"k": ...}` lines per key
in PostgreSQL through an SQLStore (its DSN from `[application.settings]`).
A short connect timeout makes an outage show up quickly."""

from __future__ import annotations

from gazette_trio import (
    BaseApplication,
    Envelope,
    JSONMessage,
    Publisher,
    Recorder,
    Shard,
    SQLStore,
)

TABLE_DDL = "CREATE TABLE IF NOT EXISTS hostile_counts (k TEXT PRIMARY KEY, n BIGINT NOT NULL)"


class LineCounter(BaseApplication[SQLStore, JSONMessage]):
    message_type = JSONMessage

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> SQLStore:
        return await SQLStore.postgres(self.dsn, bootstrap=[TABLE_DDL], connect_timeout=2)

    async def consume_message(
        self, shard: Shard, store: SQLStore, envelope: Envelope[JSONMessage], publisher: Publisher
    ) -> None:
        txn = await store.transaction()
        await txn.execute(
            "INSERT INTO hostile_counts (k, n) VALUES (%s, 1) "
            "ON CONFLICT (k) DO UPDATE SET n = hostile_counts.n + 1",
            (envelope.message["k"],),
        )
