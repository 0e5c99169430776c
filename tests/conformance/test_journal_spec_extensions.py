"""Upstream: broker/protocol/journal_spec_extensions_test.go (go.gazette.dev/core v0.103.0).

Journal names, JournalSpec validation, desired replication under
suspension, meta-labels, flag YAML and the spec algebra, against
`gazette_trio.protocol.validation`, `gazette_trio.broker.journal_spec`,
`gazette_trio.protocol.labels` and `gazette_trio.broker.journalspace`.

Cases that cannot apply, or apply in part:
- TestSpecValidationCases, `PathPostfixTemplate`: Gazette parses the
  template with Go's text/template and executes it over a zero fragment.
  There is no Go template engine here: an unclosed action is refused with
  Go's wording (the case's `{{ bad template`), other template errors are not
  detected.
- TestSpecValidationCases, `MaxReplication`: Gazette's global bound is a
  package variable the test overrides; ours is the `max_replication`
  argument of `desired_replication`.
- TestFlagYAMLRoundTrip: Gazette marshals the flag alone through yaml.v2;
  ours is the `flags` field of a journalspace spec (`spec_to_dict` and
  `spec_from_dict`), checked with the same values.
"""

from __future__ import annotations

import datetime
import re

import pytest

from gazette_trio.broker.journal_spec import (
    desired_replication,
    intersect_specs,
    subtract_specs,
    union_specs,
    validate_fragment_spec,
    validate_journal_spec,
)
from gazette_trio.broker.journalspace import dump_yaml, spec_from_dict, spec_to_dict
from gazette_trio.protocol import labels as L
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.validation import ValidationError, split_meta, validate_journal_name

UPSTREAM = "broker/protocol/journal_spec_extensions_test.go"
NOT_APPLICABLE: dict[str, str] = {}

Flag = pb.JournalSpecFlag
Level = pb.JournalSpecSuspendLevel


def check(expect: str | None, fn: object, *args: object) -> None:
    assert callable(fn)
    if expect is None:
        fn(*args)
        return
    with pytest.raises(ValidationError) as raised:
        fn(*args)
    assert re.fullmatch(expect, str(raised.value)), f"{raised.value!s} !~ {expect}"


@pytest.mark.parametrize(
    ("journal", "expect"),
    [
        ("a/valid/path/to/a/journal", None),
        ("/leading/slash", r"cannot begin with '/' \(/leading/slash\)"),
        ("trailing/slash/", r"must be a clean path \(trailing/slash/\)"),
        ("extra-middle//slash", r"must be a clean path \(extra-middle//slash\)"),
        ("not-$%|-a valid token", r"not a valid token \(.*\)"),
        ("", r"invalid length \(0; expected 4 <= .*"),
        ("zz", r"invalid length \(2; expected 4 <= .*"),
        # A metadata path segment is allowed, and must be a valid path.
        ("foo/bar;baz/bing", None),
        ("foo/bar/webhook;foo/bar/webhook/http%3A%2F%2Fexample.com%3A9000%2F", None),
        (
            "foo/bar;disallowed#rune",
            r"metadata path segment: not a valid token \(disallowed#rune\)",
        ),
        # After ';' the segment may not be empty.
        (
            "foo/bar;",
            r"metadata path segment: invalid length \(0; expected 1 <= length <= 512\)",
        ),
    ],
)
def test_journal_validation_cases(journal: str, expect: str | None) -> None:
    check(expect, validate_journal_name, journal)


def test_journal_meta_splits() -> None:
    assert split_meta("foo/bar;meta-part") == ("foo/bar", ";meta-part")
    assert split_meta("foo/bar") == ("foo/bar", "")


def model_spec() -> pb.JournalSpec:
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
            path_postfix_template=(
                'date={{ .Spool.FirstAppendTime.Format "2006-01-02" }}'
                '/hour={{ .Spool.FirstAppendTime.Format "15" }}'
            ),
        ),
        flags=Flag.O_RDWR,
        max_append_rate=12345,
    )


