"""Label sets and selectors behave exactly as Gazette's (cases from its test suite)."""

from __future__ import annotations

import pytest

from gazette_trio.protocol import labels as L
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.validation import ValidationError


def ls(*nv: str) -> pb.LabelSet:
    return L.label_set(list(zip(nv[::2], nv[1::2], strict=True)))


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("a-label", "a-value", None),
        ("a|label", "a-value", r"Name: not a valid token \(a\|label\)"),
        ("a-label", "a|value", r"Value: not a valid token \(a\|value\)"),
        ("a", "a-value", r"Name: invalid length \(1; expected 2 <= length <= 64\)"),
        ("a" * 65, "a-value", r"Name: invalid length \(65; expected"),
        ("a-label", "", None),
        ("a-label", "a" * 1025, r"Value: invalid length \(1025; expected"),
        ("ünïcode-näme", "välue", None),
    ],
)
def test_label_validation_follows_gazettes_token_rules(
    name: str, value: str, error: str | None
) -> None:
    if error is None:
        L.validate_label(pb.Label(name=name, value=value))
    else:
        with pytest.raises(ValidationError, match=error):
            L.validate_label(pb.Label(name=name, value=value))


def test_label_sets_must_be_sorted_unique_and_not_mix_empty_with_values() -> None:
    labels = [
        ("bad label", "111"),
        ("aaa", "444"),
        ("aaa", "333"),
        ("aaa", "222"),
        ("ccc", ""),
        ("ccc", ""),
        ("ccc", "555"),
    ]

    def check(expect: str | None) -> None:
        s = pb.LabelSet(labels=[pb.Label(name=n, value=v) for n, v in labels])
        if expect is None:
            L.validate_label_set(s)
        else:
            with pytest.raises(ValidationError, match=expect):
                L.validate_label_set(s)

    check(r"Labels\[0\]\.Name: not a valid token \(bad label\)")
    labels[0] = ("bbb", "111")
    check(r"Labels not in unique, sorted order \(index 1; label name aaa <= bbb\)")
    labels[0], labels[3] = labels[3], labels[0]
    check(r"Labels not in unique, sorted order \(index 2; label aaa value 333 <= 444\)")
    labels[1], labels[2] = labels[2], labels[1]
    check(r"Labels not in unique, sorted order \(index 5; label ccc value  <= \)")
    labels[5] = ("ccc", "444")
    check(r"Label has empty & non-empty values \(index 5; label ccc value 444\)")
    labels[4] = ("ccc", "44")
    check(None)


def test_single_value_labels_may_not_repeat() -> None:
    L.validate_single_value_labels(ls("aaa", "bar", "aaa", "baz", L.CONTENT_TYPE, "a/type"))
    with pytest.raises(
        ValidationError, match=r"multiple values \(index 2; label content-type value other/type\)"
    ):
        L.validate_single_value_labels(
            ls("aaa", "bar", L.CONTENT_TYPE, "a/type", L.CONTENT_TYPE, "other/type")
        )


def test_union_intersection_and_subtraction_work_on_whole_value_groups() -> None:
    assert L.union(
        ls("bbb", "val-1", "bbb", "val-2", "ccc", "val-3"),
        ls("aaa", "val-4", "aaa", "val-5", "bbb", "val-6", "ddd", "val-7"),
    ) == ls(
        "aaa",
        "val-4",
        "aaa",
        "val-5",
        "bbb",
        "val-1",
        "bbb",
        "val-2",
        "ccc",
        "val-3",
        "ddd",
        "val-7",
    )
    lhs = ls(
        "aaa", "val", "bbb", "val-1", "ccc", "val-1", "ccc", "val-2",
        "ddd", "val-1", "ddd", "val-2", "eee", "val", "ggg", "val",
    )  # fmt: skip
    rhs = ls(
        "aaa", "val", "bbb", "val-2", "ccc", "val-1", "ddd", "val-1", "ddd", "val-2",
        "fff", "val", "ggg", "val",
    )  # fmt: skip
    assert L.intersect(lhs, rhs) == ls("aaa", "val", "ddd", "val-1", "ddd", "val-2", "ggg", "val")
    assert L.subtract(lhs, rhs) == ls("bbb", "val-1", "ccc", "val-1", "ccc", "val-2", "eee", "val")


