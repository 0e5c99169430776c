"""The stream-sum example as a user runs it: `gazette-trio serve` and `chunker.py`.

What is promised (examples/stream_sum/README.md):

- `gazette-trio serve examples/stream_sum/config.toml` alone (embedded
  journal server and etcd) sums the streams `chunker.py` writes: the
  chunker exits 0 having verified every sum exactly once, and SIGTERM ends
  the member with status 0;
- a second chunker run against the same member verifies only its own
  streams and ignores the sums of the first;
- the chunker exits 3, saying why, when it cannot reach its broker.

Members killed at random while the chunker runs are tests/chaos's.
"""

from __future__ import annotations

from pathlib import Path

from .processes import PYTHON, SERVING, MemberPorts, ProcessGroup, clean_env, member_env, serve_args

CHUNKER = "examples/stream_sum/chunker.py"


def test_one_member_sums_every_stream_exactly_once_and_exits_0_on_sigterm(
    group: ProcessGroup, tmp_path: Path
) -> None:
    ports = MemberPorts()
    member = group.start("member", serve_args("stream_sum"), member_env(ports, tmp_path / "data"))
    member.wait_for_log(SERVING)

    args = [PYTHON, CHUNKER, "-b", ports.endpoint, "--streams", "60", "--chunks", "10"]
    code, out = group.run("chunker", args, clean_env(), timeout=60)
    assert code == 0, out
    assert "OK: run " in out and "60 streams, each sum arrived exactly once and matched" in out

    code, out = group.run("chunker-again", [*args, "--streams", "10"], clean_env(), timeout=60)
    assert code == 0, out
    assert "10 streams, each sum arrived exactly once" in out

    assert member.terminate() == 0
    log = member.text()
    assert "Traceback" not in log and "drained; stopping" in log
    assert log.count("first commit of the shard") == 4  # One per shard, then only itself.


def test_the_chunker_exits_3_naming_the_broker_it_cannot_reach(group: ProcessGroup) -> None:
    unused = MemberPorts().grpc
    code, out = group.run(
        "chunker", [PYTHON, CHUNKER, "-b", f"127.0.0.1:{unused}", "--streams", "1"], clean_env()
    )
    assert code == 3, out
    assert f"Error: 127.0.0.1:{unused}: UNAVAILABLE" in out
