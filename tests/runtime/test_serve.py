"""`gazette-trio serve` as a user runs it: a real process, signals, restarts.

A small word-count application and its config are written to a temporary
directory; the member runs on the embedded journal server and etcd. Input
is appended and output read with the `gazette-trio journals` commands, shards
listed with `gazette-trio shards list`, all against the live process.
"""

from __future__ import annotations

import collections
import functools
import json
import signal
import subprocess
from pathlib import Path

import pytest

from gazette_trio.protocol import consumer as pc
from tests.serve_member import (
    ServeMember,
    append,
    appended_head,
    gazette_trio,
    member,
    serve_pair,
    stat,
    wait_for_counts,
)
from tests.services import free_port

__all__ = ["member"]  # the fixture, imported for pytest

WORD_COUNT_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "word_count" / "config.toml"


@pytest.mark.slow
def test_sigterm_drains_and_a_restart_loses_and_repeats_nothing(member: ServeMember) -> None:
    member.start()
    first = [f"alpha beta {i % 3}" for i in range(30)]
    append(member, first)
    member.signal(signal.SIGTERM)
    assert member.wait(30) == 0, member.logs()
    assert "drained; stopping" in member.logs()

    member.start()
    second = [f"beta gamma {i % 4}" for i in range(30)]
    append(member, second)
    expected = collections.Counter(w for t in first + second for w in t.split())
    # The ACKs of the last transaction before the restart may be rewritten on
    # recovery; read-committed, every delta still counts exactly once.
    wait_for_counts(member, dict(expected))
    member.signal(signal.SIGINT)
    assert member.wait(30) == 0, member.logs()


def test_a_killed_members_playback_directories_are_removed_at_its_next_start(
    member: ServeMember,
) -> None:
    member.start()
    append(member, ["alpha beta"])
    wait_for_counts(member, {"alpha": 1, "beta": 1})
    member.signal(signal.SIGKILL)
    member.wait(30)
    playback = member.directory / "data" / "member" / "shards"
    left = {p.name for p in playback.iterdir()}
    assert left, "a killed member leaves its playback directory behind"

    member.start()
    assert not left & {p.name for p in playback.iterdir()}
    assert "removed 1 playback directory" in member.logs()
    append(member, ["alpha"])
    wait_for_counts(member, {"alpha": 2, "beta": 1})


@pytest.mark.slow
def test_a_second_signal_exits_at_once(member: ServeMember) -> None:
    member.start()
    member.signal(signal.SIGTERM)
    member.signal(signal.SIGTERM)
    assert member.wait(10) in (0, 130)


@pytest.mark.slow
def test_the_operator_commands_work_against_a_live_member(member: ServeMember) -> None:
    member.start()
    listed = member.cli("shards", "list", "-e", member.endpoint, "-o", "json", check=True)
    assert json.loads(listed.stdout) and "count-000" in listed.stdout
    journals = member.cli("journals", "-e", member.endpoint, "list", "-o", "json", check=True)
    assert "ex/recovery/count-000" in journals.stdout
    dry = member.cli(
        "shards", "unassign", "-e", member.endpoint, "--dry-run", "-l", "id=count-000", check=True
    )
    assert "count-000" in dry.stdout + dry.stderr
    status = json.loads(
        subprocess.run(
            ["curl", "-s", f"http://127.0.0.1:{member.http}/status.json"],
            capture_output=True,
            text=True,
        ).stdout
    )
    assert status["shards"][0]["id"] == "count-000"


def test_serve_options_override_their_config_keys(member: ServeMember) -> None:
    # The config names one pair of ports; the options move the member to another.
    member.port, member.http = free_port(), free_port()
    member.start(
        "--port", str(member.port), "--http-port", str(member.http), "--log-level", "DEBUG"
    )
    status = json.loads(
        subprocess.run(
            ["curl", "-sf", f"http://127.0.0.1:{member.http}/status.json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    )
    assert status
    assert " DEBUG " in member.logs()
    bad = gazette_trio("serve", "config.toml", "--port", "99999", cwd=member.directory)
    assert bad.returncode == 2 and "--port" in bad.stderr


def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[application]\nmodule = "counter:Counter"\n[member]\nport = "x"\n'
    )
    result = gazette_trio("serve", str(tmp_path / "config.toml"))
    assert result.returncode == 2
    assert "member.port" in result.stderr


def test_an_application_that_does_not_import_exits_2(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[application]\nmodule = "nowhere:Counter"\n')
    result = gazette_trio("serve", str(tmp_path / "config.toml"))
    assert result.returncode == 2
    assert "application.module" in result.stderr and "nowhere" in result.stderr


@pytest.mark.slow
def test_a_stat_sent_to_either_member_is_answered_by_the_primary(
    tmp_path: Path, etcd_endpoint: str
) -> None:
    """Two members share a real etcd; the first embeds the journal server and
    the second reads journals from it. A Stat with read_through sent to the
    member that is not primary is proxied to the one that is."""
    pair = serve_pair(functools.partial(ServeMember, tmp_path), etcd_endpoint, "two-members")
    with pair as (members, primary):
        lines = "".join(json.dumps({"text": f"x y {i}"}) + "\n" for i in range(10)).encode()
        first = members[0]
        appended = first.cli(
            "journals", "-e", first.endpoint, "append", "ex/lines", stdin=lines, check=True
        )
        head = appended_head(appended)
        reply = stat(members[1 - primary].endpoint, {"ex/lines": head})
        assert reply.status == pc.Status.OK
        assert reply.read_through["ex/lines"] >= head
        # The answer is the primary's: its header names it, not the member asked.
        assert reply.header is not None and reply.header.process_id is not None
        assert reply.header.process_id.suffix == ["member-one", "member-two"][primary]


async def test_two_members_starting_at_once_both_create_the_declared_journals() -> None:
    """Members of one group declare the same journals; whichever applies
    second sees the conflict, looks again and finds them created."""
    import trio

    from gazette_trio.broker import LocalJournalClient, list_journals
    from gazette_trio.broker.server import JournalServerCore, MemoryStorage
    from gazette_trio.etcd import MemoryEtcd
    from gazette_trio.runtime.config import load_config
    from gazette_trio.runtime.serve import create_declared

    cfg = load_config(WORD_COUNT_CONFIG)
    journals = LocalJournalClient(JournalServerCore(MemoryStorage()))
    async with MemoryEtcd.open() as etcd, trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(
                functools.partial(create_declared, cfg, etcd, journals, embedded=False)
            )
    listed = await list_journals(journals)
    assert len(listed) == len(cfg.declared_journals())
