"""`gazette-trio shards …` against a live Shard API over gRPC.

Each test serves the Shard API (see `shard_server.py`) on loopback and runs
the real click commands with CliRunner in a worker thread, where each command
opens its own Trio run and asyncio island as the installed command would.
Promises: selectors are Gazette's, output formats are a table, JSON and an
apply-able shardspace YAML, `apply` is all-or-nothing on revisions, `edit`
applies what the editor saved (and reopens with the error when it fails),
`unassign` honours --failed and --dry-run, and every failure exits non-zero
with a message naming what went wrong.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner, Result

from gazette_trio import aio
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import labels as lbl
from gazette_trio.protocol import protocol as pb
from gazette_trio.runtime.shards_cli import shards

from .shard_server import ShardTable


def label_set(*pairs: tuple[str, str]) -> pb.LabelSet:
    return lbl.label_set(list(pairs))


PRIMARY = pc.ReplicaStatusCode.PRIMARY
STANDBY = pc.ReplicaStatusCode.STANDBY
BACKFILL = pc.ReplicaStatusCode.BACKFILL
FAILED = pc.ReplicaStatusCode.FAILED


def _spec(shard_id: str, part: str, **kw: object) -> pc.ShardSpec:
    base: dict[str, object] = {
        "id": shard_id,
        "sources": [pc.ShardSpecSource(journal=f"examples/lines/{part}")],
        "max_txn_duration": datetime.timedelta(seconds=1),
        "labels": label_set(("app", "word-count")),
    }
    base.update(kw)
    return pc.ShardSpec(**base)  # type: ignore[arg-type]


@dataclass
class Member:
    table: ShardTable
    endpoint: str

    async def run(
        self, args: Sequence[str], *, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        """Invoke `gazette-trio shards ARGS -e ENDPOINT` as a separate program would."""

        def invoke() -> Result:
            return CliRunner().invoke(shards, [*args, "-e", self.endpoint], input=input, env=env)

        # A fresh context: the command must open its own island, not see ours.
        return await trio.to_thread.run_sync(contextvars.Context().run, invoke)


@pytest.fixture
async def member(island: None, nursery: trio.Nursery) -> AsyncIterator[Member]:
    table = ShardTable()
    table.put(
        _spec("count-000", "part-000"), [("z1", "m-one"), ("z2", "m-two")], [PRIMARY, STANDBY]
    )
    table.put(
        _spec(
            "count-001",
            "part-001",
            hot_standbys=1,
            labels=label_set(("app", "word-count"), ("env", "qa")),
        ),
        [("z2", "m-two")],
        [BACKFILL],
    )
    table.put(
        _spec("count-002", "part-002", disable=True),
        [("z1", "m-one")],
        [FAILED],
        ["store: disk full"],
    )
    table.put(_spec("other-000", "part-000", labels=label_set(("app", "other"))))
    port = await nursery.start(aio.serve, [table.service()], "127.0.0.1", 0)
    yield Member(table, f"http://127.0.0.1:{port}")


def _rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()[2:] if line.strip()]


async def test_list_prints_a_table_of_status_primary_and_replicas(member: Member) -> None:
    """Status is the most advanced replica status; replicas show as suffix:STATUS."""
    result = await member.run(["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "PRIMARY", "REPLICAS", "ERRORS"]
    assert _rows(result.output) == [
        ["count-000", "PRIMARY", "m-one:PRIMARY", "m-two:STANDBY"],
        ["count-001", "BACKFILL", "m-two:BACKFILL"],
        ["count-002", "FAILED", "m-one:FAILED", "store:", "disk", "full"],
        ["other-000", "IDLE", "<none>"],
    ]


async def test_list_selects_by_label_and_by_id(member: Member) -> None:
    """Gazette selectors, including the `id` meta-label, pick the shards."""
    result = await member.run(["list", "-l", "app=word-count, env notin (qa)", "--rf"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split() == [
        "ID",
        "STATUS",
        "PRIMARY",
        "REPLICAS",
        "RF",
        "ERRORS",
    ]
    assert [row[0] for row in _rows(result.output)] == ["count-000", "count-002"]
    assert _rows(result.output)[0][-1] == "1" and _rows(result.output)[1][3] == "0"

    result = await member.run(
        ["list", "-l", "id in (count-001, other-000)", "-L", "env", "-L", "app"]
    )
    assert result.exit_code == 0, result.output
    assert _rows(result.output) == [
        ["count-001", "BACKFILL", "m-two:BACKFILL", "qa", "word-count"],
        ["other-000", "IDLE", "<none>", "<none>", "other"],
    ]


async def test_a_bad_selector_exits_2_naming_it(member: Member) -> None:
    result = await member.run(["list", "-l", "app=wc, xx in (aa, bb cc)"])
    assert result.exit_code == 2
    # As gazctl says it (Go's %q quoting), leading blanks included.
    assert (
        'Error: --selector: parsing " xx in (aa, bb cc)": could not match " bb cc"'
        in result.stderr
    )


async def test_list_as_json_is_the_list_response(member: Member) -> None:
    result = await member.run(["list", "-l", "id=count-000", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    [shard] = data["shards"]
    assert shard["spec"]["id"] == "count-000"
    assert shard["spec"]["max_txn_duration"] == "1s"
    assert shard["mod_revision"] == str(member.table.shards["count-000"].revision)
    assert [m["suffix"] for m in shard["route"]["members"]] == ["m-one", "m-two"]
    assert [s["code"] for s in shard["status"]] == ["PRIMARY", "STANDBY"]


async def test_listed_yaml_edited_and_applied_updates_the_shards(member: Member) -> None:
    """list -o yaml is a shardspace with shared fields in `common`, which `apply` takes back."""
    listed = await member.run(["list", "-l", "app=word-count", "-o", "yaml"])
    assert listed.exit_code == 0, listed.output
    text = listed.stdout
    assert text.startswith(
        "common:\n  max_txn_duration: 1s\n  labels:\n  - name: app\n    value: word-count\n"
    )
    assert text.count("max_txn_duration") == 1
    edited = text.replace("max_txn_duration: 1s", "max_txn_duration: 2s")
    result = await member.run(["apply", "-"], input=edited)
    assert result.exit_code == 0, result.output
    assert f"applied 3 changes (etcd revision {member.table.revision})" in result.stdout
    for shard_id in ("count-000", "count-001", "count-002"):
        spec = member.table.shards[shard_id].spec
        assert spec.max_txn_duration == datetime.timedelta(seconds=2)
    assert member.table.shards["count-001"].spec.hot_standbys == 1
    assert member.table.shards["other-000"].spec.max_txn_duration == datetime.timedelta(seconds=1)


async def test_apply_fails_whole_when_a_shard_changed_since_listing(member: Member) -> None:
    """A stale revision refuses the entire Apply: nothing changes, exit 1 with advice."""
    listed = await member.run(["list", "-l", "app=word-count", "-o", "yaml"])
    member.table.put(_spec("count-001", "part-001", hot_standbys=2))  # someone else's change
    before = {k: (r.spec, r.revision) for k, r in member.table.shards.items()}
    result = await member.run(["apply", "-"], input=listed.stdout.replace("1s", "5s"))
    assert result.exit_code == 1
    assert "ETCD_TRANSACTION_FAILED" in result.stderr
    assert "list the shards again" in result.stderr
    assert {k: (r.spec, r.revision) for k, r in member.table.shards.items()} == before


async def test_apply_creates_overwrites_and_deletes_from_a_file(
    member: Member, tmp_path: Path
) -> None:
    """revision 0 creates, -1 overwrites regardless, delete: true deletes."""
    file = tmp_path / "shards.yaml"
    file.write_text(
        textwrap.dedent(
            """
            common:
              max_txn_duration: 3s
              labels:
              - name: app
                value: word-count
            shards:
            - id: count-003
              sources:
              - journal: examples/lines/part-003
            - id: count-000
              sources:
              - journal: examples/lines/part-000
              revision: -1
            - id: other-000
              delete: true
              revision: -1
            """
        )
    )
    dry = await member.run(["apply", "--dry-run", str(file)])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [
        "upsert count-000 (any revision)",
        "upsert count-003 (create)",
        "delete other-000 (any revision)",
        "dry run: 3 changes checked, nothing applied",
    ]
    assert member.table.apply_requests == []

    result = await member.run(["apply", str(file)])
    assert result.exit_code == 0, result.output
    assert sorted(member.table.shards) == ["count-000", "count-001", "count-002", "count-003"]
    assert member.table.shards["count-003"].spec == _spec(
        "count-003", "part-003", max_txn_duration=datetime.timedelta(seconds=3)
    )
    assert member.table.shards["count-000"].spec.max_txn_duration == datetime.timedelta(seconds=3)
    [request] = member.table.apply_requests
    assert [c.delete or c.upsert.id for c in request.changes if c.delete or c.upsert] == [
        "count-000",
        "count-003",
        "other-000",
    ]


async def test_apply_in_batches(member: Member, tmp_path: Path) -> None:
    file = tmp_path / "shards.yaml"
    shards_yaml = "".join(
        f"- id: batch-{i:03d}\n  sources:\n  - journal: examples/lines/part-{i:03d}\n"
        for i in range(5)
    )
    file.write_text("common:\n  max_txn_duration: 1s\nshards:\n" + shards_yaml)
    result = await member.run(["apply", "--max-txn-size", "2", str(file)])
    assert result.exit_code == 0, result.output
    assert [len(r.changes) for r in member.table.apply_requests] == [2, 2, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "shards:\n- id: count-009\n  hot_standbys: many\n",
            "shards[0].hot_standbys: expected a non-negative integer, got 'many'",
        ),
        (
            "shards:\n- id: count-009\n  sources: [{journal: examples/x}]\n",
            "shards[0]: shard count-009: invalid MaxTxnDuration",
        ),
        ("shards:\n- id: count-009\n  bogus: 1\n", "shards[0].bogus: unknown field"),
        ("shards: [\n", "not valid YAML at line"),
        ("common: {}\n", "no shards to apply"),
    ],
)
async def test_apply_refuses_a_bad_file_with_exit_2(
    member: Member, text: str, message: str
) -> None:
    result = await member.run(["apply", "-"], input=text)
    assert result.exit_code == 2
    assert message in result.stderr
    assert member.table.apply_requests == []


EDITOR = """
import json, os, sys
path = sys.argv[1]
steps = json.loads(os.environ["EDIT_STEPS"])
counter = os.environ["EDIT_COUNTER"]
n = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(n + 1))
with open(path) as f:
    text = f.read()
