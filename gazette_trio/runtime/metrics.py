"""The member's Prometheus metrics, named as Gazette names them.

Every metric a member exports is defined here, on one registry (`REGISTRY`,
which also carries the process and Python GC collectors), so that `/metrics`
shows all of them and Gazette dashboards keep working:

| metric | type | labels | meaning |
|---|---|---|---|
| `gazette_shard_transactions_total` | counter | shard | consumer transactions committed |
| `gazette_shard_read_messages_total` | counter | shard | messages consumed by committed transactions |
| `gazette_shard_read_bytes_total` | counter | shard | bytes of those messages |
| `gazette_shard_read_head_bytes` | gauge | shard, journal | next offset (in bytes) the shard will read |
| `gazette_shard_read_head` | gauge | shard, journal | the same, under Gazette's name (deprecated: no unit) |
| `gazette_shard_read_lag_bytes` | gauge | shard, journal | write head minus read-through offset |
| `gazette_shard_commit_seconds` | histogram | shard | from starting a commit to its durable completion |
| `gazette_shard_phase_seconds_total` | counter | shard, phase | time spent per transaction phase |
| `gazette_shard_up` | gauge | shard, status | 1 for this member's replica status of the shard |
| `gazette_shard_failures_total` | counter | shard | times a replica of the shard on this member FAILED |
| `gazette_shard_playback_bytes_total` | counter | shard | recovery-log bytes read by playback (backfill and tailing) |
| `gazette_shard_playback_seconds` | gauge | shard | how long the last playback took to reach the log's write head |
| `gazette_shard_playback_active` | gauge | shard | 1 while the replica plays back and has not reached the write head |

and, when the member embeds the journal server, the server's running
totals (`JournalServerCollector`, read at each scrape), named as Gazette's
brokers name theirs where they have one:

| metric | type | labels | meaning |
|---|---|---|---|
| `gazette_spool_commits_total` | counter | | appends that committed content |
| `gazette_spool_commit_bytes_total` | counter | | bytes they committed |
| `gazette_spool_completed_total` | counter | | spools rolled into fragments |
| `gazette_journal_server_reads_total` | counter | | reads served |
| `gazette_journal_server_read_bytes_total` | counter | | content bytes sent to readers |
| `gazette_write_head` | gauge | journal | next offset to be written of each journal |

The runtime updates them through `ShardMetrics`, one per shard replica on
this member: once per transaction (not per message: count messages and bytes
in the transaction and report them when it commits), whenever read progress
or a write head is known, and on status changes. `ShardMetrics` also keeps
the recent transaction and message rates the status page shows, computed
from times the caller passes in (so it reads no clock and tests can drive it).
`close()` removes the shard's series when the replica leaves the member.

This module does not serve the metrics (see `http`), and knows nothing about
how shards run.

`gazette_shard_read_head` was renamed `gazette_shard_read_head_bytes`
(Prometheus names carry their unit); the old name is still exported, with
the same values, for Gazette's dashboards, and will be dropped later.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..protocol import consumer as pc

if TYPE_CHECKING:
    from ..broker.server import JournalServerCore

__all__ = [
    "COMMIT_SECONDS",
    "PHASE_SECONDS",
    "PLAYBACK_ACTIVE",
    "PLAYBACK_BYTES",
    "PLAYBACK_SECONDS",
    "READ_BYTES",
    "READ_HEAD",
    "READ_HEAD_GAZETTE",
    "READ_LAG",
    "READ_MESSAGES",
    "REGISTRY",
    "SHARD_FAILURES",
    "SHARD_UP",
    "TRANSACTIONS",
    "JournalServerCollector",
    "Rate",
    "ShardMetrics",
]

# Gazette exports no `_created` series; neither do we (this is process-wide).
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)
prometheus_client.ProcessCollector(registry=REGISTRY)
prometheus_client.PlatformCollector(registry=REGISTRY)
prometheus_client.GCCollector(registry=REGISTRY)

TRANSACTIONS = Counter(
    "gazette_shard_transactions_total",
    "Total number of consumer transactions.",
    ["shard"],
    registry=REGISTRY,
)
READ_MESSAGES = Counter(
    "gazette_shard_read_messages_total",
    "Total number of messages processed by completed consumer transactions.",
    ["shard"],
    registry=REGISTRY,
)
READ_BYTES = Counter(
    "gazette_shard_read_bytes_total",
    "Total byte-length of messages processed by completed consumer transactions.",
    ["shard"],
    registry=REGISTRY,
)
READ_HEAD = Gauge(
    "gazette_shard_read_head_bytes",
    "Current read head of the consumer (i.e., next journal byte offset to be read).",
    ["shard", "journal"],
    registry=REGISTRY,
)
READ_HEAD_GAZETTE = Gauge(
    "gazette_shard_read_head",
    "Deprecated: gazette_shard_read_head_bytes under Gazette's name, for its dashboards.",
    ["shard", "journal"],
    registry=REGISTRY,
)
READ_LAG = Gauge(
    "gazette_shard_read_lag_bytes",
    "Bytes of the source journal not yet read by the shard (write head - read through).",
    ["shard", "journal"],
    registry=REGISTRY,
)
COMMIT_SECONDS = Histogram(
    "gazette_shard_commit_seconds",
    "Latency from starting a transaction's commit until it is durable.",
    ["shard"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
PHASE_SECONDS = Counter(
    "gazette_shard_phase_seconds_total",
    "Cumulative number of seconds processing transactions, by phase "
    "(consume, stall, flush, commit).",
    ["shard", "phase"],
    registry=REGISTRY,
)
SHARD_UP = Gauge(
    "gazette_shard_up",
    "Indicates the processing status of a shard by this consumer.",
    ["shard", "status"],
    registry=REGISTRY,
)
SHARD_FAILURES = Counter(
    "gazette_shard_failures_total",
    "Times a replica of the shard on this member entered FAILED status.",
    ["shard"],
    registry=REGISTRY,
)

PLAYBACK_BYTES = Counter(
    "gazette_shard_playback_bytes_total",
    "Bytes of recovery log read by the shard's playback (backfill and tailing).",
    ["shard"],
    registry=REGISTRY,
)
PLAYBACK_SECONDS = Gauge(
    "gazette_shard_playback_seconds",
    "Seconds the shard's last recovery-log playback took to reach the log's write head.",
    ["shard"],
    registry=REGISTRY,
)
PLAYBACK_ACTIVE = Gauge(
    "gazette_shard_playback_active",
    "1 while the shard plays its recovery log back and has not reached its write head.",
    ["shard"],
    registry=REGISTRY,
)

PHASES = ("consume", "stall", "flush", "commit")
STATUS_NAMES = tuple(code.name for code in pc.ReplicaStatusCode)


class Rate:
    """Events per second over a sliding window, from (time, count) observations.

    Times are seconds on any monotonic clock the caller uses consistently.
    """

    def __init__(self, window: float = 30.0) -> None:
        self.window = window
        self._events: deque[tuple[float, float]] = deque()
        self._first: float | None = None

    def observe(self, now: float, count: float = 1.0) -> None:
        if self._first is None:
            self._first = now
        self._events.append((now, count))
        self._trim(now)

    def per_second(self, now: float) -> float:
        """The rate over the window (or since the first observation, if more recent)."""
        self._trim(now)
        if self._first is None:
            return 0.0
        span = min(self.window, now - self._first)
        if span <= 0:
            return 0.0
        return sum(count for _, count in self._events) / span

    def _trim(self, now: float) -> None:
        horizon = now - self.window
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()


class ShardMetrics:
    """The metrics of one shard replica on this member.

    Create it when the replica starts and `close()` it when the replica
    leaves this member. Methods are cheap (bound label children); call them
    per transaction or per progress update, never per message.
    """

    def __init__(self, shard: str, *, rate_window: float = 30.0) -> None:
        self.shard = shard
        self._transactions = TRANSACTIONS.labels(shard)
        self._messages = READ_MESSAGES.labels(shard)
        self._bytes = READ_BYTES.labels(shard)
        self._commit = COMMIT_SECONDS.labels(shard)
        self._failures = SHARD_FAILURES.labels(shard)
        self._phases = {phase: PHASE_SECONDS.labels(shard, phase) for phase in PHASES}
        self._journals: set[str] = set()
        self._playback_bytes = 0
        self.playback_seconds: float | None = None
        self.txn_rate = Rate(rate_window)
        self.message_rate = Rate(rate_window)
        self.status: pc.ReplicaStatusCode | None = None
        self.read_through: dict[str, int] = {}
        self.write_heads: dict[str, int] = {}
        self.set_status(pc.ReplicaStatusCode.IDLE)

    def transaction_committed(
        self, *, now: float, messages: int, bytes_read: int, commit_seconds: float
    ) -> None:
        """A transaction's commit became durable: count it and its messages."""
        self._transactions.inc()
        self._messages.inc(messages)
        self._bytes.inc(bytes_read)
        self._commit.observe(commit_seconds)
        self.txn_rate.observe(now, 1)
        self.message_rate.observe(now, messages)

    def phase_time(self, phase: str, seconds: float) -> None:
        """Add time spent in a transaction phase: consume, stall, flush or commit."""
        self._phases[phase].inc(seconds)

    def progress(self, journal: str, *, read_through: int, write_head: int | None = None) -> None:
        """The shard has read `journal` through `read_through`; `write_head` if known."""
        self._journals.add(journal)
        self.read_through[journal] = read_through
        READ_HEAD.labels(self.shard, journal).set(read_through)
        READ_HEAD_GAZETTE.labels(self.shard, journal).set(read_through)
        if write_head is not None:
            self.write_heads[journal] = write_head
        head = self.write_heads.get(journal)
        if head is not None:
            READ_LAG.labels(self.shard, journal).set(max(0, head - read_through))

    def playback_started(self) -> None:
        """Recovery-log playback began."""
        PLAYBACK_ACTIVE.labels(self.shard).set(1)

    def playback_progress(self, bytes_read: int) -> None:
        """Playback has read `bytes_read` bytes of log in all (it only grows)."""
        if bytes_read > self._playback_bytes:
            PLAYBACK_BYTES.labels(self.shard).inc(bytes_read - self._playback_bytes)
            self._playback_bytes = bytes_read

    def playback_caught_up(self, bytes_read: int, seconds: float) -> None:
        """Playback reached the log's write head after `seconds`."""
        self.playback_progress(bytes_read)
        self.playback_seconds = seconds
        PLAYBACK_SECONDS.labels(self.shard).set(seconds)
        PLAYBACK_ACTIVE.labels(self.shard).set(0)

    @property
    def playback_bytes(self) -> int:
        return self._playback_bytes

    def lag(self, journal: str) -> int | None:
        """Bytes of `journal` not yet read, if its write head is known."""
        head = self.write_heads.get(journal)
        through = self.read_through.get(journal)
        if head is None or through is None:
            return None
        return max(0, head - through)

    def set_status(self, code: pc.ReplicaStatusCode) -> None:
        """Record the replica's status: `gazette_shard_up{status=CODE}` is 1, others absent."""
        if code == self.status:
            return
        if code == pc.ReplicaStatusCode.FAILED:
            self._failures.inc()
        if self.status is not None:
            SHARD_UP.remove(self.shard, self.status.name)
        SHARD_UP.labels(self.shard, code.name).set(1)
        self.status = code

    def close(self) -> None:
        """Remove every series of this shard (the replica left this member)."""
        for metric in (
            TRANSACTIONS,
            READ_MESSAGES,
            READ_BYTES,
            COMMIT_SECONDS,
            SHARD_FAILURES,
            PLAYBACK_BYTES,
            PLAYBACK_SECONDS,
            PLAYBACK_ACTIVE,
        ):
            _remove(metric, self.shard)
        for phase in PHASES:
            _remove(PHASE_SECONDS, self.shard, phase)
        for journal in self._journals:
            _remove(READ_HEAD, self.shard, journal)
            _remove(READ_HEAD_GAZETTE, self.shard, journal)
            _remove(READ_LAG, self.shard, journal)
        if self.status is not None:
            _remove(SHARD_UP, self.shard, self.status.name)
            self.status = None


