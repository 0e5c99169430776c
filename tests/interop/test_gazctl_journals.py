"""`gazctl journals ...` against Gazette's brokers and against gazette-trio's
journal server, with the same expectations for both.

Each test runs three times: on two real `gazette serve` brokers (the
reference: what a Gazette user sees), on `gazette-trio broker serve`, and on
the journal server embedded in a `gazette-trio serve` member. A command's
printed result and its effect (read back with another command) are
asserted. Journals live in a fresh directory of each test's own.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..examples.processes import ProcessGroup, broker_args, clean_env, wait_port
from ..services import free_port
from .conftest import Gazctl, GazetteCluster, logged_group, start_member, wait_until
from .gazctl_output import column, json_lines, leaves, rows, yaml_doc


@dataclass
class Server:
    kind: str
    endpoint: str
    file_root: Path | None  # where a `file:///` store lands, if the server has one


@pytest.fixture(scope="module", params=["gazette", "gazette-trio-broker", "gazette-trio-member"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Gazette's brokers; `gazette-trio broker serve`; or the journal server
    embedded in a `gazette-trio serve` member (the word-count example)."""
    if request.param == "gazette":
        cluster: GazetteCluster = request.getfixturevalue("gazette")
        yield Server("gazette", cluster.address, cluster.file_root)
        return
    root = tmp_path_factory.mktemp(request.param)
    with logged_group(root / "logs") as group:
        if request.param == "gazette-trio-broker":
            port = free_port()
            group.start("gazette-trio-broker", broker_args(root / "data", port), clean_env())
            wait_port(port)
            yield Server(request.param, f"127.0.0.1:{port}", None)
        else:
            member = start_member(group, "word_count", root / "data")
            yield Server(request.param, member.endpoint, None)


@pytest.fixture
def ctl(gazctl: Gazctl, server: Server) -> Gazctl:
    return gazctl.at(broker=server.endpoint)


@pytest.fixture
def base() -> str:
    return f"interop/{uuid.uuid4().hex[:8]}/"


FRAGMENT = "{length: 1024, compression_codec: SNAPPY, stores: ['file:///'], refresh_interval: 1s}"


def journalspace(base: str, replication: int = 1) -> str:
    return f"""\
name: {base}
replication: {replication}
labels:
- {{name: app, value: interop}}
fragment:
  length: 1024
  compression_codec: SNAPPY
  stores: [file:///]
  refresh_interval: 1s
children:
- name: {base}one
- name: {base}two
  labels:
  - {{name: content-type, value: application/x-ndjson}}
"""


def apply(ctl: Gazctl, tmp_path: Path, text: str) -> str:
    specs = tmp_path / f"journals-{uuid.uuid4().hex[:6]}.yaml"
    specs.write_text(text)
    done = ctl("journals", "apply", f"--specs={specs}", "--log.level=info")
    done.ok()
    return done.stderr


def created(ctl: Gazctl, tmp_path: Path, base: str) -> None:
    """The journals of `journalspace(base)`, once each has a primary broker
    (appends before then fail with NO_JOURNAL_PRIMARY_BROKER)."""
    stderr = apply(ctl, tmp_path, journalspace(base))
    assert "successfully applied" in stderr, stderr
    wait_until("both journals have a primary", lambda: assigned(ctl, base), timeout=20)


def assigned(ctl: Gazctl, base: str) -> bool:
    out = ctl("journals", "list", "-l", f"name:prefix={base}", "--primary").ok()
    primaries = column(out, "PRIMARY")
    return len(primaries) == 2 and all(p not in ("", "<none>") for p in primaries.values())


