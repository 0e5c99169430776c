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
from gazette_trio.protocol.validation import ValidationError, validate_journal_name

Flag = pb.JournalSpecFlag


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("a/valid/path/to/a/journal", None),
        ("with=equals/and%25percent", None),
        ("a/journal;meta=data", None),
        ("/leading/slash", r"cannot begin with '/' \(/leading/slash\)"),
        ("trailing/slash/", r"must be a clean path \(trailing/slash/\)"),
        ("extra-middle//slash", r"must be a clean path \(extra-middle//slash\)"),
        ("a/./b", r"must be a clean path"),
        ("not-$%|-a valid token", r"not a valid token \(.*\)"),
        ("", r"invalid length \(0; expected 4 <= "),
        ("zz", r"invalid length \(2; expected 4 <= "),
    ],
)
def test_journal_names(name: str, error: str | None) -> None:
    if error is None:
        validate_journal_name(name)
    else:
        with pytest.raises(ValidationError, match=error):
            validate_journal_name(name)


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


def expect_invalid(spec: pb.JournalSpec, pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        validate_journal_spec(spec)


def test_spec_validation_cases() -> None:
    validate_journal_spec(valid_spec())

    spec = valid_spec()
    spec.name = "/bad/name"
    expect_invalid(spec, r"^Name: cannot begin with '/' \(/bad/name\)$")
    spec = valid_spec()
    spec.name = "a/journal;meta"
    expect_invalid(spec, r"Name cannot have a metadata path segment")
    for replication in (0, 1024):
        spec = valid_spec()
        spec.replication = replication
        expect_invalid(
            spec, rf"invalid Replication \({replication}; expected 1 <= Replication <= 5\)"
        )

    def with_labels(*pairs: tuple[str, str]) -> pb.JournalSpec:
        spec = valid_spec()
        spec.labels = L.label_set(list(pairs))
        return spec

    expect_invalid(
        with_labels(("xxx xxx", "v")), r"Labels\.Labels\[0\]\.Name: not a valid token \(xxx xxx\)"
    )
    expect_invalid(with_labels(("name", "")), r'Labels cannot include label "name"')
    expect_invalid(with_labels(("prefix", "a/")), r'Labels cannot include label "prefix"')
    expect_invalid(
        with_labels((L.MESSAGE_TYPE, "a"), (L.MESSAGE_TYPE, "b")),
        r"Labels: expected single-value Label has multiple values",
    )
    expect_invalid(
        with_labels((L.CONTENT_TYPE, "invalid/content/type")),
        r"Labels: parsing content-type: mime: unexpected content after media subtype",
    )
    expect_invalid(
        with_labels((L.CONTENT_TYPE, "")), r"Labels: parsing content-type: mime: no media type"
    )
    expect_invalid(
        with_labels((L.MESSAGE_SUB_TYPE, "subtype")),
        r"Labels: expected app.gazette.dev/message-type label alongside app.gazette.dev/message-subtype",
    )
    expect_invalid(
        with_labels((L.MESSAGE_SUB_TYPE, "subtype"), (L.MESSAGE_TYPE, "type")),
        r"Labels: expected content-type label alongside app.gazette.dev/message-type",
    )
    validate_journal_spec(
        with_labels((L.MESSAGE_TYPE, "type"), (L.CONTENT_TYPE, L.CONTENT_TYPE_JSON_LINES))
    )

    spec = valid_spec()
    spec.fragment.length = 0
    expect_invalid(spec, r"Fragment: invalid Length \(0; expected 1024 <= length <= 17179869184\)")
    for flags in (4 | 1, 4 | 2, 1 | 2):
        spec = valid_spec()
        spec.flags = flags
        expect_invalid(spec, rf"Flags: invalid combination \({flags}\)")
    spec = valid_spec()
    spec.max_append_rate = -1
    expect_invalid(spec, r"invalid MaxAppendRate \(-1; expected >= 0\)")

    spec = valid_spec()
    spec.fragment.refresh_interval = datetime.timedelta(milliseconds=1)
    expect_invalid(
        spec, r"Fragment: invalid RefreshInterval \(1ms; expected 1s <= interval <= 24h0m0s\)"
    )
    spec.fragment.refresh_interval = datetime.timedelta(hours=25)
    expect_invalid(spec, r"invalid RefreshInterval \(25h0m0s; expected 1s <= interval <= 24h0m0s\)")
    spec = valid_spec()
    spec.fragment.flush_interval = datetime.timedelta(seconds=1)
    expect_invalid(spec, r"Fragment: invalid FlushInterval \(1s; expected >= 1m0s\)")
    spec = valid_spec()
    spec.fragment.compression_codec = pb.CompressionCodec.GZIP_OFFLOAD_DECOMPRESSION
    spec.fragment.stores = ["file:///a/root/"]
    expect_invalid(spec, r"GZIP_OFFLOAD_DECOMPRESSION is incompatible with file:// stores")
    spec = valid_spec()
    spec.fragment.stores = ["s3://bucket/", "invalid"]
    expect_invalid(spec, r"Fragment\.Stores\[1\]: not absolute \(invalid\)")


def test_flags_say_who_may_read_and_write() -> None:
    assert may_read(0) and may_write(0)
    assert may_read(int(Flag.O_RDONLY)) and not may_write(int(Flag.O_RDONLY))
    assert may_write(int(Flag.O_WRONLY)) and not may_read(int(Flag.O_WRONLY))
    assert may_read(int(Flag.O_RDWR)) and may_write(int(Flag.O_RDWR))


def test_new_journal_spec_is_valid_for_gazette() -> None:
    spec = new_journal_spec("clicks/part-000", content_type=L.CONTENT_TYPE_JSON_LINES)
    validate_journal_spec(spec)
    assert L.value_of(spec.labels, L.CONTENT_TYPE) == "application/x-ndjson"


def test_spec_algebra_unions_intersects_and_subtracts_field_by_field() -> None:
    model = valid_spec()
    other = pb.JournalSpec(
        name="a/journal",
        replication=1,
        labels=L.label_set({"aaa": "other"}),
        fragment=pb.JournalSpecFragment(
            length=5678,
            compression_codec=pb.CompressionCodec.NONE,
            stores=["gs://other-bucket/"],
            refresh_interval=datetime.timedelta(hours=10),
            retention=datetime.timedelta(hours=10),
            flush_interval=datetime.timedelta(hours=10),
            path_postfix_template="{{ .Bar }}",
        ),
        flags=int(Flag.O_RDONLY),
        max_append_rate=10_000,
    )
    empty = pb.JournalSpec(name="a/journal")
    assert union_specs(empty, model) == model
    assert union_specs(model, empty) == model
    assert union_specs(other, model) == other
    assert intersect_specs(model, model) == model
    assert intersect_specs(model, other) == empty
    assert subtract_specs(model, model) == empty
    assert subtract_specs(model, other) == model


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
        ("name: a/j\nflags: O_BOGUS\n", r"'O_BOGUS' is not a valid JournalSpec_Flag"),
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
