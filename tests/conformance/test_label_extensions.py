"""Upstream: broker/protocol/label_extensions_test.go (go.gazette.dev/core v0.103.0).

Label, LabelSet and LabelSelector rules, against `gazette_trio.protocol.labels`.
Gazette's `MustLabelSet(name, value, ...)` is `ls(...)` here; names with a
`:prefix` suffix make prefix labels in both.

Cases that cannot apply:
- TestOuterJoin: tests `labelJoin`, a private cursor type of Gazette's
  implementation. Its observable results (union, intersection, subtraction,
  matching and selector strings over grouped names, prefix labels included)
  are the other cases here.
- TestEqualityCases and TestAssign, in part: Go's `Equal`/`Assign` methods are
  generated helpers; our messages are dataclasses compared with `==`. The
  equalities the cases assert are checked with `==` (a prefix label differs
  from an exact one of the same name and value).
"""

from __future__ import annotations

import re

import pytest

from gazette_trio.protocol import labels as L
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.validation import ValidationError

UPSTREAM = "broker/protocol/label_extensions_test.go"
NOT_APPLICABLE = {"TestOuterJoin": "labelJoin is a private cursor of Gazette's implementation"}


def ls(*nv: str) -> pb.LabelSet:
    """Gazette's MustLabelSet: pairs in any order, canonicalized, validated
    (prefix labels allowed, as MustLabelSet allows them)."""
    assert len(nv) % 2 == 0
    out = pb.LabelSet()
    for name, value in zip(nv[::2], nv[1::2], strict=True):
        out = L.add_value(out, name, value)
    L.validate_label_set(out, allow_prefix=True)
    return out


def check(error: str | None, fn: object, *args: object) -> None:
    """Gazette's `c.Check(err, gc.ErrorMatches, expect)`: the whole message
    matches. (Where upstream's pattern has an unescaped `|` meant literally,
    ours escapes it: gocheck anchors `^...$` without a group, so upstream's
    alternation matched a prefix only.)"""
    assert callable(fn)
    if error is None:
        fn(*args)
        return
    with pytest.raises(ValidationError) as raised:
        fn(*args)
    assert re.fullmatch(error, str(raised.value)), f"{raised.value!s} !~ {error}"


@pytest.mark.parametrize(
    ("name", "value", "expect"),
    [
        ("a-label", "a-value", None),
        ("a/label", "a%20value", None),
        ("a|label", "a-value", r"Name: not a valid token \(a\|label\)"),
        ("a-label", "a|value", r"Value: not a valid token \(a\|value\)"),
        ("a", "a-value", r"Name: invalid length \(1; expected 2 <= length <= 64\)"),
        ("a" * 65, "a-value", r"Name: invalid length \(65; expected .*"),
        ("a-label", "", None),
        ("a-label", "a" * 1025, r"Value: invalid length \(1025; expected .*"),
        ("a-label:prefix", "a-value", r"Name: not a valid token \(a-label:prefix\)"),
    ],
)
def test_label_validation_cases(name: str, value: str, expect: str | None) -> None:
    check(expect, L.validate_label, pb.Label(name=name, value=value))


def test_label_validation_cases_single_value_labels() -> None:
    L.validate_single_value_labels(ls("aaa", "bar", "aaa", "baz", L.CONTENT_TYPE, "a/type"))
    check(
        r"expected single-value Label has multiple values \(index 2; label content-type value other/type\)",
        L.validate_single_value_labels,
        ls("aaa", "bar", L.CONTENT_TYPE, "a/type", L.CONTENT_TYPE, "other/type"),
    )
    check(
        r"expected single-value Label has multiple values \(index 1; label app.gazette.dev/instance value b\)",
        L.validate_single_value_labels,
        ls(L.INSTANCE, "a", L.INSTANCE, "b", "other", "c"),
    )