def test_apply_creates_the_journals_and_list_shows_them_with_their_specs(
    ctl: Gazctl, tmp_path: Path, base: str
) -> None:
    stderr = apply(ctl, tmp_path, journalspace(base))
    assert "successfully applied" in stderr and "revision=" in stderr, stderr

    names = [row[0] for row in rows(ctl("journals", "list", "-l", f"name:prefix={base}").ok())]
    assert names == [f"{base}one", f"{base}two"]

    tree = yaml_doc(ctl("journals", "list", "-l", "app=interop", "-o", "yaml").ok())
    journals = leaves(tree)
    assert {f"{base}one", f"{base}two"} <= set(journals)
    one = journals[f"{base}one"]
    assert one["replication"] == 1
    assert one["fragment"]["length"] == 1024
    assert one["fragment"]["compression_codec"] == "SNAPPY"
    assert one["fragment"]["stores"] == ["file:///"]
    assert one["fragment"]["refresh_interval"] == "1s"
    # Both journals were written by the one etcd transaction whose revision
    # gazctl printed.
    applied_at = re.search(r"revision=(\d+)", stderr)
    assert applied_at is not None, stderr
    assert int(one["revision"]) == int(journals[f"{base}two"]["revision"]) == int(applied_at[1])

    # Every journal gets a primary broker once the brokers have assigned it.
    wait_until("both journals have a primary", lambda: assigned(ctl, base), timeout=20)


def test_apply_updates_labels_and_deletes_journals(ctl: Gazctl, tmp_path: Path, base: str) -> None:
    created(ctl, tmp_path, base)
    listed = yaml_doc(ctl("journals", "list", "-l", f"name={base}one", "-o", "yaml").ok())
    revision = leaves(listed)[f"{base}one"]["revision"]

    apply(
        ctl,
        tmp_path,
        f"""\
name: {base}one
revision: {revision}
replication: 1
labels: [{{name: app, value: interop}}, {{name: tier, value: gold}}]
fragment: {{length: 1024, compression_codec: SNAPPY, stores: ["file:///"], refresh_interval: 1s}}
""",
    )
    tiers = column(ctl("journals", "list", "-l", "tier=gold", "-L", "tier").ok(), "TIER")
    assert tiers == {f"{base}one": "gold"}

    # An Apply naming a stale revision is refused, and changes nothing.
    stale = tmp_path / "stale.yaml"
    stale.write_text(f"name: {base}one\nrevision: {revision}\ndelete: true\n")
    refused = ctl("journals", "apply", f"--specs={stale}")
    assert refused.code != 0, refused
    assert "etcd transaction failed" in refused.stderr or "ETCD_TRANSACTION_FAILED" in str(refused)

    current = leaves(yaml_doc(ctl("journals", "list", "-l", f"name={base}one", "-o", "yaml").ok()))
    fresh = tmp_path / "delete.yaml"
    fresh.write_text(
        f"name: {base}one\nrevision: {current[f'{base}one']['revision']}\ndelete: true\n"
    )
    ctl("journals", "apply", f"--specs={fresh}").ok()
    names = [row[0] for row in rows(ctl("journals", "list", "-l", f"name:prefix={base}").ok())]
    assert names == [f"{base}two"]


def test_append_then_read_returns_the_bytes_in_order(
    ctl: Gazctl, tmp_path: Path, base: str
) -> None:
    created(ctl, tmp_path, base)
    journal = f"{base}one"
    ctl("journals", "append", "-l", f"name={journal}", input="first line\n").ok()
    ctl("journals", "append", "-l", f"name={journal}", input="second line\nthird line\n").ok()

    read = ctl("journals", "read", "-l", f"name={journal}").ok()
    assert read == "first line\nsecond line\nthird line\n"

    # With line framing, each line is a record appended whole to one of the
    # selected journals (chosen at random), in order within each journal.
    records = [f'{{"n": {n}}}\n' for n in range(20)]
    ctl(
        "journals",
        "append",
        "-l",
        f"name:prefix={base}",
        "--framing=lines",
        input="".join(records),
    ).ok()
    head = "first line\nsecond line\nthird line\n"
    one = ctl("journals", "read", "-l", f"name={base}one").ok()
    assert one.startswith(head)
    parts = [
        one.removeprefix(head).splitlines(keepends=True),
        ctl("journals", "read", "-l", f"name={base}two").ok().splitlines(keepends=True),
    ]
    assert sorted(parts[0] + parts[1]) == sorted(records)
    for part in parts:
        assert part == sorted(part, key=records.index)


