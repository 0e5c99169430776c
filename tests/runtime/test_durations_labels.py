"""Go durations and Gazette label selectors, as gazctl writes and reads them.

The cases mirror Gazette's own tests (`time.ParseDuration`, `Duration.String`,
`ParseLabelSelector`, `LabelSelector.String`, `LabelSelector.Matches`), so a
selector or duration typed for gazctl means the same thing here.
"""

from __future__ import annotations

import datetime

import pytest

from gazette_trio.protocol import protocol as pb
from gazette_trio.runtime.durations import DurationError, format_duration, parse_duration
from gazette_trio.runtime.labels import (
    LabelError,
    format_selector,
    intersect_labels,
    label_set,
    matches,
    parse_selector,
    subtract_labels,
    union_labels,
    validate_label_set,
)

td = datetime.timedelta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1s", td(seconds=1)),
        ("500ms", td(milliseconds=500)),
        ("2m", td(minutes=2)),
        ("1h30m", td(hours=1, minutes=30)),
        ("1.5h", td(hours=1, minutes=30)),
        (".5s", td(milliseconds=500)),
        ("250us", td(microseconds=250)),
        ("250µs", td(microseconds=250)),
        ("0", td(0)),
        ("-1m", td(minutes=-1)),
        ("1m0s", td(minutes=1)),
    ],
)
def test_go_duration_strings_parse(text: str, expected: datetime.timedelta) -> None:
    """Every form Go's time.ParseDuration accepts parses to the same span."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1x", "s", "1s2", "ten seconds", "1 s"])
def test_malformed_durations_are_rejected_with_the_expected_form(text: str) -> None:
    """A malformed duration says what it got and what a duration looks like."""
    with pytest.raises(DurationError, match=r'expected a duration like "1s"'):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (td(0), "0s"),
        (td(seconds=1), "1s"),
        (td(milliseconds=500), "500ms"),
        (td(milliseconds=1500), "1.5s"),
        (td(minutes=1, seconds=30), "1m30s"),
        (td(hours=1), "1h0m0s"),
        (td(microseconds=2), "2µs"),
        (td(minutes=-2), "-2m0s"),
    ],
)
def test_durations_print_like_go(value: datetime.timedelta, text: str) -> None:
    """Printed durations match Go's Duration.String and parse back."""
    assert format_duration(value) == text
    assert parse_duration(text) == value


def _sel(include: list[tuple[str, str]], exclude: list[tuple[str, str]]) -> pb.LabelSelector:
    return pb.LabelSelector(include=label_set(*include), exclude=label_set(*exclude))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo = bar", _sel([("foo", "bar")], [])),
        ("foo != bar", _sel([], [("foo", "bar")])),
        ("foo ", _sel([("foo", "")], [])),
        (" !foo", _sel([], [("foo", "")])),
        (" foo in (bing, baz,bar)", _sel([("foo", "bar"), ("foo", "baz"), ("foo", "bing")], [])),
        (" foo not in ( pear, apple )", _sel([], [("foo", "apple"), ("foo", "pear")])),
        (
            "foo==bar, baz !=bing ,apple in (fruit, banana)",
            _sel([("apple", "banana"), ("apple", "fruit"), ("foo", "bar")], [("baz", "bing")]),
        ),
        (
            "!foo,baz,bing not in (thing-one, thing-2),!bar,",
            _sel(
                [("baz", "")],
                [("bar", ""), ("bing", "thing-2"), ("bing", "thing-one"), ("foo", "")],
            ),
        ),
        ("", _sel([], [])),
    ],
)
def test_selectors_parse_as_gazette_parses_them(text: str, expected: pb.LabelSelector) -> None:
    """Gazette's selector grammar, spacing variants included, and a canonical round trip."""
    parsed = parse_selector(text)
    assert parsed == expected
    assert parse_selector(format_selector(parsed)) == parsed


def test_selector_canonical_string() -> None:
    """The canonical string groups values and puts includes before excludes."""
    sel = parse_selector("env in (qa,prod), app=wc, !legacy, tier notin (a1,b2)")
    assert format_selector(sel) == "app=wc,env in (prod,qa),!legacy,tier notin (a1,b2)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apple,banana err in (bar)", "could not match 'banana err in (bar)'"),
        ("apple,banana in (bar,err baz)", "could not match 'err baz' to a label selector set"),
        ("foo, foo in (bar)", "label has empty & non-empty values"),
        ("x=y", "could not match 'x=y'"),
    ],
)
def test_bad_selectors_name_the_part_that_does_not_parse(text: str, message: str) -> None:
    """Errors quote the unparsed remainder, as gazctl's do."""
    with pytest.raises(LabelError) as info:
        parse_selector(text)
    assert message in str(info.value)


def test_selector_matching() -> None:
    """Includes must all match (empty value: any value); any matched exclude rejects."""
    sel = parse_selector(
        "inc-1=a-val, inc-2, inc-3 in (val-1, val-2), !exc-1, exc-2 notin (v3, v4)"
    )

    def m(*pairs: tuple[str, str]) -> bool:
        return matches(sel, label_set(*pairs).labels)

    base = [("inc-1", "a-val"), ("inc-2", "any"), ("inc-3", "val-1")]
    assert m(*base)
    assert m(("foo", "bar"), ("inc-1", "a-val"), ("inc-2", "x"), ("inc-3", "val-2"))
    assert not m()
    assert not m(("inc-1", "bad"), *base[1:])
    assert not m(*base[:1], *base[2:])
    assert not m(*base, ("exc-1", "whatever"))
    assert not m(*base, ("exc-2", "v4"))
    assert m(*base, ("exc-2", "ok"))
    assert matches(None, [])
    assert matches(parse_selector("!gone"), [])


def test_label_set_algebra() -> None:
    """Union prefers the left side's values; intersect/subtract compare whole value lists."""
    lhs = label_set(
        ("aaa", "val"), ("bbb", "val-1"), ("ccc", "val-1"), ("ccc", "val-2"), ("eee", "v")
    )
    rhs = label_set(("aaa", "val"), ("bbb", "val-2"), ("ccc", "val-1"), ("fff", "v"))
    assert (
        union_labels(lhs.labels, rhs.labels)
        == label_set(
            ("aaa", "val"),
            ("bbb", "val-1"),
            ("ccc", "val-1"),
            ("ccc", "val-2"),
            ("eee", "v"),
            ("fff", "v"),
        ).labels
    )
    assert intersect_labels(lhs.labels, rhs.labels) == label_set(("aaa", "val")).labels
    assert (
        subtract_labels(lhs.labels, rhs.labels)
        == label_set(("bbb", "val-1"), ("ccc", "val-1"), ("ccc", "val-2"), ("eee", "v")).labels
    )


def test_label_set_validation_names_the_index() -> None:
    """Malformed or unsorted label sets are rejected with the index at fault."""
    with pytest.raises(LabelError, match=r"labels\[0\]\.name: not a valid token"):
        validate_label_set([pb.Label(name="bad label", value="x")])
    with pytest.raises(LabelError, match="index 1; label name aaa <= bbb"):
        validate_label_set([pb.Label(name="bbb"), pb.Label(name="aaa")])
    with pytest.raises(LabelError, match="empty & non-empty"):
        validate_label_set([pb.Label(name="ccc"), pb.Label(name="ccc", value="444")])
