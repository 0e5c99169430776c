"""The consumer runtime: Gazette's `consumer` package on Trio.

An `Application` is run by a member of a consumer group over the shards
assigned to it. Each shard lives in its own nursery, tied to its assignment;
it restores its store's checkpoint, reads its source journals read-committed
from the checkpoint's offsets, and runs pipelined transactions whose effects
(store commit, published messages, acknowledgements) are ordered by
`OpFuture` barriers.

Modules: `contracts` (Application, BaseApplication, Store, Shard),
`aggregate` (Aggregation, the short form), `scratch` (PerTransaction),
`transaction` (the pure transaction state machine), `driver` (runs
transactions on Trio), `intake` (read-uncommitted to committed), `shard` (a
shard's lifetime), `service` (the member's shards, and the `Resolver`),
`member` (a member: allocator session, service, Shard API), `shard_api` (the
Shard gRPC service), `shard_spec`, `stores/` (in-memory, JSON file, SQLite,
SQL).
"""
