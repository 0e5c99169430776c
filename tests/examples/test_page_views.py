"""The page-views example and JSON query routes, with real `gazette-trio serve` processes.

What is promised (examples/page_views/README.md, docs/consumer.md "Queries"):

- per-user view counts stay exact when the member is SIGKILLed while events
  stream in (a publisher of 30,000 events still running, the counts showing
  part of them), and restarted: the query route answers every user's count;
- `GET /query/views?user=...` asked of either of two members is answered by
  the primary of the user's shard, forwarded there when it is the other
  member; `read_through=<journal>:<offset>` waits until the shard has read
  through the offset, so a count is current without polling;
- an unknown route is 404 naming the routes, a missing parameter or a body
  that is not a JSON object is 400 naming the problem.
"""

from __future__ import annotations

import collections
import json
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from .processes import (
    GAZETTE_TRIO,
    SERVING,
    MemberPorts,
    ProcessGroup,
    broker_args,
    clean_env,
    member_env,
    serve_args,
    wait_port,
)

SELECTOR = "app.gazette.dev/message-type=PageView"


def events(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [{"user": f"user-{rng.randrange(40):02d}", "page": f"/p{i}"} for i in range(n)]


def publish(group: ProcessGroup, broker: str, batch: list[dict[str, str]], path: Path) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in batch))
    code, out = group.run(
        "publish",
        [GAZETTE_TRIO, "publish", "-e", broker, "-l", SELECTOR, "-k", "user", "-q", str(path)],
        clean_env(),
    )
    assert code == 0, out


def ask(http: int, route: str, params: dict[str, str] | None = None, body: bytes | None = None):
    """(status, JSON answer) of a query route."""
    url = f"http://127.0.0.1:{http}/query/{route}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=70) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def views(http: int, user: str) -> tuple[int, str, str]:
    """(views, shard, answering member) of `user`."""
    status, answer = ask(http, "views", {"user": user})
    assert status == 200, answer
    assert answer["result"]["user"] == user
    return answer["result"]["views"], answer["shard"], answer["member"]


