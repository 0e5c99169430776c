"""What a member tells about recovery-log playback and its embedded broker.

A member restarted after a SIGKILL plays its shard's recovery log back
before it serves: its log says when playback starts, how many bytes it read
and how long it took, and only then that the shard serves as primary; its
/metrics count the playback's bytes and time, and the embedded journal
server's appends, bytes, fragments, reads and write heads.
"""

from __future__ import annotations

import json
import re
import signal
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.serve_member import ServeMember, append, member, wait_for_counts

__all__ = ["member"]  # the fixture, imported for pytest


def scrape(m: ServeMember) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{m.http}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_playback_is_logged_and_measured_and_the_shard_serves_only_after_it(
    member: ServeMember,
) -> None:
    member.start()
    texts = [f"red green {i % 5}" for i in range(40)]
    append(member, texts)
    wait_for_counts(member, {"red": 40, "green": 40, **{str(i): 8 for i in range(5)}})
    assert member.proc is not None
    member.proc.send_signal(signal.SIGKILL)
    member.wait(10)
    before = len(member.logs())

    member.start()
    logs = member.logs()[before:]
    started = logs.index("shard count-000: playing back recovery log ex/recovery/count-000")
    played = re.search(
        r"shard count-000: played back recovery log ex/recovery/count-000: "
        r"(\d+) bytes in ([\d.]+) s",
        logs,
    )
    assert played is not None, logs
    serving = logs.index("shard count-000: serving as primary")
    assert started < played.start() < serving, logs
    played_bytes = int(played.group(1))
    assert played_bytes > 0  # the store's files of the first run are in the log

    # One more line, so that read progress is reported after the restart.
    append(member, ["red"])
    wait_for_counts(member, {"red": 41, "green": 40, **{str(i): 8 for i in range(5)}})
    texts.append("red")
    metrics = scrape(member)
    shard = (("shard", "count-000"),)
    assert metrics[("gazette_shard_playback_bytes_total", shard)] == played_bytes
    assert ("gazette_shard_playback_seconds", shard) in metrics
    assert metrics[("gazette_shard_playback_active", shard)] == 0

    # The embedded journal server: every line appended is in ex/lines.
    lines_bytes = sum(len(json.dumps({"text": t}) + "\n") for t in texts)
    assert metrics[("gazette_write_head", (("journal", "ex/lines"),))] == lines_bytes
    assert metrics[("gazette_spool_commits_total", ())] >= 1
    assert metrics[("gazette_journal_server_reads_total", ())] >= 1
    assert metrics[("gazette_journal_server_read_bytes_total", ())] >= played_bytes
    # Counted since this process started: the recovery log's appends at least.
    assert metrics[("gazette_spool_commit_bytes_total", ())] > 0
    assert ("gazette_spool_completed_total", ()) in metrics

    # Read progress carries its unit; Gazette's unit-less name stays beside it.
    source = (("journal", "ex/lines"), ("shard", "count-000"))
    assert metrics[("gazette_shard_read_head_bytes", source)] == lines_bytes
    assert metrics[("gazette_shard_read_head", source)] == lines_bytes
    member.signal(signal.SIGINT)
    assert member.wait(30) == 0, member.logs()
