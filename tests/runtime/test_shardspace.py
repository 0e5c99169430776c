"""Shardspace files: gazctl's YAML, hoisting, push-down, errors.

Promises: a gazctl-written file reads into the complete specs gazctl would
apply; specs printed here (with common settings factored out) read back into
exactly the same specs; a malformed file is refused with the path of the bad
key and what was expected.
"""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import labels as lbl
from gazette_trio.protocol import protocol as pb
from gazette_trio.runtime.shardspace import ShardEntry, ShardSpace, SpecError


def label_set(*pairs: tuple[str, str]) -> pb.LabelSet:
    return lbl.label_set(list(pairs))


GAZCTL_SHARDS = """
common:
  recovery_log_prefix: examples/word-count/recovery
  hint_prefix: /gazette/hints
  hint_backups: 2
  max_txn_duration: 1s
  labels:
  - name: app.gazette.dev/managed-by
    value: gazctl
shards:
- id: count-000
  sources:
  - journal: examples/lines/part-000
  revision: 7
- id: count-001
  sources:
  - journal: examples/lines/part-001
    min_offset: 1024
  hot_standbys: 1
  labels:
  - name: tier
    value: gold
- comment: retired
  delete: true
  id: count-002
"""


def _spec(shard_id: str, journal: str, **kw: object) -> pc.ShardSpec:
    base: dict[str, object] = {
        "id": shard_id,
        "sources": [pc.ShardSpecSource(journal=journal)],
        "recovery_log_prefix": "examples/word-count/recovery",
        "hint_prefix": "/gazette/hints",
        "hint_backups": 2,
        "max_txn_duration": datetime.timedelta(seconds=1),
        "labels": label_set(("app.gazette.dev/managed-by", "gazctl")),
    }
    base.update(kw)
    return pc.ShardSpec(**base)  # type: ignore[arg-type]


def test_gazctl_shardspace_flattens_into_complete_specs() -> None:
    """Common fields fill what each shard leaves unset; labels merge; delete and revision carry."""
    space = ShardSpace.from_yaml(GAZCTL_SHARDS)
    flat = space.flattened()
    assert [e.spec.id for e in flat] == ["count-000", "count-001", "count-002"]
    assert flat[0].spec == _spec("count-000", "examples/lines/part-000")
    assert flat[0].revision == 7
    assert flat[1].spec == _spec(
        "count-001",
        "examples/lines/part-001",
        sources=[pc.ShardSpecSource(journal="examples/lines/part-001", min_offset=1024)],
        hot_standbys=1,
        labels=label_set(("app.gazette.dev/managed-by", "gazctl"), ("tier", "gold")),
    )
    assert flat[2].delete is True
    assert flat[2].comment == "retired"


def test_apply_request_upserts_and_deletes_with_expected_revisions() -> None:
    """The Apply carries each complete spec with the revision the operator saw."""
    request = ShardSpace.from_yaml(GAZCTL_SHARDS).apply_request()
    changes = request.changes
    assert [c.expect_mod_revision for c in changes] == [7, 0, 0]
    assert changes[0].upsert == _spec("count-000", "examples/lines/part-000")
    assert changes[2].delete == "count-002"
    assert changes[2].upsert is None


def test_listed_shards_print_hoisted_and_read_back_identically() -> None:
    """A List prints with shared settings under `common`, and parses back to the same specs."""
    specs = [
        (_spec("count-000", "examples/lines/part-000"), 11),
        (_spec("count-001", "examples/lines/part-001", hot_standbys=1), 12),
    ]
    response = pc.ListResponse(
        shards=[pc.ListResponseShard(spec=s, mod_revision=r) for s, r in specs]
    )
    text = ShardSpace.from_list_response(response).to_yaml()
    assert text.startswith("common:\n  recovery_log_prefix: examples/word-count/recovery\n")
    # Shared values are printed once, in common; the differing one stays with its shard.
    assert text.count("max_txn_duration: 1s") == 1
    assert "  hot_standbys: 1\n  revision: 12\n" in text
    back = ShardSpace.from_yaml(text).flattened()
    assert [(e.spec, e.revision) for e in back] == specs


_token = st.text("abcdefgh-", min_size=4, max_size=8).filter(lambda s: s[0] != "-")
_durations = st.sampled_from(
    [
        None,
        datetime.timedelta(seconds=1),
        datetime.timedelta(milliseconds=250),
        datetime.timedelta(minutes=2),
    ]
)


