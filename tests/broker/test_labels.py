"""Label rules beyond upstream's own cases (those are ported in
tests/conformance/test_label_extensions.py): journal meta-labels, the
`prefix` meta-label of journal selectors, and our pair/mapping constructors."""

from __future__ import annotations

import pytest

from gazette_trio.protocol import labels as L
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.validation import ValidationError


def ls(*nv: str) -> pb.LabelSet:
    return L.label_set(list(zip(nv[::2], nv[1::2], strict=True)))


def test_label_names_and_values_may_be_unicode_letters_and_numbers() -> None:
    L.validate_label(pb.Label(name="ünïcode-näme", value="välue-٣"))
    with pytest.raises(ValidationError, match=r"Value: not a valid token \(a b\)"):
        L.validate_label(pb.Label(name="ab", value="a b"))


def test_label_set_takes_a_mapping_or_pairs_and_canonicalizes() -> None:
    assert L.label_set({"b": ["2", "1"], "a": "x"}) == ls("a", "x", "b", "1", "b", "2")
    assert L.label_set([("b", "1"), ("a", "x"), ("b", "1")]) == ls("a", "x", "b", "1")
    # A ":prefix" name makes a prefix label, and pairs_of gives it back.
    prefixed = L.label_set([("name:prefix", "a/")])
    assert prefixed.labels == [pb.Label(name="name", value="a/", prefix=True)]
    assert L.pairs_of(prefixed) == [("name:prefix", "a/")]


def test_journals_match_on_their_name_and_directory_prefixes() -> None:
    meta = L.journal_meta_labels("path/to/my/journal")
    assert meta == ls(
        "name", "path/to/my/journal",
        "prefix", "path/", "prefix", "path/to/", "prefix", "path/to/my/",
    )  # fmt: skip
    by_prefix = L.parse_selector("prefix=path/to/")
    assert L.matches(by_prefix, ls("topic", "x"), meta)
    assert not L.matches(by_prefix, ls("topic", "x"))
    # Meta-labels are generic: shards pass theirs the same way.
    assert L.matches(L.parse_selector("id=shard-1"), ls(), ls("id", "shard-1"))


@pytest.mark.parametrize(
    ("selector", "name", "expect"),
    [
        ("name:prefix=path/to/", "path/to/my/journal", True),
        ("name:prefix=path/to", "path/tool", True),
        ("name:prefix=path/to/", "path/tool", False),
        ("prefix=path/to/", "path/to/my/journal", True),
        ("prefix=path/to/", "path/tool", False),
        ("prefix in (a/, path/)", "path/to/x", True),
        ("prefix!=path/", "path/to/x", False),
        ("prefix!=other/", "path/to/x", True),
        ("name=path/to/x", "path/to/x", True),
        ("name!=path/to/x", "path/to/x", False),
        ("name:prefix!=path/", "path/to/x", False),
        ("topic=a, name:prefix=path/", "path/to/x", True),
        ("topic=b, name:prefix=path/", "path/to/x", False),
    ],
)
def test_journal_selectors_match_names_by_prefix_as_gazettes_list(
    selector: str, name: str, expect: bool
) -> None:
    parsed = L.parse_selector(selector)
    assert L.matches_journal(parsed, name, ls("topic", "a")) is expect
    # The prepared form, for matching many journals, agrees.
    assert L.journal_matcher(parsed)(name, ls("topic", "a")) is expect
    assert L.journal_matcher(None)(name, None) is True


def test_the_prefix_meta_label_is_rewritten_to_a_name_prefix_label() -> None:
    rewritten = L.journal_selector(L.parse_selector("prefix in (a/, b/), topic, !prefix"))
    assert rewritten == pb.LabelSelector(
        include=ls("name:prefix", "a/", "name:prefix", "b/", "topic", ""),
        exclude=ls("name:prefix", ""),
    )
    # An excluded empty prefix excludes every journal, as upstream.
    assert not L.matches_journal(L.parse_selector("!prefix"), "a/b/c", ls())
    assert L.journal_selector(None) is None


def test_journal_selectors_need_a_trailing_slash_on_prefix() -> None:
    L.validate_journal_selector(L.parse_selector("prefix=a/b/, name:prefix=a/b"))
    with pytest.raises(
        ValidationError,
        match=r"""Selector.Include.Labels\["prefix"\]: expected trailing '/' \(a/b\)""",
    ):
        L.validate_journal_selector(L.parse_selector("prefix=a/b"))
    with pytest.raises(ValidationError, match=r"""Selector.Exclude.Labels\["prefix"\]"""):
        L.validate_journal_selector(L.parse_selector("prefix!=a"))
    with pytest.raises(ValidationError, match=r"Selector.Include.Labels\[0\].Name"):
        L.validate_journal_selector(pb.LabelSelector(include=ls("bad name", "x")))


def test_prefix_and_exact_labels_of_one_name_print_as_separate_expressions() -> None:
    selector = L.parse_selector("name:prefix in (a/, b/), name=c, !name:prefix")
    text = L.format_selector(selector)
    assert text == "name=c,name:prefix in (a/,b/),!name:prefix"
    assert L.parse_selector(text) == selector
    # The exclude side prints after the include side.
    assert L.format_selector(L.parse_selector("!xx,yy!=2,zz")) == "zz,!xx,yy!=2"


def test_selector_values_may_be_empty_hold_percent_and_not_end_in_newline() -> None:
    assert L.parse_selector("ab=") == pb.LabelSelector(include=ls("ab", ""), exclude=ls())
    assert L.parse_selector("ab=x%20y") == pb.LabelSelector(include=ls("ab", "x%20y"), exclude=ls())
    with pytest.raises(ValidationError, match="could not match"):
        L.parse_selector("ab=b\n")


def test_selector_errors_quote_as_go_does() -> None:
    with pytest.raises(ValidationError, match=r'could not match "ü \\"x\\"\\n" to a label'):
        L.parse_selector('ü "x"\n')
