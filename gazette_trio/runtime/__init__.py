"""What a user touches around a running member: config, operator CLI, observability.

- `config`: the `config.toml` a member is started from, validated into typed
  settings (`Config`), with environment overrides and `ConfigError`s that name
  the key, the value and what was expected;
- `shardspace`: gazctl's shardspace YAML (shards with common settings
  factored out) to and from `ShardSpec`s (journals have
  `gazette_trio.broker.journalspace`);
- `shard_client`, `shards_cli`: a typed Shard API client and the
  `gazette-trio shards …` commands (list, apply, edit, unassign, prune);
- `metrics`, `logs`, `status`, `http`: Prometheus metrics, structured logs,
  the `StatusSource` protocol the runtime implements, and the small HTTP
  server of `/metrics`, `/status` and `/status.json`;
- `startup`: failures to start (a port in use, an unusable data directory,
  etcd or a broker out of reach) as one line naming the key, and exit 2.

The consumer runtime and `gazette-trio serve` are built from these pieces;
this package does not run shards itself.
"""