def test_spec_validation_cases() -> None:
    spec = model_spec()
    check(None, validate_journal_spec, spec)

    spec.name = "/bad/name"
    check(r"Name: cannot begin with '/' \(/bad/name\)", validate_journal_spec, spec)
    spec.name = "a/journal;disallowed/meta"
    check(
        r"Name cannot have a metadata path segment \(;disallowed/meta; expected no segment\)",
        validate_journal_spec,
        spec,
    )
    spec.name = "a/journal"

    spec.replication = 0
    check(r"invalid Replication \(0; expected 1 <= Replication <= 5\)", validate_journal_spec, spec)
    spec.replication = 1024
    check(r"invalid Replication \(1024; .*", validate_journal_spec, spec)
    spec.replication = 3
    assert desired_replication(spec) == 3

    # Suspension brings the desired replication down.
    spec.suspend = pb.JournalSpecSuspend(level=Level.PARTIAL)
    assert desired_replication(spec) == 1
    spec.suspend.level = Level.FULL
    assert desired_replication(spec) == 0
    spec.suspend.level = Level.NONE
    assert desired_replication(spec) == 3
    # The global bound caps it.
    assert desired_replication(spec, max_replication=1) == 1

    assert spec.labels is not None
    spec.labels.labels[0].name = "xxx xxx"
    check(r"Labels.Labels\[0\].Name: not a valid token \(xxx xxx\)", validate_journal_spec, spec)
    spec.labels.labels[0].name = "name"
    check(r'Labels cannot include label "name"', validate_journal_spec, spec)
    spec.labels.labels[0].value = ""  # refused even when empty
    check(r'Labels cannot include label "name"', validate_journal_spec, spec)
    spec.labels.labels[0].name = "prefix"
    check(r'Labels cannot include label "prefix"', validate_journal_spec, spec)

    for pairs, expect in [
        (
            [(L.MESSAGE_TYPE, "a"), (L.MESSAGE_TYPE, "b")],
            r"Labels: expected single-value Label has multiple values .*",
        ),
        (
            [(L.CONTENT_TYPE, "invalid/content/type")],
            r"Labels: parsing content-type: mime: unexpected content after media subtype",
        ),
        ([(L.CONTENT_TYPE, "")], r"Labels: parsing content-type: mime: no media type"),
        (
            [(L.MESSAGE_SUB_TYPE, "subtype")],
            r"Labels: expected app.gazette.dev/message-type label alongside app.gazette.dev/message-subtype",
        ),
        (
            [(L.MESSAGE_SUB_TYPE, "subtype"), (L.MESSAGE_TYPE, "type")],
            r"Labels: expected content-type label alongside app.gazette.dev/message-type",
        ),
        ([(L.MESSAGE_TYPE, "type"), (L.CONTENT_TYPE, L.CONTENT_TYPE_JSON_LINES)], None),
        (
            [
                (L.MESSAGE_SUB_TYPE, "subtype"),
                (L.MESSAGE_TYPE, "type"),
                (L.CONTENT_TYPE, L.CONTENT_TYPE_JSON_LINES),
            ],
            None,
        ),
    ]:
        spec.labels = L.label_set(pairs)
        check(expect, validate_journal_spec, spec)

    assert spec.fragment is not None
    spec.fragment.length = 0
    check(
        r"Fragment: invalid Length \(0; expected 1024 <= length <= \d+\)",
        validate_journal_spec,
        spec,
    )
    spec.fragment.length = 4096

    for flags in (Flag.O_RDWR | Flag.O_RDONLY, Flag.O_RDWR | Flag.O_WRONLY, 1 | 2):
        spec.flags = int(flags)
        check(r"Flags: invalid combination \(\d\)", validate_journal_spec, spec)
    for flags in (Flag.NOT_SPECIFIED, Flag.O_RDWR, Flag.O_RDONLY, Flag.O_WRONLY):
        spec.flags = flags
        check(None, validate_journal_spec, spec)

    spec.max_append_rate = -1
    check(r"invalid MaxAppendRate \(-1; expected >= 0\)", validate_journal_spec, spec)
    spec.max_append_rate = 0

    # More JournalSpec.Fragment cases.
    f = spec.fragment
    f.length = (1 << 34) + 1
    check(r"invalid Length \(\d+; expected 1024 <= length <= \d+\)", validate_fragment_spec, f)
    f.length = 1024

    f.compression_codec = 9999
    check(r"CompressionCodec: invalid value \(9999\)", validate_fragment_spec, f)
    f.compression_codec = pb.CompressionCodec.GZIP_OFFLOAD_DECOMPRESSION

    f.stores[0] = "file:///a/root/"
    check(
        r"GZIP_OFFLOAD_DECOMPRESSION is incompatible with file:// stores \(file:///a/root/\)",
        validate_fragment_spec,
        f,
    )
    f.compression_codec = pb.CompressionCodec.SNAPPY

    f.refresh_interval = datetime.timedelta(milliseconds=1)
    check(
        r"invalid RefreshInterval \(1ms; expected 1s <= interval <= 24h0m0s\)",
        validate_fragment_spec,
        f,
    )
    f.refresh_interval = datetime.timedelta(hours=25)
    check(
        r"invalid RefreshInterval \(25h0m0s; expected 1s <= interval <= 24h0m0s\)",
        validate_fragment_spec,
        f,
    )
    f.refresh_interval = datetime.timedelta(hours=1)

    f.flush_interval = datetime.timedelta(seconds=1)
    check(r"invalid FlushInterval \(1s; expected >= 1m0s\)", validate_fragment_spec, f)
    f.flush_interval = datetime.timedelta(hours=2)

    f.path_postfix_template = "{{ bad template"
    check(r"PathPostfixTemplate: template: postfix:1: .*", validate_fragment_spec, f)
    f.path_postfix_template = ""
    check(None, validate_journal_spec, spec)  # the template may be empty

    f.stores.append("invalid")
    check(r"Stores\[2\]: not absolute \(invalid\)", validate_fragment_spec, f)
    f.stores = f.stores[:1]

    assert spec.suspend is not None
    spec.suspend.offset = -1
    check(r"Suspend.Offset: invalid Offset \(-1; expected >= 0\)", validate_journal_spec, spec)
    spec.suspend.offset = 1234
    spec.suspend.level = 12345
    check(r"Suspend.Level: invalid Level variant \(12345\)", validate_journal_spec, spec)
    spec.suspend.level = Level.FULL
    check(None, validate_journal_spec, spec)