class JournalServerCollector(Collector):
    """The embedded journal server's totals, read from `core.stats` and its
    write heads at each scrape (the server's hot paths only add to ints).

    Register it on `REGISTRY` while the server runs, and unregister it after."""

    def __init__(self, core: JournalServerCore) -> None:
        self.core = core

    def describe(self) -> Iterable[Metric]:
        return []  # unchecked: the series are produced at collect time

    def collect(self) -> Iterable[Metric]:
        stats = self.core.stats
        for name, text, value in (
            ("gazette_spool_commits", "Appends that committed content.", stats.appends),
            ("gazette_spool_commit_bytes", "Bytes committed by appends.", stats.append_bytes),
            ("gazette_spool_completed", "Spools rolled into fragments.", stats.fragments),
            ("gazette_journal_server_reads", "Reads served.", stats.reads),
            (
                "gazette_journal_server_read_bytes",
                "Content bytes sent to readers.",
                stats.read_bytes,
            ),
        ):
            yield CounterMetricFamily(name, text, value=value)
        heads = GaugeMetricFamily(
            "gazette_write_head",
            "Current write head of the journal (i.e., next byte offset to be written).",
            labels=["journal"],
        )
        for journal in self.core.journal_names():
            heads.add_metric([journal], self.core.write_head(journal))
        yield heads


def _remove(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass  # never observed: nothing to remove
