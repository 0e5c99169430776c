"""Bit rot after a start is found by the scrub, not served.

Restart verifies every rolled fragment against the SHA-1 in its name; a
byte that goes bad while the server runs would otherwise be served until
the next restart. `broker serve --scrub-interval` re-verifies them
periodically. Against a real server process: appends roll into fragments,
one byte of a rolled fragment is inverted behind the server's back, and
within a scrub interval reads reaching it and every append answer DATA_LOSS
naming the journal, the file and the offset, while the content before it is
still served.
"""

from __future__ import annotations

import time
from pathlib import Path

from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.protocol import protocol as pb

from .harness import flip
from .hostile_support import APPLY, RawGrpc, append, cli, frame, start_broker

JOURNAL = "hostile/scrubbed"


def test_a_fragment_that_rots_while_serving_is_refused_after_the_next_scrub(
    tmp_path: Path,
) -> None:
    server = start_broker(tmp_path, args=["--scrub-interval", "1s"])
    try:
        raw = RawGrpc(server.port)
        try:
            spec = new_journal_spec(JOURNAL, fragment_length=1024)
            apply = pb.ApplyRequest(changes=[pb.ApplyRequestChange(upsert=spec)])
            assert raw.call(APPLY, [frame(apply)]).status == 0
        finally:
            raw.close()
        appends = [f"<append {i:02d}>".encode() * 50 for i in range(8)]  # 700 bytes each
        for data in appends:
            append(server, JOURNAL, data)
        directory = server.data_dir / "journals" / "hostile" / "scrubbed"
        fragments = sorted(p for p in directory.iterdir() if p.suffix == ".raw")
        assert len(fragments) >= 2
        target = fragments[1]
        begin = int(target.name.split("-")[0], 16)
        assert cli(server.endpoint, "read", JOURNAL).stdout == b"".join(appends)

        flip(target, 3)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            read = cli(server.endpoint, "read", JOURNAL)
            if read.returncode != 0:
                break
            time.sleep(0.3)
        assert read.returncode != 0, "the rotten fragment was still served after 30 s"
        error = read.stderr.decode()
        assert f"journal {JOURNAL}: stored content is damaged at offset {begin}" in error
        assert f"journals/hostile/scrubbed/{target.name}" in error
        assert "no longer matches the SHA-1 in its name" in error

        # What lies before the damage is still served, and nothing is appended.
        before = cli(server.endpoint, "read", JOURNAL, "--end-offset", str(begin))
        assert before.returncode == 0, before.stderr
        assert before.stdout == b"".join(appends)[:begin]
        more = cli(server.endpoint, "append", JOURNAL, "--data", "one more")
        assert more.returncode != 0
        assert "damaged at offset" in more.stderr.decode()
        server.assert_alive()
        assert "acknowledged content is damaged" in server.text()
    finally:
        server.stop()