def test_set_validation_cases() -> None:
    labels = [
        pb.Label(name="bad label", value="111"),
        pb.Label(name="aaa", value="444"),
        pb.Label(name="aaa", value="333"),
        pb.Label(name="aaa", value="222"),
        pb.Label(name="ccc", value=""),
        pb.Label(name="ccc", value=""),
        pb.Label(name="ccc", value="555"),
        pb.Label(name="ddd", value="666", prefix=True),
    ]
    s = pb.LabelSet(labels=labels)

    check(r"Labels\[0\].Name: not a valid token \(bad label\)", L.validate_label_set, s)
    labels[0].name = "bbb"
    check(
        r"Labels not in unique, sorted order \(index 1; label name aaa <= bbb\)",
        L.validate_label_set,
        s,
    )
    labels[0], labels[3] = labels[3], labels[0]
    check(
        r"Labels not in unique, sorted order \(index 2; label aaa value 333 <= 444\)",
        L.validate_label_set,
        s,
    )
    labels[1], labels[2] = labels[2], labels[1]
    check(
        r"Labels not in unique, sorted order \(index 5; label ccc value  <= \)",
        L.validate_label_set,
        s,
    )
    labels[5].value = "444"
    check(
        r"Label has empty & non-empty values \(index 5; label ccc value 444\)",
        L.validate_label_set,
        s,
    )
    labels[4].value = "44"
    check(r"Labels\[7\]: Prefix may not be set outside of a LabelSelector", L.validate_label_set, s)
    labels[7].prefix = False
    check(None, L.validate_label_set, s)


def test_equality_cases() -> None:
    lhs = ls("one", "1", "three", "3")
    rhs = ls("one", "1", "two:prefix", "pre/")
    assert lhs != rhs
    rhs = L.add_value(rhs, "three", "3")
    assert lhs != rhs
    lhs = L.add_value(lhs, "two:prefix", "pre/")
    assert lhs == rhs
    assert lhs == pb.LabelSet(
        labels=[
            pb.Label(name="one", value="1"),
            pb.Label(name="three", value="3"),
            pb.Label(name="two", value="pre/", prefix=True),
        ]
    )
    rhs = L.add_value(rhs, "four", "4")
    assert lhs != rhs
    # An exact label is not the prefix label of the same name and value.
    assert ls("two", "pre/") != ls("two:prefix", "pre/")


def test_assign() -> None:
    # Assign(nil) empties a set; Assign(&other) copies it.
    other = ls("one", "", "two", "")
    lhs = ls("name", "value")
    assert lhs != other
    lhs = pb.LabelSet(labels=list(other.labels))
    assert lhs == other


@pytest.mark.parametrize(
    ("name", "values", "value"),
    [
        ("aa", [], ""),
        ("aaa", ["222", "333", "444"], "222"),
        ("bbb", [], ""),
        ("ccc", [""], ""),
        ("ddd", [], ""),
        ("DDDD", ["111"], "111"),
        ("eee", [], ""),
        ("ff", ["555"], "555"),
    ],
)
def test_values_of_cases(name: str, values: list[str], value: str) -> None:
    s = pb.LabelSet(
        labels=[
            pb.Label(name="DDDD", value="111"),
            pb.Label(name="aaa", value="222"),
            pb.Label(name="aaa", value="333"),
            pb.Label(name="aaa", value="444"),
            pb.Label(name="ccc", value=""),
            pb.Label(name="ff", value="555"),
        ]
    )
    L.validate_label_set(s)
    assert L.values_of(s, name) == values
    assert L.value_of(s, name) == value


def test_set_add_and_remove() -> None:
    s = pb.LabelSet()
    s = L.add_value(s, "bb", "3")  # insert into empty
    s = L.add_value(s, "aa", "0")  # at the beginning
    s = L.add_value(s, "bb", "1")  # in the middle
    s = L.add_value(s, "aa", "2")  # in the middle
    s = L.add_value(s, "bb", "3")  # repeated
    s = L.add_value(s, "bb", "4")  # at the end
    assert s == ls("aa", "0", "aa", "2", "bb", "1", "bb", "3", "bb", "4")

    s = L.set_value(s, "bb:prefix", "5")  # replace at the end
    s = L.set_value(s, "cc", "6")  # insert at the end
    s = L.set_value(s, "00", "6")  # insert at the beginning
    assert s == ls("00", "6", "aa", "0", "aa", "2", "bb:prefix", "5", "cc", "6")

    s = L.set_value(s, "00", "7")  # replace at the beginning
    s = L.set_value(s, "aa", "8")  # replace in the middle
    assert s == ls("00", "7", "aa", "8", "bb:prefix", "5", "cc", "6")

    s = L.add_value(s, "bb", "9")
    s = L.add_value(s, "00", "00")
    s = L.remove(s, "bb")  # from the middle
    s = L.remove(s, "bb")  # again: not found
    assert s == ls("00", "00", "00", "7", "aa", "8", "cc", "6")

    s = L.remove(s, "0")  # not found, before the beginning
    s = L.remove(s, "00")  # from the beginning
    assert s == ls("aa", "8", "cc", "6")
    s = L.remove(s, "dd")  # not found, past the end
    s = L.remove(s, "cc")  # from the end
    assert s == ls("aa", "8")
    s = L.remove(s, "aa")
    assert s == pb.LabelSet(labels=[])