def test_meta_label_extraction() -> None:
    spec = pb.JournalSpec(name="path/to/my/journal", labels=L.label_set({"hello": "world"}))
    meta = pb.LabelSet(labels=[pb.Label(name="name", value=spec.name)])
    assert L.union(meta, spec.labels) == L.label_set(
        {"name": "path/to/my/journal", "hello": "world"}
    )
    # Matching journals uses exactly that set.
    assert L.matches_journal(
        L.parse_selector("name=path/to/my/journal,hello=world"), spec.name, spec.labels
    )


@pytest.mark.parametrize(
    ("flag", "encoded"),
    [
        (Flag.O_RDONLY, "O_RDONLY"),
        (Flag.O_RDWR, "O_RDWR"),
        (1 | 2 | 32, 35),
    ],
)
def test_flag_yaml_round_trip(flag: int, encoded: object) -> None:
    data = spec_to_dict(pb.JournalSpec(flags=flag))
    assert data["flags"] == encoded
    assert dump_yaml(data) == f"flags: {encoded}\n"
    assert int(spec_from_dict(data).flags) == int(flag)


def test_flag_yaml_round_trip_parsing() -> None:
    assert spec_from_dict({"flags": 1}).flags == Flag.O_RDONLY
    check(
        r'"notAnEnum" is not a valid JournalSpec_Flag \(options are .*\)',
        spec_from_dict,
        {"flags": "notAnEnum"},
    )


def set_model() -> pb.JournalSpec:
    return pb.JournalSpec(
        replication=3,
        labels=L.label_set({"aaa": "val", "bbb": "val", "ccc": "val"}),
        fragment=pb.JournalSpecFragment(
            length=1024,
            compression_codec=pb.CompressionCodec.SNAPPY,
            stores=["s3://bucket/"],
            refresh_interval=datetime.timedelta(minutes=1),
            retention=datetime.timedelta(hours=1),
            flush_interval=datetime.timedelta(hours=1),
            path_postfix_template="{{ .Foo }}",
        ),
        flags=Flag.O_RDWR,
        max_append_rate=1000,
    )


def set_other() -> pb.JournalSpec:
    return pb.JournalSpec(
        replication=1,
        labels=L.label_set({"aaa": "other", "bbb": "other", "ccc": "other"}),
        fragment=pb.JournalSpecFragment(
            length=5678,
            compression_codec=pb.CompressionCodec.NONE,
            stores=["gs://other-bucket/"],
            refresh_interval=datetime.timedelta(hours=10),
            retention=datetime.timedelta(hours=10),
            flush_interval=datetime.timedelta(hours=10),
            path_postfix_template="{{ .Bar }}",
        ),
        flags=Flag.O_RDONLY,
        max_append_rate=10000,
    )


def test_set_operations() -> None:
    model, other, zero = set_model(), set_other(), pb.JournalSpec()

    assert union_specs(zero, model) == model
    assert union_specs(model, zero) == model
    assert union_specs(other, model) == other
    assert union_specs(model, other) == model

    assert intersect_specs(model, model) == model
    assert intersect_specs(model, zero) == zero
    assert intersect_specs(zero, model) == zero
    assert intersect_specs(other, model) == zero
    assert intersect_specs(model, other) == zero

    assert subtract_specs(model, model) == zero
    assert subtract_specs(model, zero) == model
    assert subtract_specs(zero, model) == zero
    assert subtract_specs(other, model) == other
    assert subtract_specs(model, other) == model
