"""The querying snippet of docs/consumer.md ("Queries") runs as written.

The snippet, copied verbatim into an application module, is served by a
real `gazette-trio serve` from a config declaring the `topic=clicks`
journals it queries; clicks published the way docs/messages.md publishes
them (`open_publisher`, `selector="topic=clicks"`, keyed by user) are
counted, and `/query/clicks?user=...` answers each user's count, as the
docs' `curl` lines show.
"""

from __future__ import annotations

import collections
import json
import time
import urllib.request
from pathlib import Path

import trio

from gazette_trio.client import open_publisher

from .processes import GAZETTE_TRIO, REPO, SERVING, MemberPorts, ProcessGroup, member_env

CONFIG = """\
data_dir = "data"

[application]
module = "clicks_app:Clicks"

[journals]
name = "docs/clicks/"
replication = 1
labels = [
  { name = "content-type", value = "application/x-ndjson" },
  { name = "topic", value = "clicks" },
]
children = [{ name = "docs/clicks/part-000" }, { name = "docs/clicks/part-001" }]

[shards.common]
max_txn_duration = "1s"

[[shards.shards]]
id = "clicks-000"
sources = [{ journal = "docs/clicks/part-000" }]

[[shards.shards]]
id = "clicks-001"
sources = [{ journal = "docs/clicks/part-001" }]
"""


def docs_snippet(title: str) -> str:
    text = (REPO / "docs" / "consumer.md").read_text()
    section = text[text.index(title) :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def answer(http: int, user: str) -> dict[str, object]:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{http}/query/clicks?user={user}", timeout=10
    ) as r:
        doc: dict[str, object] = json.load(r)
    return doc


def test_the_docs_querying_snippet_runs_as_written(group: ProcessGroup, tmp_path: Path) -> None:
    (tmp_path / "clicks_app.py").write_text(docs_snippet("## Queries: JSON routes"))
    (tmp_path / "config.toml").write_text(CONFIG)
    ports = MemberPorts()
    member = group.start(
        "member",
        [GAZETTE_TRIO, "serve", str(tmp_path / "config.toml")],
        member_env(ports, tmp_path / "data"),
    )
    member.wait_for_log(SERVING)

    # Enough users that a query mapping them unlike the publisher would
    # ask the wrong shard for some.
    clicks = [{"user": f"user-{i % 7 * i % 16}", "page": f"/{i}"} for i in range(60)]

    async def publish() -> None:
        async with open_publisher(
            ports.endpoint, selector="topic=clicks", key=lambda c: c["user"]
        ) as publisher:
            for click in clicks:
                await publisher.publish(click)

    trio.run(publish)
    expected = collections.Counter(c["user"] for c in clicks)
    deadline = time.monotonic() + 15
    while True:
        answers = {user: answer(ports.http, user) for user in expected}
        if all(a["result"] == {"user": u, "clicks": expected[u]} for u, a in answers.items()):
            break
        assert time.monotonic() < deadline, answers
        time.sleep(0.2)
    # Each user is answered by the shard owning its partition.
    assert {a["shard"] for a in answers.values()} == {"clicks-000", "clicks-001"}
    assert {a["member"] for a in answers.values()} == {"local/member-one"}
    assert member.terminate() == 0
