"""Running applications in-process, for tests: `cluster.open_cluster` (like
Gazette's `consumertest`), and the deterministic simulation (`sim`)."""
