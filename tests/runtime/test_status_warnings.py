"""/status tells what the operator must act on: replicas that cannot be
placed, and how far behind a failed shard stopped.

A shard wanting a hot standby in a group of one member never gets it (each
replica needs a member of its own): the page's notes say so, naming the
shard, until members are added. A shard that failed keeps showing its lag:
the source's write head less what the shard had read through when it
failed.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from typing import Any

from tests.serve_member import APP, ServeMember, append, member, wait_for_counts

__all__ = ["member"]  # the fixture, imported for pytest

FAILING_APP = APP.replace(
    '        for word in envelope.message["text"].split():',
    '        if envelope.message["text"] == "boom":\n'
    '            raise ValueError("this application cannot count a boom")\n'
    '        for word in envelope.message["text"].split():',
)


def status(m: ServeMember) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{m.http}/status.json", timeout=10) as answer:
        document: dict[str, Any] = json.loads(answer.read())
    return document


def page(m: ServeMember) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{m.http}/status", timeout=10) as answer:
        return str(answer.read().decode())


def test_a_hot_standby_that_one_member_cannot_place_is_warned_of(member: ServeMember) -> None:
    config = member.directory / "config.toml"
    config.write_text(
        config.read_text().replace(
            'recovery_log_prefix = "ex/recovery"',
            'recovery_log_prefix = "ex/recovery"\nhot_standbys = 1',
        )
    )
    member.start()
    notes = status(member)["notes"]
    warning = [n for n in notes if "count-000" in n]
    assert warning == [
        "shard count-000: 1 hot standby wanted beside the primary, but the group has 1 member "
        "with room and each replica needs its own, so 1 replica cannot be placed (start more "
        "members, or lower hot_standbys)"
    ], notes
    assert "1 hot standby wanted beside the primary" in page(member)
    member.signal(signal.SIGINT)
    assert member.wait(30) == 0


def test_a_shard_that_fails_shows_its_lag(member: ServeMember) -> None:
    (member.directory / "counter.py").write_text(FAILING_APP)
    member.start()
    assert "hot standby" not in " ".join(status(member)["notes"])  # one replica wanted: no warning
    append(member, ["one two", "two three"])
    wait_for_counts(member, {"one": 1, "two": 2, "three": 1})
    boom = json.dumps({"text": "boom"}) + "\n"
    append(member, ["boom"])

    deadline = time.monotonic() + 30
    shard: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shard = next(s for s in status(member)["shards"] if s["id"] == "count-000")
        if shard["status"] == "FAILED" and shard["lag"] is not None:
            break
        time.sleep(0.2)
    assert shard["status"] == "FAILED", shard
    assert "cannot count a boom" in " ".join(shard["errors"])
    # Everything before the boom line was read; the line itself never was.
    assert shard["lag"] == len(boom), shard
    (source,) = shard["sources"]
    assert source["write_head"] - source["read_through"] == len(boom)
    member.signal(signal.SIGINT)
    member.wait(30)
