"""The member's HTTP server: /metrics, /status.json and the /status page.

A `StatusSource` built in the test stands in for the runtime (which
implements the protocol later); the server is real (h11 on Trio, on
loopback) and so is the browser: the page is loaded in headless Chromium,
which runs its script, and the rendered DOM must show every shard of the
snapshot. A screenshot is saved under `test-artifacts/` for a human to look
at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from gazette_trio.protocol import consumer as pc
from gazette_trio.runtime.http import StatusServer
from gazette_trio.runtime.metrics import ShardMetrics
from gazette_trio.runtime.status import (
    MemberStatus,
    ReplicaStatus,
    ShardStatus,
    SourceStatus,
    StatusSnapshot,
)

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

P, S, B, F = (
    pc.ReplicaStatusCode.PRIMARY,
    pc.ReplicaStatusCode.STANDBY,
    pc.ReplicaStatusCode.BACKFILL,
    pc.ReplicaStatusCode.FAILED,
)

MEMBERS = [
    MemberStatus("us-east-1a", "member-a", "http://10.0.0.11:8080", 64, assigned=4),
    MemberStatus("us-east-1b", "member-b", "http://10.0.0.12:8080", 64, assigned=3),
    MemberStatus("us-east-1c", "member-c", "http://10.0.0.13:8080", 64, assigned=1, exiting=True),
]


def _replicas(
    *placed: tuple[int, pc.ReplicaStatusCode], errors: tuple[str, ...] = ()
) -> list[ReplicaStatus]:
    return [
        ReplicaStatus(
            MEMBERS[m].zone,
            MEMBERS[m].suffix,
            code,
            primary=i == 0,
            errors=errors if code == F else (),
        )
        for i, (m, code) in enumerate(placed)
    ]


def _snapshot() -> StatusSnapshot:
    shards = [
        ShardStatus(
            "count-000",
            _replicas((0, P), (1, S)),
            [SourceStatus("examples/word-count/lines/part-000", 1_000_000, 1_004_096)],
            txn_rate=12.5,
            message_rate=2480.0,
        ),
        ShardStatus(
            "count-001",
            _replicas((1, P), (0, S)),
            [SourceStatus("examples/word-count/lines/part-001", 52_000, 52_000)],
            txn_rate=11.9,
            message_rate=1990.0,
        ),
        ShardStatus(
            "count-002",
            _replicas((0, P), (2, B)),
            [
                SourceStatus("examples/word-count/lines/part-002", 9_000_000, 41_943_040),
                SourceStatus("examples/word-count/deltas", 10, None),
            ],
            txn_rate=3.0,
            message_rate=512.0,
        ),
        ShardStatus(
            "count-003",
            _replicas(
                (1, F), errors=("store commit: disk full (/var/lib/gazette-trio/count-003)",)
            ),
            [SourceStatus("examples/word-count/lines/part-003", 700, 9_000)],
        ),
        ShardStatus(
            "count-004", [], [SourceStatus("examples/word-count/lines/part-004")], disabled=True
        ),
    ]
    return StatusSnapshot(
        group="word-count",
        member=MEMBERS[0],
        members=MEMBERS,
        shards=shards,
        taken_at=1_714_564_800.0,
        etcd_revision=4182,
        notes=("member-c is exiting: its shards are being handed off",),
    )


@dataclass
class FakeRuntime:
    """A StatusSource whose snapshot the test sets; counts calls."""

    current: StatusSnapshot = field(default_factory=_snapshot)
    calls: int = 0
    fail: bool = False
    later: StatusSnapshot | None = None
    """If set, what every call after the first returns."""

    async def snapshot(self) -> StatusSnapshot:
        self.calls += 1
        if self.fail:
            raise RuntimeError("keyspace not loaded yet")
        if self.later is not None and self.calls > 1:
            return self.later
        return self.current


@dataclass
class Served:
    runtime: FakeRuntime
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def request(self, raw: bytes) -> bytes:
        """Send raw HTTP/1.1 bytes, return everything until the server closes."""
        stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        async with stream:
            await stream.send_all(raw)
            chunks = []
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    chunks.append(chunk)
        return b"".join(chunks)

    async def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        raw = await self.request(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        return status, headers, body


@pytest.fixture
async def served(nursery: trio.Nursery) -> AsyncIterator[Served]:
    runtime = FakeRuntime()
    port = await nursery.start(StatusServer(runtime).serve, "127.0.0.1", 0)
    yield Served(runtime, port)


async def test_status_json_is_the_snapshot(served: Served) -> None:
    status, headers, body = await served.get("/status.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    data = json.loads(body)
    assert data["group"] == "word-count"
    assert [s["id"] for s in data["shards"]] == [f"count-00{i}" for i in range(5)]
    count_002 = data["shards"][2]
    assert count_002["status"] == "PRIMARY"  # PRIMARY outranks the BACKFILL replica
    assert count_002["lag"] == 41_943_040 - 9_000_000  # the unknown-head source adds nothing
    assert count_002["sources"][1]["lag"] is None
    assert data["shards"][3]["status"] == "FAILED"
    assert data["shards"][3]["errors"] == [
        "store commit: disk full (/var/lib/gazette-trio/count-003)"
    ]
    assert data["summary"] == {
        "shards": 5,
        "members": 3,
        "by_status": {"PRIMARY": 3, "FAILED": 1, "IDLE": 1},
    }
    assert data["member"]["id"] == "us-east-1a/member-a"


async def test_metrics_are_prometheus_exposition(served: Served) -> None:
    shard = ShardMetrics("http-test-000")
    try:
        shard.transaction_committed(now=1.0, messages=7, bytes_read=700, commit_seconds=0.004)
        shard.progress("examples/lines/part-000", read_through=100, write_head=250)
        status, headers, body = await served.get("/metrics")
    finally:
        shard.close()
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=")
    text = body.decode()
    assert 'gazette_shard_transactions_total{shard="http-test-000"} 1.0' in text
    assert (
        'gazette_shard_read_lag_bytes{journal="examples/lines/part-000",shard="http-test-000"} 150.0'
        in text
    )
    assert "process_cpu_seconds_total" in text or "python_gc_objects_collected_total" in text


async def test_keep_alive_serves_several_requests_on_one_connection(served: Served) -> None:
    raw = await served.request(
        b"GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    statuses = re.findall(r"HTTP/1\.1 (\d{3}) ", raw.decode(errors="replace"))
    assert statuses == ["200", "200", "404"]
    assert served.runtime.calls == 1


async def test_errors_are_answered_not_fatal(served: Served) -> None:
    """Bad requests get 4xx, a failing StatusSource 500; the server keeps serving."""
    status, headers, _ = await served.get("/")
    assert (status, headers["location"]) == (302, "/status")
    raw = await served.request(
        b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    )
    assert raw.startswith(b"HTTP/1.1 405 ")
    raw = await served.request(b"NONSENSE\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 ")
    served.runtime.fail = True
    status, _, body = await served.get("/status.json")
    assert status == 500
    assert json.loads(body) == {"error": "RuntimeError: keyspace not loaded yet"}
    served.runtime.fail = False
    status, _, _ = await served.get("/status.json")
    assert status == 200


async def test_snapshot_text_cannot_break_out_of_the_page(served: Served) -> None:
    """Shard ids and errors are data, never markup: a hostile error stays text."""
    evil = "</script><script>document.title='owned'</script>"
    served.runtime.current = StatusSnapshot(
        group="g",
        member=MEMBERS[0],
        shards=[ShardStatus("evil-000", _replicas((0, F), errors=(evil,)))],
    )
    _, _, body = await served.get("/status")
    page = body.decode()
    assert evil not in page
    assert "\\u003c/script>" in page


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(profile)},
    )


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
async def test_status_page_renders_in_chromium(served: Served, tmp_path: Path) -> None:
    """Chromium runs the page: every shard, replica and member of the snapshot is in the DOM."""
    url = f"{served.base}/status"
    dom = await trio.to_thread.run_sync(
        lambda: _chromium("--dump-dom", url, profile=tmp_path / "dom-profile")
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for shard in served.runtime.current.shards:
        assert f'data-shard="{shard.id}"' in html
    for member in MEMBERS:
        assert f'data-member="{member.id}"' in html
    assert "store commit: disk full" in html
    assert '<span class="pill FAILED">FAILED</span>' in html
    assert "31.4 MiB" in html  # count-002's lag, rendered by the script
    assert "member-c is exiting" in html

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status_page.png"
    shot.unlink(missing_ok=True)
    started = time.monotonic()
    result = await trio.to_thread.run_sync(
        lambda: _chromium(f"--screenshot={shot}", url, profile=tmp_path / "shot-profile")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"\nstatus page screenshot: {shot} ({time.monotonic() - started:.1f}s)")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
async def test_status_page_refreshes_itself_from_status_json(
    served: Served, tmp_path: Path
) -> None:
    """After the first render the page polls /status.json and shows what changed."""
    first = served.runtime.current
    moved = ShardStatus(
        "count-005",
        _replicas((2, P)),
        [SourceStatus("examples/word-count/lines/part-005", 10, 20)],
        txn_rate=42.0,
    )
    served.runtime.later = StatusSnapshot(
        group=first.group,
        member=first.member,
        members=first.members,
        shards=[*first.shards[:3], moved],
        taken_at=first.taken_at + 60,
        etcd_revision=first.etcd_revision + 7,
    )
    url = f"{served.base}/status"
    # Virtual time lets the page's 2 s poll timer fire without waiting for it.
    dom = await trio.to_thread.run_sync(
        lambda: _chromium("--virtual-time-budget=5000", "--dump-dom", url, profile=tmp_path / "p")
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert served.runtime.calls >= 2
    assert 'data-shard="count-005"' in dom.stdout
    assert 'data-shard="count-003"' not in dom.stdout
    assert f"etcd revision {first.etcd_revision + 7}" in dom.stdout