@st.composite
def _shard_specs(draw: st.DrawFn, shard_id: str) -> pc.ShardSpec:
    journals = sorted(draw(st.sets(_token, min_size=0, max_size=2)))
    labels = draw(st.lists(st.tuples(st.sampled_from(["app", "env", "tier"]), _token), max_size=3))
    return pc.ShardSpec(
        id=shard_id,
        sources=[
            pc.ShardSpecSource(journal=f"j/{j}", min_offset=draw(st.sampled_from([0, 5])))
            for j in journals
        ],
        recovery_log_prefix=draw(st.sampled_from(["", "rec/a", "rec/b"])),
        hint_prefix=draw(st.sampled_from(["", "/hints"])),
        hint_backups=draw(st.integers(0, 2)),
        max_txn_duration=draw(_durations),
        min_txn_duration=draw(_durations),
        disable=draw(st.booleans()),
        hot_standbys=draw(st.integers(0, 2)),
        labels=label_set(*labels),
        disable_wait_for_ack=draw(st.booleans()),
        ring_buffer_size=draw(st.sampled_from([0, 8192])),
        read_channel_size=draw(st.sampled_from([0, 100])),
    )


@st.composite
def _shard_lists(draw: st.DrawFn) -> list[tuple[pc.ShardSpec, int]]:
    count = draw(st.integers(1, 5))
    return [(draw(_shard_specs(f"shard-{i:03d}")), draw(st.integers(0, 99))) for i in range(count)]


@settings(max_examples=60, deadline=None)
@given(_shard_lists())
def test_any_shards_round_trip_through_hoisted_yaml(specs: list[tuple[pc.ShardSpec, int]]) -> None:
    """Whatever the specs, hoist -> YAML -> parse -> push down gives them back exactly."""
    text = ShardSpace.from_specs(specs).to_yaml()
    back = ShardSpace.from_yaml(text).flattened()
    assert [(e.spec, e.revision) for e in back] == specs


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        (
            "shards:\n- id: abcd\n  max_txn_durration: 1s\n",
            "shards[0].max_txn_durration",
            "unknown field",
        ),
        (
            "shards:\n- id: abcd\n  hot_standbys: two\n",
            "shards[0].hot_standbys",
            "expected a non-negative integer, got 'two'",
        ),
        (
            "shards:\n- id: abcd\n  max_txn_duration: 1x\n",
            "shards[0].max_txn_duration",
            'expected a duration like "1s", "500ms", "2m" or "1h30m", got \'1x\'',
        ),
        ("shards:\n- sources: []\n", "shards[0].id", "every shard needs an id"),
        (
            "shards:\n- id: abcd\n- id: abcd\n",
            "shards[1].id",
            "duplicate shard id 'abcd' (also at shards[0])",
        ),
        ("common:\n  id: abcd\n", "common.id", "cannot be common"),
        (
            "shards:\n- id: abcd\n  labels: {a: b}\n",
            "shards[0].labels",
            "expected a list of {name, value} tables",
        ),
        (
            "shards:\n- id: abcd\n  labels:\n  - {name: 'bad name'}\n",
            "shards[0].labels",
            "not a valid token",
        ),
        (
            "shards:\n- id: abcd\n  sources:\n  - journal: a/b\n    offset: 3\n",
            "shards[0].sources[0].offset",
            "unknown field",
        ),
        ("shards:\n- id: abcd\n  delete: maybe\n", "shards[0].delete", "expected true or false"),
        ("shards: {id: x}\n", "shards", "expected a list of shards"),
        ("nope: 1\n", "nope", "unknown field (expected common, shards)"),
    ],
)
def test_bad_shardspace_files_name_the_path(text: str, path: str, message: str) -> None:
    """Each malformed key is reported by its path, with what was expected."""
    with pytest.raises(SpecError) as info:
        ShardSpace.from_yaml(text)
    assert info.value.path == path
    assert message in info.value.message


def test_invalid_yaml_reports_its_line() -> None:
    with pytest.raises(SpecError, match=r"edit.yaml: not valid YAML at line \d+, column \d+"):
        ShardSpace.from_yaml("shards:\n- id: [\n", source="edit.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "ab"}, "Id: invalid length (2; expected 4 <= length <= 512)"),
        ({"max_txn_duration": None}, "invalid MaxTxnDuration"),
        (
            {"hint_prefix": "hints/relative"},
            "HintPrefix is not an absolute, clean, non-directory path",
        ),
        ({"labels": label_set(("id", "x"))}, 'Labels cannot include label "id"'),
        (
            {"sources": [pc.ShardSpecSource(journal="bb/jj"), pc.ShardSpecSource(journal="aa/jj")]},
            "Sources.Journal not in unique, sorted order",
        ),
    ],
)
def test_incomplete_or_invalid_shards_are_named(change: dict[str, object], message: str) -> None:
    """`validate` applies Gazette's ShardSpec rules to each pushed-down shard, naming it."""
    good = ShardSpace(shards=[ShardEntry(_spec("count-000", "examples/lines/part-000"))])
    good.validate()
    bad_spec = _spec("count-000", "examples/lines/part-000", **change)
    bad = ShardSpace(
        shards=[ShardEntry(_spec("count-001", "examples/lines/part-001")), ShardEntry(bad_spec)]
    )
    with pytest.raises(SpecError) as info:
        bad.validate()
    assert info.value.path == "shards[1]"
    assert message in info.value.message
    # A shard being deleted need not be complete.
    ShardSpace(shards=[ShardEntry(bad_spec, revision=3, delete=True)]).validate()