def wait_for_views(http: int, expected: dict[str, int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = {user: views(http, user)[0] for user in expected}
        if got == expected:
            return
        assert time.monotonic() < deadline, f"counts never reached {expected}: {got}"
        time.sleep(0.3)


def start_broker(group: ProcessGroup, tmp_path: Path) -> str:
    port = MemberPorts().grpc
    group.start("broker", broker_args(tmp_path / "broker", port), clean_env())
    wait_port(port)
    return f"127.0.0.1:{port}"


@pytest.mark.slow
def test_counts_stay_exact_through_a_sigkill_mid_stream_and_the_query_answers_them(
    group: ProcessGroup, tmp_path: Path
) -> None:
    broker = start_broker(group, tmp_path)
    ports = MemberPorts()
    env = member_env(ports, tmp_path / "member", broker=broker)
    member = group.start("member", serve_args("page_views"), env)
    member.wait_for_log(SERVING)

    batches = [events(3000, 0), events(30000, 1), events(3000, 2)]
    publish(group, broker, batches[0], tmp_path / "b0.jsonl")
    wait_for_views(ports.http, dict(collections.Counter(e["user"] for e in batches[0])))
    # The second batch is published while the member consumes it; once the
    # counts show some of it, the member is SIGKILLed, the publisher going on.
    path = tmp_path / "b1.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in batches[1]))
    streaming = group.start(
        "publish",
        [GAZETTE_TRIO, "publish", "-e", broker, "-l", SELECTOR, "-k", "user", "-q", str(path)],
        clean_env(),
    )
    users = sorted({e["user"] for e in batches[1]})
    deadline = time.monotonic() + 60
    while sum(views(ports.http, u)[0] for u in users) <= len(batches[0]):
        assert time.monotonic() < deadline, "the member never counted the second batch"
    member.kill()
    member = group.start("member", serve_args("page_views"), env)
    member.wait_for_log(SERVING)
    assert streaming.wait(120) == 0, streaming.tail()
    publish(group, broker, batches[2], tmp_path / "b2.jsonl")

    expected = collections.Counter(e["user"] for batch in batches for e in batch)
    wait_for_views(ports.http, dict(expected))
    assert views(ports.http, "nobody")[0] == 0
    assert member.terminate() == 0
    assert "Traceback" not in member.text(), member.tail()


def test_unknown_routes_and_bad_input_answer_clear_json_errors(
    group: ProcessGroup, tmp_path: Path
) -> None:
    ports = MemberPorts()
    member = group.start("member", serve_args("page_views"), member_env(ports, tmp_path / "member"))
    member.wait_for_log(SERVING)

    assert ask(ports.http, "visits", {"user": "ann"}) == (
        404,
        {"error": "no query route 'visits' (routes: views)"},
    )
    assert ask(ports.http, "views") == (400, {"error": "missing parameter 'user'"})
    assert ask(ports.http, "views", body=b"[1, 2]") == (
        400,
        {"error": "body: expected a JSON object, not list"},
    )
    status, answer = ask(ports.http, "views", body=b"{user")
    assert status == 400 and answer["error"].startswith("body: not JSON"), answer
    assert ask(ports.http, "views", {"user": "ann", "read_through": "no-offset"}) == (
        400,
        {"error": "parameter 'read_through': 'no-offset' (expected <journal>:<offset>)"},
    )
    status, answer = ask(
        ports.http, "views", body=json.dumps({"user": "ann", "read_through": {"j": -1}}).encode()
    )
    assert (status, answer) == (
        400,
        {"error": "read_through[j]: invalid offset -1 (expected an integer >= 0)"},
    )
    assert ask(ports.http, "views", {"user": "ann", "shard": "views-999"}) == (
        404,
        {"error": "no shard views-999"},
    )
    # A POST body is the parameters, as the query string is.
    status, answer = ask(ports.http, "views", body=b'{"user": "ann"}')
    assert status == 200 and answer["result"] == {"user": "ann", "views": 0}, answer
    assert member.terminate() == 0


def append(group: ProcessGroup, endpoint: str, journal: str, line: str) -> int:
    """Append one line with `journals append`; the end offset it printed."""
    code, out = group.run(
        "append",
        [GAZETTE_TRIO, "journals", "append", "-e", endpoint, journal, "-d", line],
        clean_env(),
    )
    assert code == 0, out
    match = re.search(r"appended \[\d+, (\d+)\)", out)
    assert match, out
    return int(match.group(1))


def primaries(http: int) -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/status.json", timeout=5) as r:
        doc: dict[str, Any] = json.load(r)
    return {
        shard["id"]: replica["suffix"]
        for shard in doc["shards"]
        for replica in shard["replicas"]
        if replica["primary"] and replica["status"] == "PRIMARY"
    }


@pytest.mark.etcd
def test_two_members_forward_queries_to_the_primary_and_read_through_offsets(
    group: ProcessGroup, tmp_path: Path, etcd_endpoint: str
) -> None:
    broker = start_broker(group, tmp_path)
    prefix = f"/gazette/consumers/page-views-{uuid.uuid4().hex[:8]}"
    ports = {"alpha": MemberPorts(), "beta": MemberPorts()}
    for name, p in ports.items():
        env = member_env(
            p, tmp_path / name, suffix=name, etcd=etcd_endpoint, etcd_prefix=prefix, broker=broker
        )
        group.start(name, serve_args("page_views"), env).wait_for_log(SERVING)
    deadline = time.monotonic() + 20
    # Both shards placed, one on each member (not only both members primary of something).
    while (
        len(owners := primaries(ports["alpha"].http)) != 2
        or set(owners.values()) != {"alpha", "beta"}
    ):
        assert time.monotonic() < deadline, f"the shards never spread: {owners}"
        time.sleep(0.2)

    batch = events(400, seed=7)
    publish(group, broker, batch, tmp_path / "events.jsonl")
    expected = dict(collections.Counter(e["user"] for e in batch))
    for asked in ("alpha", "beta"):
        wait_for_views(ports[asked].http, expected)
        answered_by = set()
        for user in expected:
            _, shard, member = views(ports[asked].http, user)
            assert member == f"local/{owners[shard]}", user
            answered_by.add(member)
        assert answered_by == {"local/alpha", "local/beta"}, "some queries must be forwarded"

    # read_through: an event appended just now is counted in the very next
    # answer, whichever member is asked, without polling.
    for asked in ("alpha", "beta"):
        status, answer = ask(ports[asked].http, "views", {"user": "zed"})
        assert status == 200, answer
        journal = {
            "views-000": "examples/page-views/events/part-000",
            "views-001": "examples/page-views/events/part-001",
        }[answer["shard"]]
        before = answer["result"]["views"]
        end = append(group, broker, journal, json.dumps({"user": "zed", "page": "/z"}) + "\n")
        status, answer = ask(
            ports[asked].http, "views", {"user": "zed", "read_through": f"{journal}:{end}"}
        )
        assert status == 200, answer
        assert answer["result"]["views"] == before + 1
