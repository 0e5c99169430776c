"""`gazctl shards ...` and `gazctl journals ...` drive a `gazette-trio serve` member.

The member runs the word-count example twice over: alone, on its embedded
etcd and journal server; and on the suite's real etcd and Gazette brokers.
Input is prepared and appended the Gazette way (`gazctl attach-uuids` then
`gazctl journals append`), and the counts are read back with `gazctl
journals read`. Each command's output and its effect on the member are
asserted. The tests share the module's member and touch different shards.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import Gazctl, GazetteCluster, Member, logged_group, peer, start_member, wait_until
from .gazctl_output import column, rows, yaml_doc

SHARDS = ["count-000", "count-001", "count-002", "count-003", "split-000", "split-001"]
LINES = "examples/word-count/lines/part-000"
COUNTS = "examples/word-count/counts"


@dataclass
class Target:
    kind: str
    member: Member
    broker: str  # the Journal API: the member itself, or a Gazette broker


@pytest.fixture(scope="module", params=["embedded", "gazette"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    root = tmp_path_factory.mktemp(f"member-{request.param}")
    with logged_group(root / "logs") as group:
        if request.param == "embedded":
            member = start_member(group, "word_count", root / "data")
            target = Target("embedded", member, member.endpoint)
        else:
            cluster: GazetteCluster = request.getfixturevalue("gazette")
            member = start_member(
                group,
                "word_count",
                root / "data",
                etcd=cluster.etcd,
                etcd_prefix=f"/gazette/consumers/word-count-{uuid.uuid4().hex[:8]}",
                broker=cluster.endpoint,
            )
            target = Target("gazette", member, cluster.endpoint)
        primaries = Gazctl(peer("gazctl"), root, target.broker, member.endpoint)
        wait_until(
            "every shard PRIMARY",
            lambda: set(column(primaries("shards", "list").ok(), "STATUS").values()) == {"PRIMARY"},
            timeout=60,
        )
        yield target


@pytest.fixture
def ctl(gazctl: Gazctl, target: Target) -> Gazctl:
    return gazctl.at(broker=target.broker, consumer=target.member.endpoint)


def shard_specs(ctl: Gazctl, selector: str) -> dict[str, dict[str, Any]]:
    tree = yaml_doc(ctl("shards", "list", "-l", selector, "-o", "yaml").ok())
    merged = {}
    for spec in tree["shards"]:
        merged[spec["id"]] = {**tree.get("common", {}), **spec}
    return merged


def publish(ctl: Gazctl, journal: str, lines: list[str]) -> None:
    """Text lines as TextLine messages, through gazctl alone."""
    template = '{"_meta":{"uuid":"{{.UUID}}"},"text":"{{.Line}}"}\n'
    framed = ctl("attach-uuids", f"--template={template}", input="".join(f"{x}\n" for x in lines))
    ctl("journals", "append", "-l", f"name={journal}", input=framed.ok()).ok()


def counts(ctl: Gazctl) -> dict[str, int]:
    """The last count of each word in the counts journal."""
    out: dict[str, int] = {}
    for line in ctl("journals", "read", "-l", f"name={COUNTS}").ok().splitlines():
        doc = json.loads(line)
        if "word" in doc:
            out[doc["word"]] = doc["count"]
    return out


def test_shards_list_shows_every_shard_with_its_primary_and_spec(
    ctl: Gazctl, target: Target
) -> None:
    listed = ctl("shards", "list").ok()
    assert [row[0] for row in rows(listed)] == SHARDS
    assert set(column(listed, "STATUS").values()) == {"PRIMARY"}

    primaries = column(ctl("shards", "list", "--primary").ok(), "PRIMARY")
    assert primaries == {shard: f"{target.member.suffix}:PRIMARY" for shard in SHARDS}

    specs = shard_specs(ctl, "id=count-000")
    assert list(specs) == ["count-000"]
    spec = specs["count-000"]
    assert spec["sources"] == [{"journal": "examples/word-count/deltas/part-000"}]
    assert spec["recovery_log_prefix"] == "examples/word-count/recovery"
    assert spec["hint_prefix"] == "/gazette/hints"
    assert spec["max_txn_duration"] == "1s"
    assert int(spec["revision"]) > 0


def test_input_appended_by_gazctl_is_counted_and_lag_drains_to_zero(
    ctl: Gazctl, target: Target
) -> None:
    before = counts(ctl)
    publish(ctl, LINES, ["zebra yak", "yak"])
    wait_until(
        "the counts of zebra and yak",
        lambda: (
            (c := counts(ctl)).get("yak", 0) == before.get("yak", 0) + 2
            and c.get("zebra", 0) == before.get("zebra", 0) + 1
        ),
        timeout=30,
    )

    def lag() -> str:
        return column(ctl("shards", "list", "-l", "id=split-000", "--lag").ok(), "LAG")["split-000"]

    wait_until("split-000 has read all of its source", lambda: lag() == f"{LINES}:0", timeout=30)


def test_shards_apply_changes_a_spec_and_edit_changes_another(
    ctl: Gazctl, target: Target, tmp_path: Path
) -> None:
    spec = shard_specs(ctl, "id=count-001")["count-001"]
    changed = tmp_path / "shards.yaml"
    changed.write_text(
        json.dumps(  # YAML is a superset of JSON
            {"shards": [{**spec, "labels": [{"name": "tier", "value": "gold"}]}]}
        )
    )
    done = ctl("shards", "apply", f"--specs={changed}", "--log.level=info")
    done.ok()
    assert "successfully applied" in done.stderr, done
    gold = ctl("shards", "list", "-l", "tier=gold", "-L", "tier").ok()
    assert column(gold, "TIER") == {"count-001": "gold"}
    applied_at = re.search(r"rev=(\d+)", done.stderr)
    assert applied_at is not None, done
    assert int(shard_specs(ctl, "id=count-001")["count-001"]["revision"]) == int(applied_at[1])

    # Applying the same file again names a revision that is now stale.
    stale = ctl("shards", "apply", f"--specs={changed}")
    assert stale.code != 0 and "ETCD_TRANSACTION_FAILED" in stale.stderr, stale

    editor = "sed -i -e 's/max_txn_duration: 1s/max_txn_duration: 3s/'"
    edited = ctl("shards", "edit", "-l", "id=count-001", "--log.level=info", env={"EDITOR": editor})
    edited.ok()
    assert "successfully applied" in edited.stderr, edited
    after = shard_specs(ctl, "id=count-001")["count-001"]
    assert after["max_txn_duration"] == "3s"
    assert after["labels"] == [{"name": "tier", "value": "gold"}]
    assert int(after["revision"]) > int(spec["revision"])


def test_shards_unassign_moves_the_shard_off_and_it_is_assigned_again(
    ctl: Gazctl, target: Target
) -> None:
    served = "shard count-002: serving as primary"
    times = target.member.proc.text().count(served)

    dry = ctl("shards", "unassign", "-l", "id=count-002", "--dry-run", "--log.level=info")
    dry.ok()
    assert "Successfully unassigned shard: id=count-002" in dry.stderr, dry
    assert target.member.proc.text().count(served) == times

    failed_only = ctl("shards", "unassign", "-l", "id=count-002", "--failed", "--log.level=info")
    failed_only.ok()
    assert "Successfully unassigned" not in failed_only.stderr, failed_only

    done = ctl("shards", "unassign", "-l", "id=count-002", "--log.level=info")
    done.ok()
    assert "Successfully unassigned shard: id=count-002. Previous status=" in done.stderr, done
    wait_until(
        "count-002 served again after its unassignment",
        lambda: target.member.proc.text().count(served) == times + 1,
        timeout=30,
    )
    wait_until(
        "count-002 is PRIMARY again",
        lambda: (
            column(ctl("shards", "list", "-l", "id=count-002").ok(), "STATUS")
            == {"count-002": "PRIMARY"}
        ),
        timeout=30,
    )


def test_shards_prune_keeps_what_the_hints_need(ctl: Gazctl, target: Target) -> None:
    publish(ctl, LINES, ["prune me not"])
    wait_until("the input is counted", lambda: counts(ctl).get("prune", 0) >= 1, timeout=30)

    dry = ctl("shards", "prune", "-l", "id=split-001", "--dry-run", "--log.level=info")
    dry.ok()
    assert "finished pruning logs for all shards" in dry.stderr, dry
    assert "shardsTotal=1" in dry.stderr, dry

    every = f"id in ({','.join(SHARDS)})"
    done = ctl("shards", "prune", "-l", every, "--log.level=info")
    done.ok()
    assert "finished pruning logs for all shards" in done.stderr, done
    assert f"shardsTotal={len(SHARDS)}" in done.stderr and "failedToRemove=0" in done.stderr, done
    # The live shards' recovery logs were kept: the shards go on counting.
    before = counts(ctl).get("kept", 0)
    publish(ctl, LINES, ["kept"])
    wait_until("counting goes on", lambda: counts(ctl).get("kept", 0) == before + 1, timeout=30)


def test_gazctl_shards_recover_plays_a_count_shards_log_into_its_sqlite_database(
    ctl: Gazctl, target: Target, tmp_path: Path
) -> None:
    publish(ctl, LINES, ["recover recover me"])
    wait_until("the input is counted", lambda: counts(ctl).get("recover", 0) >= 2, timeout=30)
    expected = counts(ctl)

    recovered: dict[str, int] = {}
    for shard in ("count-000", "count-001", "count-002", "count-003"):
        into = tmp_path / shard
        ctl("shards", "recover", f"--id={shard}", f"--dir={into}", timeout=120).ok()
        files = sorted(p.name for p in into.rglob("*"))
        if not files:
            continue  # a shard that has counted nothing yet has written no database
        assert "main.db" in files, files
        with sqlite3.connect(into / "main.db") as db:
            for word, n in db.execute("SELECT word, n FROM counts"):
                assert word not in recovered, f"{word} counted by two shards"
                recovered[word] = n
    # Upstream's player rebuilt, from gazette-trio's recovery logs and hints,
    # the databases whose counts the member published.
    assert recovered == expected and recovered["recover"] >= 2


def test_shard_list_responses_carry_an_unrouted_header_naming_the_member_and_etcd(
    ctl: Gazctl, target: Target
) -> None:
    """As Gazette's consumers answer List: the answering member, no route
    (primary -1), and the etcd cluster, member, term and revision."""
    header = json.loads(ctl("shards", "list", "-o", "json").ok())["header"]
    assert header["process_id"] == {"zone": target.member.zone, "suffix": target.member.suffix}
    assert int(header["route"].get("primary", 0)) == -1, header
    assert not header["route"].get("members"), header
    etcd = header["etcd"]
    for field in ("cluster_id", "member_id", "revision", "raft_term"):
        assert int(etcd.get(field, 0)) > 0, (field, header)