open(os.environ["EDIT_SEEN"] + str(n), "w").write(text)
step = steps[n]
if step is None:
    sys.exit(0)  # quit without saving
for old, new in step:
    text = text.replace(old, new)
with open(path, "w") as f:
    f.write(text)
st = os.stat(path)
os.utime(path, (st.st_atime, st.st_mtime + 2))
"""


def _editor_env(tmp_path: Path, steps: list[list[list[str]] | None]) -> dict[str, str]:
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    return {
        "EDITOR": f"{sys.executable} {script}",
        "VISUAL": "",
        "EDIT_STEPS": json.dumps(steps),
        "EDIT_COUNTER": str(tmp_path / "count"),
        "EDIT_SEEN": str(tmp_path / "seen-"),
    }


async def test_edit_applies_what_the_editor_saved(member: Member, tmp_path: Path) -> None:
    env = _editor_env(tmp_path, [[["hot_standbys: 1", "hot_standbys: 2"]]])
    result = await member.run(["edit", "-l", "id=count-001"], env=env)
    assert result.exit_code == 0, result.output
    assert "applied 1 changes" in result.stdout
    assert member.table.shards["count-001"].spec.hot_standbys == 2
    seen = (tmp_path / "seen-0").read_text()
    assert seen.startswith("# Edit the shards below")
    assert "- id: count-001\n" in seen


async def test_edit_without_changes_applies_nothing(member: Member, tmp_path: Path) -> None:
    result = await member.run(["edit", "-l", "id=count-001"], env=_editor_env(tmp_path, [None]))
    assert result.exit_code == 0
    assert "no changes; nothing applied" in result.stderr
    assert member.table.apply_requests == []


async def test_edit_reopens_with_the_error_until_the_file_applies(
    member: Member, tmp_path: Path
) -> None:
    """A bad edit reopens the editor with the error on top; fixing it applies."""
    env = _editor_env(
        tmp_path,
        [
            [["hot_standbys: 1", "hot_standbys: lots"]],
            [["hot_standbys: lots", "hot_standbys: 3"]],
        ],
    )
    result = await member.run(["edit", "-l", "id=count-001"], env=env)
    assert result.exit_code == 0, result.output
    # One shard listed: all its fields are common, and the error says where.
    assert (
        "error: common.hot_standbys: expected a non-negative integer, got 'lots'" in result.stderr
    )
    second = (tmp_path / "seen-1").read_text()
    assert second.startswith("# error: common.hot_standbys: expected a non-negative integer")
    assert member.table.shards["count-001"].spec.hot_standbys == 3


async def test_edit_abandoned_after_an_error_exits_1(member: Member, tmp_path: Path) -> None:
    env = _editor_env(tmp_path, [[["max_txn_duration: 1s", "max_txn_duration: 0s"]], None])
    result = await member.run(["edit", "-l", "id=count-001"], env=env)
    assert result.exit_code == 1
    assert "edit abandoned after an error; nothing applied" in result.stderr
    assert member.table.apply_requests == []


async def test_edit_with_no_matching_shards_exits_2(member: Member) -> None:
    result = await member.run(["edit", "-l", "id=nope-000"])
    assert result.exit_code == 2
    assert "no shards match selector 'id=nope-000'" in result.stderr


async def test_unassign_failed_shards_only(member: Member) -> None:
    """--failed unassigns only FAILED shards among those selected; --dry-run changes nothing."""
    dry = await member.run(["unassign", "-l", "app=word-count", "--failed", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.strip() == "would unassign 1 shards: count-002"
    assert member.table.shards["count-002"].members == [("z1", "m-one")]

    result = await member.run(["unassign", "-l", "app=word-count", "--failed"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "unassigned 1 shards: count-002"
    assert member.table.shards["count-002"].members == []
    assert member.table.shards["count-000"].members == [("z1", "m-one"), ("z2", "m-two")]
    request = member.table.unassign_requests[-1]
    assert list(request.shards) == ["count-000", "count-001", "count-002"]
    assert request.only_failed and not request.dry_run


async def test_unassign_by_id(member: Member) -> None:
    result = await member.run(["unassign", "-l", "id=count-000"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "unassigned 1 shards: count-000"
    assert member.table.shards["count-000"].members == []


async def test_unassign_needs_a_selector(member: Member) -> None:
    result = await member.run(["unassign"])
    assert result.exit_code == 2
    assert "Missing option '-l' / '--selector'" in result.stderr


async def test_an_unreachable_member_exits_1_naming_the_endpoint(tmp_path: Path) -> None:
    def invoke() -> Result:
        return CliRunner().invoke(shards, ["list", "-e", "http://127.0.0.1:1"])

    result = await trio.to_thread.run_sync(contextvars.Context().run, invoke)
    assert result.exit_code == 1
    assert "cannot reach a member at http://127.0.0.1:1" in result.stderr


def test_a_malformed_endpoint_exits_2() -> None:
    result = CliRunner().invoke(shards, ["list", "-e", "ftp://x:1"])
    assert result.exit_code == 2
    assert "--endpoint: endpoint 'ftp://x:1': unsupported scheme 'ftp'" in result.stderr


@pytest.mark.parametrize("command", [[], ["list"], ["apply"], ["edit"], ["unassign"], ["prune"]])
def test_every_command_has_help_with_examples(command: list[str]) -> None:
    result = CliRunner().invoke(shards, [*command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "gazette-trio shards" in result.output
