"""Prometheus metrics with Gazette's names, and structured logs with context.

Promises: `ShardMetrics` moves the shard's series exactly as the runtime
reports (per transaction, per progress update, per status change) and removes
them all when the replica leaves; rates are computed from the times given;
logs come out as text or JSON lines carrying the fields bound with
`log_context`, in the tasks started inside it too.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
import trio

from gazette_trio.protocol import consumer as pc
from gazette_trio.runtime.logs import configure_logging, log_context
from gazette_trio.runtime.metrics import REGISTRY, Rate, ShardMetrics


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_transactions_count_messages_bytes_and_commit_latency() -> None:
    shard = ShardMetrics("metrics-000")
    try:
        shard.transaction_committed(now=10.0, messages=5, bytes_read=500, commit_seconds=0.003)
        shard.transaction_committed(now=11.0, messages=7, bytes_read=300, commit_seconds=0.2)
        assert _value("gazette_shard_transactions_total", shard="metrics-000") == 2
        assert _value("gazette_shard_read_messages_total", shard="metrics-000") == 12
        assert _value("gazette_shard_read_bytes_total", shard="metrics-000") == 800
        assert _value("gazette_shard_commit_seconds_count", shard="metrics-000") == 2
        assert _value("gazette_shard_commit_seconds_bucket", shard="metrics-000", le="0.005") == 1
        assert _value("gazette_shard_commit_seconds_bucket", shard="metrics-000", le="0.25") == 2
        shard.phase_time("stall", 0.5)
        assert (
            _value("gazette_shard_phase_seconds_total", shard="metrics-000", phase="stall") == 0.5
        )
    finally:
        shard.close()


def test_read_head_and_lag_per_source_journal() -> None:
    shard = ShardMetrics("metrics-001")
    try:
        shard.progress("j/one", read_through=100)
        assert _value("gazette_shard_read_head", shard="metrics-001", journal="j/one") == 100
        assert shard.lag("j/one") is None  # the write head is not known yet
        shard.progress("j/one", read_through=100, write_head=1100)
        assert _value("gazette_shard_read_lag_bytes", shard="metrics-001", journal="j/one") == 1000
        shard.progress("j/one", read_through=600)  # the known head still applies
        assert _value("gazette_shard_read_lag_bytes", shard="metrics-001", journal="j/one") == 500
        assert shard.lag("j/one") == 500
    finally:
        shard.close()


def test_status_gauge_shows_only_the_current_status() -> None:
    shard = ShardMetrics("metrics-002")
    try:
        assert _value("gazette_shard_up", shard="metrics-002", status="IDLE") == 1
        shard.set_status(pc.ReplicaStatusCode.PRIMARY)
        assert _value("gazette_shard_up", shard="metrics-002", status="PRIMARY") == 1
        assert _value("gazette_shard_up", shard="metrics-002", status="IDLE") is None
        shard.set_status(pc.ReplicaStatusCode.FAILED)
        shard.set_status(pc.ReplicaStatusCode.FAILED)
        assert _value("gazette_shard_failures_total", shard="metrics-002") == 1
    finally:
        shard.close()


def test_close_removes_every_series_of_the_shard() -> None:
    shard = ShardMetrics("metrics-003")
    shard.transaction_committed(now=1.0, messages=1, bytes_read=1, commit_seconds=0.1)
    shard.progress("j/two", read_through=1, write_head=2)
    shard.phase_time("consume", 1.0)
    shard.close()
    text = "\n".join(f"{s.name}{s.labels}" for metric in REGISTRY.collect() for s in metric.samples)
    assert "metrics-003" not in text


def test_rates_over_a_sliding_window() -> None:
    rate = Rate(window=10.0)
    assert rate.per_second(0.0) == 0.0
    for t in range(0, 20):
        rate.observe(float(t), 2)
    assert rate.per_second(19.0) == pytest.approx(2.2)  # 11 events of 2 in [9, 19] over 10 s
    assert rate.per_second(100.0) == 0.0
    young = Rate(window=30.0)
    young.observe(0.0, 5)
    young.observe(2.0, 5)
    assert young.per_second(2.0) == 5.0  # 10 over the 2 s it has existed


def test_shard_metrics_rates() -> None:
    shard = ShardMetrics("metrics-004", rate_window=10.0)
    try:
        for t in range(5):
            shard.transaction_committed(
                now=float(t), messages=10, bytes_read=1, commit_seconds=0.01
            )
        assert shard.txn_rate.per_second(4.0) == pytest.approx(5 / 4)
        assert shard.message_rate.per_second(4.0) == pytest.approx(50 / 4)
    finally:
        shard.close()


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_json_logs_carry_context_into_child_tasks(restore_logging: object) -> None:
    """Fields bound around a nursery label the records of the tasks started in it."""
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    log = logging.getLogger("gazette_trio.test")

    async def read_journal() -> None:
        with log_context(journal="examples/lines/part-000"):
            log.info("read %d bytes", 512, extra={"offset": 1024})

    with log_context(shard="count-000"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_journal)
        log.debug("committed")
    log.warning("no context")

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[0]["msg"] == "read 512 bytes"
    assert records[0]["shard"] == "count-000"
    assert records[0]["journal"] == "examples/lines/part-000"
    assert records[0]["offset"] == 1024
    assert records[0]["level"] == "info"
    assert records[0]["logger"] == "gazette_trio.test"
    assert records[0]["time"].endswith("Z")
    assert records[1] == {**records[1], "msg": "committed", "shard": "count-000", "level": "debug"}
    assert "journal" not in records[1]
    assert "shard" not in records[2]


def test_text_logs_are_one_readable_line_with_fields(restore_logging: object) -> None:
    out = io.StringIO()
    configure_logging("info", "text", stream=out)
    configure_logging("info", "text", stream=out)  # reconfiguring does not duplicate lines
    log = logging.getLogger("gazette_trio.test")
    with log_context(shard="count-001"):
        log.info("transaction committed", extra={"messages": 12, "note": "two words"})
        log.debug("hidden below info")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("commit failed")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(
        'INFO  gazette_trio.test: transaction committed shard=count-001 messages=12 note="two words"'
    )
    assert lines[1].endswith("ERROR gazette_trio.test: commit failed shard=count-001")
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"
    assert not any("hidden" in line for line in lines)
