"""What a user touches around a running member: config, operator CLI, observability.

- `config`: the `config.toml` a member is started from, validated into typed
  settings (`Config`), with environment overrides and `ConfigError`s that name
  the key, the value and what was expected;
- `durations`, `labels`: Gazette's duration strings and label selectors;
- `specspace`: gazctl's shardspace/journalspace YAML, with common settings
  factored out, to and from `ShardSpec`/`JournalSpec`;
- `shards_cli`: the `gazette-trio shards …` commands (list, apply, edit,
  unassign, prune) against any member's Shard API;
- `metrics`, `logs`, `status`, `http`: Prometheus metrics, structured logs,
  the `StatusSource` protocol the runtime implements, and the small HTTP
  server that serves `/metrics`, `/status` and `/status.json`.

The consumer runtime and `gazette-trio serve` are built from these pieces;
this package does not run shards itself.
"""