def test_union() -> None:
    assert L.union(
        ls("bbb", "val-1", "bbb", "val-2", "ccc", "val-3"),
        ls("aaa", "val-4", "aaa", "val-5", "bbb", "val-6", "ddd", "val-7"),
    ) == ls(
        "aaa", "val-4", "aaa", "val-5",
        "bbb", "val-1", "bbb", "val-2",  # lhs's values of bbb are kept
        "ccc", "val-3", "ddd", "val-7",
    )  # fmt: skip


LHS = (
    "aaa", "val",  # matched
    "bbb", "val-1",  # differs on value
    "ccc", "val-1", "ccc", "val-2",  # a value only on lhs
    "ddd", "val-1", "ddd", "val-2",  # matched
    "eee", "val",  # only on lhs
    "ggg", "val",  # matched
)  # fmt: skip
RHS = (
    "aaa", "val", "bbb", "val-2", "ccc", "val-1", "ddd", "val-1", "ddd", "val-2",
    "fff", "val",  # only on rhs
    "ggg", "val",
)  # fmt: skip


def test_intersection() -> None:
    assert L.intersect(ls(*LHS), ls(*RHS)) == ls(
        "aaa", "val", "ddd", "val-1", "ddd", "val-2", "ggg", "val"
    )  # fmt: skip


def test_subtraction() -> None:
    assert L.subtract(ls(*LHS), ls(*RHS)) == ls(
        "bbb", "val-1", "ccc", "val-1", "ccc", "val-2", "eee", "val"
    )  # fmt: skip


def test_selector_validation_cases() -> None:
    selector = pb.LabelSelector(
        include=pb.LabelSet(
            labels=[
                pb.Label(name="include", value="a-value"),
                pb.Label(name="prefix-thing", value="prefix/", prefix=True),
            ]
        ),
        exclude=pb.LabelSet(labels=[pb.Label(name="exclude", value="other-value")]),
    )
    check(None, L.validate_selector, selector)

    selector.include.labels[0].name = "bad label"
    check(
        r"Include.Labels\[0\].Name: not a valid token \(bad label\)", L.validate_selector, selector
    )
    selector.include.labels[0].name = "include"

    selector.exclude.labels[0].name = "bad label"
    check(
        r"Exclude.Labels\[0\].Name: not a valid token \(bad label\)", L.validate_selector, selector
    )


SELECTOR = pb.LabelSelector(
    include=ls("inc-1:prefix", "a-val/", "inc-2", "", "inc-3", "val-1", "inc-3", "val-2"),
    exclude=ls("exc-1", "", "exc-2", "val-3", "exc-2", "val-4"),
)


