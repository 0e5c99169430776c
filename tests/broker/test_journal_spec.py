"""JournalSpec validation worded as Gazette's, and journalspace YAML trees as gazctl's."""

from __future__ import annotations

import datetime

import pytest

from gazette_trio.broker.journal_spec import (
    intersect_specs,
    may_read,
    may_write,
    new_journal_spec,
    subtract_specs,
    union_specs,
    validate_journal_spec,
)
from gazette_trio.broker.journalspace import (
    changes_from_yaml,
    dump_yaml,
    spec_from_dict,
    tree_from_journals,
)
from gazette_trio.protocol import labels as L
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.validation import ValidationError

Flag = pb.JournalSpecFlag


def valid_spec() -> pb.JournalSpec:
    return pb.JournalSpec(
        name="a/journal",
        replication=3,
        labels=L.label_set({"aaa": "bbb"}),
        fragment=pb.JournalSpecFragment(
            length=1 << 18,
            compression_codec=pb.CompressionCodec.GZIP,
            stores=["s3://bucket/path/", "gs://other-bucket/path/"],
            refresh_interval=datetime.timedelta(minutes=5),
            retention=datetime.timedelta(days=365),
        ),
        flags=int(Flag.O_RDWR),
        max_append_rate=12345,
    )


def test_flags_say_who_may_read_and_write() -> None:
    assert may_read(0) and may_write(0)
    assert may_read(int(Flag.O_RDONLY)) and not may_write(int(Flag.O_RDONLY))
    assert may_write(int(Flag.O_WRONLY)) and not may_read(int(Flag.O_WRONLY))
    assert may_read(int(Flag.O_RDWR)) and may_write(int(Flag.O_RDWR))


def test_new_journal_spec_is_valid_for_gazette() -> None:
    spec = new_journal_spec("clicks/part-000", content_type=L.CONTENT_TYPE_JSON_LINES)
    validate_journal_spec(spec)
    assert L.value_of(spec.labels, L.CONTENT_TYPE) == "application/x-ndjson"


def test_suspension_survives_union_and_subtraction_but_is_never_shared() -> None:
    suspended = valid_spec()
    suspended.suspend = pb.JournalSpecSuspend(level=pb.JournalSpecSuspendLevel.PARTIAL, offset=9)
    defaults = pb.JournalSpec(replication=3)
    # A declared spec re-applied over defaults keeps its suspension...
    assert union_specs(suspended, defaults).suspend == suspended.suspend
    assert subtract_specs(suspended, defaults).suspend == suspended.suspend
    # ...a hoisted parent never carries one...
    assert intersect_specs(suspended, suspended).suspend is None
    # ...and the result is a copy, not the same message.
    union = union_specs(suspended, defaults)
    assert union.suspend is not None
    union.suspend.offset = 10
    assert suspended.suspend.offset == 9


JOURNALSPACE = """
name: examples/
replication: 1
labels:
- name: content-type
  value: application/x-ndjson
fragment:
  length: 4194304
  compression_codec: NONE
  refresh_interval: 1m0s
flags: O_RDWR
children:
- name: examples/clicks
- name: examples/old
  delete: true
  revision: 7
- name: examples/views
  revision: 12
  labels:
  - name: app.gazette.dev/tag
    value: demo
"""


def test_a_journalspace_tree_flattens_into_apply_changes() -> None:
    clicks, old, views = changes_from_yaml(JOURNALSPACE)
    assert clicks.expect_mod_revision == 0 and clicks.upsert is not None
    assert clicks.upsert.name == "examples/clicks"
    assert clicks.upsert.replication == 1 and clicks.upsert.flags == int(Flag.O_RDWR)
    assert clicks.upsert.fragment.refresh_interval == datetime.timedelta(minutes=1)
    validate_journal_spec(clicks.upsert)
    assert views.expect_mod_revision == 12
    assert L.pairs_of(views.upsert.labels) == [  # type: ignore[union-attr]
        ("app.gazette.dev/tag", "demo"),
        ("content-type", "application/x-ndjson"),
    ]
    assert (old.delete, old.expect_mod_revision, old.upsert) == ("examples/old", 7, None)


def test_listed_journals_hoist_into_a_tree_that_applies_back_to_the_same_specs() -> None:
    specs = [c.upsert for c in changes_from_yaml(JOURNALSPACE) if c.upsert is not None]
    listed = [pb.ListResponseJournal(spec=s, mod_revision=3) for s in specs]
    text = dump_yaml(tree_from_journals(listed).to_dict())
    assert text.startswith("name: examples/\nreplication: 1\n")
    assert "revision: 3" in text
    again = changes_from_yaml(text)
    assert [c.upsert for c in again] == specs
    assert {c.expect_mod_revision for c in again} == {3}


def test_a_listed_suspension_survives_an_edit_and_re_apply() -> None:
    # gazctl journals edit lists specs, the operator edits, and the specs are
    # applied back: a journal's suspension (and resume offset) must ride along.
    specs = [c.upsert for c in changes_from_yaml(JOURNALSPACE) if c.upsert is not None]
    specs[0].suspend = pb.JournalSpecSuspend(level=pb.JournalSpecSuspendLevel.PARTIAL, offset=42)
    listed = [pb.ListResponseJournal(spec=s, mod_revision=3) for s in specs]
    text = dump_yaml(tree_from_journals(listed).to_dict())
    assert "suspend:\n" in text and "level: PARTIAL" in text and "offset: 42" in text
    assert [c.upsert for c in changes_from_yaml(text)] == specs


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("name: a/\nchildren: []\n", r"^a/: expected one or more Children$"),
        ("name: a/b\nchildren:\n- name: a/b/c\n", r"expected no Children with non-directory Node"),
        (
            "name: a/\nchildren:\n- name: b/c\n",
            r"expected parent Name to prefix child \(a/ vs b/c\)",
        ),
        (
            "name: a/\nchildren:\n- name: a/d\n- name: a/c\n",
            r"expected Children to be ordered \(ind 1; a/d vs a/c\)",
        ),
        ("name: a/j\nreplicas: 3\n", r"unknown field\(s\) replicas"),
        ("name: a/j\nflags: O_BOGUS\n", r'"O_BOGUS" is not a valid JournalSpec_Flag'),
        (
            "name: a/j\nsuspend: {level: HALF}\n",
            r'"HALF" is not a valid JournalSpec_Suspend_Level',
        ),
        (
            "name: a/j\nfragment: {refresh_interval: soon}\n",
            r"fragment.refresh_interval: invalid duration 'soon'",
        ),
    ],
)
def test_malformed_journalspace_files_are_rejected_naming_the_problem(
    text: str, error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        changes_from_yaml(text)


def test_spec_from_dict_reads_integer_flags_and_codec_names() -> None:
    spec = spec_from_dict({"name": "a/j", "flags": 1, "fragment": {"compression_codec": "SNAPPY"}})
    assert spec.flags == 1
    assert spec.fragment.compression_codec == pb.CompressionCodec.SNAPPY
