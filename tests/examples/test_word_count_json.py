"""word_count's JSON query route answers what its gRPC Query service does.

examples/word_count/README.md shows both: `wordcountctl query` (gRPC, from
the generated classes) and `curl .../query/count?word=...` (JSON, needing
nothing but `pip install .`). With one `gazette-trio serve` member, after
the same text is published, both give every word's count and its shard.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .processes import SERVING, MemberPorts, ProcessGroup, member_env, serve_args
from .test_word_count_serve import expected_counts, publish, query


def count(http: int, word: str) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{http}/query/count?word={word}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_the_json_count_route_answers_as_the_grpc_query_does(
    group: ProcessGroup, tmp_path: Path
) -> None:
    ports = MemberPorts()
    member = group.start("member", serve_args("word_count"), member_env(ports, tmp_path / "data"))
    member.wait_for_log(SERVING)
    publish(group, ports.endpoint, tmp_path)
    expected = expected_counts()

    deadline = time.monotonic() + 15
    while {w: count(ports.http, w)[1].get("result", {}).get("count") for w in expected} != expected:
        assert time.monotonic() < deadline, "the JSON route never reached the counts"
        time.sleep(0.2)
    grpc = query(group, ports.endpoint, sorted(expected))
    for word in expected:
        status, answer = count(ports.http, word.upper())
        assert status == 200
        assert answer == {
            "shard": grpc[word][1],
            "member": "local/member-one",
            "result": {"word": word, "count": grpc[word][0]},
        }
    assert count(ports.http, "two%20words") == (
        400,
        {"error": "parameter 'word': 'two words' is not one word (letters only)"},
    )
    assert member.terminate() == 0