def test_selector_matching() -> None:
    selector = pb.LabelSelector(
        include=ls("inc-1", "a-val", "inc-2", "", "inc-3", "val-1", "inc-3", "val-2"),
        exclude=ls("exc-1", "", "exc-2", "val-3", "exc-2", "val-4"),
    )
    base = ("foo", "bar", "inc-1", "a-val", "inc-2", "any", "inc-3", "val-1")
    cases = [
        ((), False),
        (base, True),
        (("foo", "bar", "inc-1", "a-val", "inc-2", "foo", "inc-3", "val-1"), True),
        (("foo", "bar", "inc-1", "a-val", "inc-2", "any", "inc-3", "val-2"), True),
        (("foo", "bar", "inc-1", "bad-val", "inc-2", "any", "inc-3", "val-1"), False),
        (("foo", "bar", "inc-1", "a-val", "inc-3", "val-1"), False),
        (("foo", "bar", "inc-1", "a-val", "inc-2", "any", "inc-3", "val-other"), False),
        (("exc-1", "any", *base), False),
        (("exc-2", "val-4", *base), False),
        (("exc-2", "val-ok", *base), True),
    ]
    for labels, expect in cases:
        assert L.matches(selector, ls(*labels)) is expect, labels

    exclude_only = pb.LabelSelector(exclude=selector.exclude)
    assert L.matches(exclude_only, ls())
    assert L.matches(exclude_only, ls("exc-2", "val-ok", "foo", "bar"))
    assert not L.matches(exclude_only, ls("exc-2", "val-3", "foo", "bar"))
    assert L.matches(None, ls("anything", "x"))


def test_meta_labels_join_the_spec_labels_when_matching() -> None:
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
    ("text", "include", "exclude"),
    [
        ("foo = bar", ("foo", "bar"), ()),
        ("foo != bar", (), ("foo", "bar")),
        ("foo ", ("foo", ""), ()),
        (" !foo", (), ("foo", "")),
        (" foo in (bing, baz,bar)", ("foo", "bar", "foo", "baz", "foo", "bing"), ()),
        (" foo not in ( pear, apple )", (), ("foo", "apple", "foo", "pear")),
        (
            "foo==bar, baz !=bing ,apple in (fruit, banana)",
            ("apple", "banana", "apple", "fruit", "foo", "bar"),
            ("baz", "bing"),
        ),
        (
            "!foo,baz,bing not in (thing-one, thing-2),!bar,",
            ("baz", ""),
            ("bar", "", "bing", "thing-2", "bing", "thing-one", "foo", ""),
        ),
    ],
)
def test_selector_strings_parse_and_round_trip(
    text: str, include: tuple[str, ...], exclude: tuple[str, ...]
) -> None:
    selector = L.parse_selector(text)
    assert selector == pb.LabelSelector(include=ls(*include), exclude=ls(*exclude))
    assert L.parse_selector(L.format_selector(selector)) == selector


def test_selector_strings_that_do_not_parse_say_where() -> None:
    with pytest.raises(
        ValidationError,
        match=r"could not match 'banana err in \(bar\)' to a label selector expression",
    ):
        L.parse_selector("apple,banana err in (bar)")
    with pytest.raises(
        ValidationError, match=r"parsing 'banana in \(bar,err baz\)': could not match 'err baz'"
    ):
        L.parse_selector("apple,banana in (bar,err baz)")
    with pytest.raises(
        ValidationError,
        match=r"Include: Label has empty & non-empty values \(index 1; label foo value bar\)",
    ):
        L.parse_selector("foo, foo in (bar)")


def test_set_value_add_value_and_remove_keep_canonical_order() -> None:
    s = L.add_value(L.add_value(ls("bb", "3"), "aa", "0"), "bb", "1")
    assert s == ls("aa", "0", "bb", "1", "bb", "3")
    assert L.set_value(s, "bb", "5") == ls("aa", "0", "bb", "5")
    assert L.remove(s, "bb") == ls("aa", "0")
    assert L.values_of(s, "bb") == ["1", "3"] and L.value_of(s, "zz") == ""