def test_fragments_cover_the_journal_and_persist_to_the_file_store(
    ctl: Gazctl, tmp_path: Path, base: str, server: Server
) -> None:
    created(ctl, tmp_path, base)
    journal = f"{base}two"
    big = "".join(f'{{"n": {n}, "pad": "{"x" * 40}"}}\n' for n in range(30))  # > 1024 bytes
    ctl("journals", "append", "-l", f"name={journal}", input=big).ok()
    ctl("journals", "append", "-l", f"name={journal}", input='{"n": "last"}\n').ok()
    total = len(big) + len('{"n": "last"}\n')

    table = rows(ctl("journals", "fragments", "-l", f"name={journal}").ok())
    assert table and all(row[0] == journal for row in table)

    def fragments() -> list[dict[str, Any]]:
        out = ctl("journals", "fragments", "-l", f"name={journal}", "-o", "json").ok()
        return [line["spec"] for line in json_lines(out)]

    specs = fragments()
    # Contiguous, from 0 to the write head.
    assert int(specs[0].get("begin", 0)) == 0
    for before, after in itertools.pairwise(specs):
        assert int(after.get("begin", 0)) == int(before["end"])
    assert int(specs[-1]["end"]) == total
    assert all(spec["journal"] == journal for spec in specs)

    if server.file_root is not None:
        # The fragment that filled past `length` is rolled and persisted to
        # file:///: the listing names its store and the file is there.
        def persisted() -> list[dict[str, Any]]:
            return [spec for spec in fragments() if spec.get("backing_store") == "file:///"]

        wait_until("a fragment persisted to file:///", lambda: bool(persisted()), timeout=30)
        files = [p for p in (server.file_root / journal).rglob("*") if p.is_file()]
        assert files, f"nothing under {server.file_root / journal}"
        assert any(p.name.endswith(".sz") for p in files), files  # SNAPPY's extension


def test_suspend_empties_and_force_suspend_then_append_resumes(
    ctl: Gazctl, tmp_path: Path, base: str
) -> None:
    created(ctl, tmp_path, base)
    empty, written = f"{base}one", f"{base}two"

    done = ctl("journals", "suspend", "-l", f"name={empty}", "--log.level=info")
    done.ok()
    assert "journal suspension status" in done.stderr, done
    spec = leaves(yaml_doc(ctl("journals", "list", "-l", f"name={empty}", "-o", "yaml").ok()))
    assert spec[empty]["suspend"] == {"level": "FULL"}

    ctl("journals", "append", "-l", f"name={written}", input='{"a": 1}\n').ok()
    # Written and not yet flushed: suspension waits for the flush unless forced.
    ctl("journals", "suspend", "-l", f"name={written}", "--force").ok()
    spec = leaves(yaml_doc(ctl("journals", "list", "-l", f"name={written}", "-o", "yaml").ok()))
    assert spec[written]["suspend"] == {"level": "PARTIAL", "offset": len('{"a": 1}\n')}

    # An append resumes it, continuing at the suspended offset.
    ctl("journals", "append", "-l", f"name={written}", input='{"a": 2}\n').ok()
    spec = leaves(yaml_doc(ctl("journals", "list", "-l", f"name={written}", "-o", "yaml").ok()))
    assert spec[written].get("suspend", {}).get("level", "NONE") == "NONE"
    assert ctl("journals", "read", "-l", f"name={written}").ok() == '{"a": 1}\n{"a": 2}\n'


def test_reset_head_on_a_consistent_journal_changes_nothing_and_appends_go_on(
    ctl: Gazctl, tmp_path: Path, base: str
) -> None:
    created(ctl, tmp_path, base)
    journal = f"{base}one"
    ctl("journals", "append", "-l", f"name={journal}", input="before\n").ok()

    done = ctl("journals", "reset-head", "-l", f"name={journal}", "--log.level=info")
    done.ok()
    assert "reset write head" in done.stderr, done

    ctl("journals", "append", "-l", f"name={journal}", input="after\n").ok()
    assert ctl("journals", "read", "-l", f"name={journal}").ok() == "before\nafter\n"
    specs = json_lines(ctl("journals", "fragments", "-l", f"name={journal}", "-o", "json").ok())
    assert int(specs[-1]["spec"]["end"]) == len("before\nafter\n")