@pytest.mark.parametrize(
    ("labels", "expect"),
    [
        ((), False),
        (("foo", "bar", "inc-1", "a-val/a/1", "inc-2", "any", "inc-3", "val-1"), True),
        # Invariant to inc-2's value.
        (("foo", "bar", "inc-1", "a-val/b/2", "inc-2", "foo", "inc-3", "val-1"), True),
        # The other value of inc-3.
        (("foo", "bar", "inc-1", "a-val/c/3", "inc-2", "any", "inc-3", "val-2"), True),
        # inc-1 does not match its prefix.
        (("foo", "bar", "inc-1", "bad-val/4", "inc-2", "any", "inc-3", "val-1"), False),
        # inc-2 is missing.
        (("foo", "bar", "inc-1", "a-val/5", "inc-3", "val-1"), False),
        # inc-3 does not match.
        (("foo", "bar", "inc-1", "a-val/6", "inc-2", "any", "inc-3", "val-other"), False),
        # exc-1 matches.
        (
            ("exc-1", "any", "foo", "bar", "inc-1", "a-val/a/7", "inc-2", "any", "inc-3", "val-1"),
            False,
        ),
        # exc-2 matches.
        (
            ("exc-2", "val-4", "foo", "bar", "inc-1", "a-val/8", "inc-2", "any", "inc-3", "val-1"),
            False,
        ),
        # exc-2 does not match.
        (
            (
                "exc-2",
                "val-ok",
                "foo",
                "bar",
                "inc-1",
                "a-val/9/9",
                "inc-2",
                "any",
                "inc-3",
                "val-1",
            ),
            True,
        ),
    ],
)
def test_selector_matching_cases(labels: tuple[str, ...], expect: bool) -> None:
    assert L.matches(SELECTOR, ls(*labels)) is expect


def test_selector_matching_cases_exclude_only() -> None:
    selector = pb.LabelSelector(exclude=SELECTOR.exclude)
    assert L.matches(selector, ls()) is True
    assert L.matches(selector, ls("foo", "bar")) is True
    assert L.matches(selector, ls("exc-2", "val-ok", "foo", "bar")) is True
    assert L.matches(selector, ls("exc-2", "val-3", "foo", "bar")) is False
    assert L.matches(selector, ls("exc-1", "any", "foo", "bar")) is False


@pytest.mark.parametrize(
    ("text", "include", "exclude"),
    [
        ("foo = bar", ("foo", "bar"), ()),
        ("foo:prefix =bar", ("foo:prefix", "bar"), ()),
        ("foo != bar", (), ("foo", "bar")),
        ("foo ", ("foo", ""), ()),
        (" !foo", (), ("foo", "")),
        (" foo in (bing, baz,bar)", ("foo", "bar", "foo", "baz", "foo", "bing"), ()),
        (" foo not in ( pear, apple )", (), ("foo", "apple", "foo", "pear")),
        (
            "foo==bar, baz !=bing ,apple:prefix in (fruit, banana)",
            ("apple:prefix", "banana", "apple:prefix", "fruit", "foo", "bar"),
            ("baz", "bing"),
        ),
        (
            "!foo,baz,bing:prefix not in (thing-one, thing-2),!bar,",
            ("baz", ""),
            ("bar", "", "bing:prefix", "thing-2", "bing:prefix", "thing-one", "foo", ""),
        ),
        # Label values may include '='.
        (
            "foo = ba=ar, baz=bi=ngo,exc!=who=ops",
            ("foo", "ba=ar", "baz", "bi=ngo"),
            ("exc", "who=ops"),
        ),
        (
            "foo in (bi=ng,ba=ar), exc notin (who=ops,oth=er)",
            ("foo", "bi=ng", "foo", "ba=ar"),
            ("exc", "who=ops", "exc", "oth=er"),
        ),
    ],
)
def test_selector_parsing_cases(
    text: str, include: tuple[str, ...], exclude: tuple[str, ...]
) -> None:
    selector = L.parse_selector(text)
    assert selector == pb.LabelSelector(include=ls(*include), exclude=ls(*exclude))
    # Round-trips through its string.
    assert L.parse_selector(L.format_selector(selector)) == selector


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (
            "apple,banana err in (bar)",
            r'could not match "banana err in \(bar\)" to a label selector expression',
        ),
        (
            "apple,banana in (bar,err baz)",
            r'parsing "banana in \(bar,err baz\)": could not match "err baz" to a label selector set expression',
        ),
        # '=' is not allowed in a label name.
        (
            "ban=ana in (bar)",
            r'could not match "ban=ana in \(bar\)" to a label selector expression',
        ),
        # The parsed selector is validated.
        (
            "foo, foo in (bar)",
            r"Include: Label has empty & non-empty values \(index 1; label foo value bar\)",
        ),
    ],
)
def test_selector_parsing_cases_errors(text: str, expect: str) -> None:
    check(expect, L.parse_selector, text)