def test_list_watch_shows_journals_as_they_are_created_and_deleted(
    ctl: Gazctl, tmp_path: Path, base: str, group: ProcessGroup
) -> None:
    created(ctl, tmp_path, base)
    watcher = group.start(
        "gazctl-list-watch",
        [ctl.binary, "journals", "list", "--watch", "-l", f"name:prefix={base}"],
        ctl.environment(),
    )

    def last_listing() -> list[str]:
        tables = watcher.text().split("┌")
        return [row[0] for row in rows("┌" + tables[-1])] if len(tables) > 1 else []

    wait_until(
        "the watch lists the journals",
        lambda: last_listing() == [f"{base}one", f"{base}two"],
        timeout=20,
    )
    apply(ctl, tmp_path, f"name: {base}three\nreplication: 1\nfragment: {FRAGMENT}\n")
    wait_until(
        "the watch shows the new journal",
        lambda: last_listing() == [f"{base}one", f"{base}three", f"{base}two"],
        timeout=20,
    )
    revision = leaves(yaml_doc(ctl("journals", "list", "-l", f"name={base}one", "-o", "yaml").ok()))
    apply(
        ctl,
        tmp_path,
        f"name: {base}one\nrevision: {revision[f'{base}one']['revision']}\ndelete: true\n",
    )
    wait_until(
        "the watch drops the deleted journal",
        lambda: last_listing() == [f"{base}three", f"{base}two"],
        timeout=20,
    )
    assert watcher.popen.poll() is None, watcher.tail()


def test_a_blocking_read_receives_appends_as_they_commit(
    ctl: Gazctl, tmp_path: Path, base: str, group: ProcessGroup
) -> None:
    created(ctl, tmp_path, base)
    journal = f"{base}one"
    ctl("journals", "append", "-l", f"name={journal}", input="already there\n").ok()
    reader = group.start(
        "gazctl-read-block",
        [ctl.binary, "journals", "read", "-l", f"name={journal}", "--block"],
        ctl.environment(),
    )
    wait_until("the reader caught up", lambda: "already there\n" in reader.text(), timeout=20)
    for n in range(3):
        ctl("journals", "append", "-l", f"name={journal}", input=f"live {n}\n").ok()
    wait_until(
        "the reader got every append",
        lambda: "already there\nlive 0\nlive 1\nlive 2\n" in reader.text(),
        timeout=20,
    )
    assert reader.popen.poll() is None, "a blocking read waits for more"


def test_journals_edit_applies_what_the_editor_saved(
    ctl: Gazctl, tmp_path: Path, base: str
) -> None:
    created(ctl, tmp_path, base)
    editor = "sed -i -e 's/refresh_interval: 1s/refresh_interval: 7s/'"
    done = ctl(
        "journals", "edit", "-l", f"name:prefix={base}", "--log.level=info", env={"EDITOR": editor}
    )
    done.ok()
    assert "successfully applied" in done.stderr, done
    listed = leaves(
        yaml_doc(ctl("journals", "list", "-l", f"name:prefix={base}", "-o", "yaml").ok())
    )
    assert {name: spec["fragment"]["refresh_interval"] for name, spec in listed.items()} == {
        f"{base}one": "7s",
        f"{base}two": "7s",
    }


def test_list_responses_carry_an_unrouted_header_naming_the_process_and_etcd(
    ctl: Gazctl, tmp_path: Path, base: str
) -> None:
    """As Gazette's brokers answer List: a header with the answering process,
    no route (primary -1), and the etcd cluster, member, term and revision."""
    created(ctl, tmp_path, base)
    response = json.loads(ctl("journals", "list", "-l", f"name:prefix={base}", "-o", "json").ok())
    header = response["header"]
    assert header["process_id"]["suffix"], header
    assert int(header["route"].get("primary", 0)) == -1, header
    assert not header["route"].get("members"), header
    etcd = header["etcd"]
    for field in ("cluster_id", "member_id", "revision", "raft_term"):
        assert int(etcd.get(field, 0)) > 0, (field, header)
