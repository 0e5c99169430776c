"""Gazette labels as tools see them: selectors, validation and set algebra.

Operators pick shards and journals with label selectors written the way
Gazette writes them (`-l "app=wc, env in (prod, qa), !disabled"`). This module
parses and prints that grammar exactly as Gazette's `ParseLabelSelector` and
`LabelSelector.String` do, matches a selector against a label set, validates
label sets (sorted, unique, well-formed tokens), and offers the union,
intersection and subtraction of label sets that shardspace and journalspace
files use to factor common labels out of their members.

Labels are `protocol.Label` messages; a label set is a sorted list of them
(the `labels` of a `protocol.LabelSet`). This module does not know what
carries the labels (a ShardSpec, a JournalSpec); meta-labels such as a shard's
"id" are added by the caller before matching.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from ..protocol import protocol as pb

__all__ = [
    "LabelError",
    "format_selector",
    "intersect_labels",
    "label_set",
    "matches",
    "parse_selector",
    "sorted_labels",
    "subtract_labels",
    "union_labels",
    "validate_label_set",
    "validate_token",
    "values_of",
]

TOKEN_SYMBOLS = "-_+/."
PATH_SYMBOLS = TOKEN_SYMBOLS + "=%"
MIN_LABEL_LEN, MAX_LABEL_LEN = 2, 64
MAX_LABEL_VALUE_LEN = 1024


class LabelError(ValueError):
    """A selector that does not parse, or a label set that is not well formed."""


def validate_token(value: str, lo: int, hi: int, symbols: str = TOKEN_SYMBOLS) -> str | None:
    """Why `value` is not a token of length [lo, hi] (letters, digits, `symbols`), or None."""
    if not lo <= len(value) <= hi:
        return f"invalid length ({len(value)}; expected {lo} <= length <= {hi})"
    for ch in value:
        if not (ch.isalnum() or ch in symbols):
            return f"not a valid token ({value})"
    return None


def label_set(*pairs: tuple[str, str]) -> pb.LabelSet:
    """A `protocol.LabelSet` of (name, value) pairs, sorted and de-duplicated."""
    return pb.LabelSet(labels=sorted_labels(pb.Label(name=n, value=v) for n, v in pairs))


def sorted_labels(labels: Iterable[pb.Label]) -> list[pb.Label]:
    """Labels in Gazette's canonical order (name, then value), duplicates dropped."""
    seen: dict[tuple[str, str], pb.Label] = {}
    for label in labels:
        seen.setdefault((label.name, label.value), label)
    return [pb.Label(name=n, value=v) for n, v in sorted(seen)]


def values_of(labels: Sequence[pb.Label], name: str) -> list[str]:
    """Values of label `name`, in order (empty if absent)."""
    return [label.value for label in labels if label.name == name]


def validate_label_set(labels: Sequence[pb.Label]) -> None:
    """Raise `LabelError` unless the labels are well formed, sorted and unique.

    The message names the index and label at fault, as Gazette's does.
    """
    for i, label in enumerate(labels):
        problem = validate_token(label.name, MIN_LABEL_LEN, MAX_LABEL_LEN)
        if problem:
            raise LabelError(f"labels[{i}].name: {problem}")
        problem = validate_token(label.value, 0, MAX_LABEL_VALUE_LEN, PATH_SYMBOLS)
        if problem:
            raise LabelError(f"labels[{i}].value: {problem}")
        if i == 0:
            continue
        prev = labels[i - 1]
        if prev.name > label.name:
            raise LabelError(
                f"labels not in unique, sorted order "
                f"(index {i}; label name {label.name} <= {prev.name})"
            )
        if prev.name == label.name:
            if prev.value >= label.value:
                raise LabelError(
                    f"labels not in unique, sorted order "
                    f"(index {i}; label {label.name} value {label.value} <= {prev.value})"
                )
            if prev.value == "":
                raise LabelError(
                    f"label has empty & non-empty values "
                    f"(index {i}; label {label.name} value {label.value})"
                )


# --------------------------------------------------------------------------
# Set algebra over sorted label lists, grouped by name


def _groups(labels: Sequence[pb.Label]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(label.name, []).append(label.value)
    return groups


def _ungroup(groups: Iterable[tuple[str, list[str]]]) -> list[pb.Label]:
    return [pb.Label(name=name, value=value) for name, values in groups for value in values]


def union_labels(lhs: Sequence[pb.Label], rhs: Sequence[pb.Label]) -> list[pb.Label]:
    """Labels of either side; where both name a label, the values of `lhs` win."""
    left, right = _groups(lhs), _groups(rhs)
    merged = {**right, **left}
    return _ungroup(sorted(merged.items()))


def intersect_labels(lhs: Sequence[pb.Label], rhs: Sequence[pb.Label]) -> list[pb.Label]:
    """Labels present on both sides with exactly the same values."""
    left, right = _groups(lhs), _groups(rhs)
    return _ungroup((n, v) for n, v in left.items() if right.get(n) == v)


def subtract_labels(lhs: Sequence[pb.Label], rhs: Sequence[pb.Label]) -> list[pb.Label]:
    """Labels of `lhs` not present in `rhs` with exactly the same values."""
    left, right = _groups(lhs), _groups(rhs)
    return _ungroup((n, v) for n, v in left.items() if right.get(n) != v)


# --------------------------------------------------------------------------
# Selectors

_TOKEN = r" ?([\w\-+/.]{2,})"
_COMMA_OR_END = r" ?(?:,|$)"
_PARENTHETICAL = r" ?\(([^)]+)\)"

_EQUAL = re.compile("^" + _TOKEN + " ?=?=" + _TOKEN + _COMMA_OR_END)
_NOT_EQUAL = re.compile("^" + _TOKEN + " ?!=" + _TOKEN + _COMMA_OR_END)
_SET_IN = re.compile("^" + _TOKEN + " in" + _PARENTHETICAL + _COMMA_OR_END)
_SET_NOT_IN = re.compile("^" + _TOKEN + " not ?in" + _PARENTHETICAL + _COMMA_OR_END)
_EXISTS = re.compile("^" + _TOKEN + _COMMA_OR_END)
_NOT_EXISTS = re.compile("^ ?!" + _TOKEN + _COMMA_OR_END)


def _set_parts(name: str, text: str, whole: str) -> list[pb.Label]:
    out = []
    rest = text
    while rest:
        m = _EXISTS.match(rest)
        if m is None:
            raise LabelError(
                f"parsing {whole!r}: could not match {rest!r} to a label selector set expression"
            )
        out.append(pb.Label(name=name, value=m.group(1)))
        rest = rest[m.end() :]
    return out


def parse_selector(text: str) -> pb.LabelSelector:
    """Parse a Gazette label selector string into a `protocol.LabelSelector`.

    Expressions are comma-separated: `name=value` (or `==`), `name!=value`,
    `name in (a, b)`, `name notin (a, b)` (or `not in`), `name` (present with
    any value) and `!name` (absent). An empty string selects everything.
    Raises `LabelError` naming the part that did not parse.
    """
    include: list[pb.Label] = []
    exclude: list[pb.Label] = []
    rest = text
    while rest:
        if m := _EQUAL.match(rest):
            include.append(pb.Label(name=m.group(1), value=m.group(2)))
        elif m := _NOT_EQUAL.match(rest):
            exclude.append(pb.Label(name=m.group(1), value=m.group(2)))
        elif m := _SET_IN.match(rest):
            include.extend(_set_parts(m.group(1), m.group(2), rest))
        elif m := _SET_NOT_IN.match(rest):
            exclude.extend(_set_parts(m.group(1), m.group(2), rest))
        elif m := _EXISTS.match(rest):
            include.append(pb.Label(name=m.group(1), value=""))
        elif m := _NOT_EXISTS.match(rest):
            exclude.append(pb.Label(name=m.group(1), value=""))
        else:
            raise LabelError(f"could not match {rest!r} to a label selector expression")
        rest = rest[m.end() :]

    include.sort(key=lambda label: (label.name, label.value))
    exclude.sort(key=lambda label: (label.name, label.value))
    for what, labels in (("include", include), ("exclude", exclude)):
        try:
            validate_label_set(labels)
        except LabelError as exc:
            raise LabelError(f"selector {text!r}: {what}: {exc}") from None
    return pb.LabelSelector(
        include=pb.LabelSet(labels=include), exclude=pb.LabelSet(labels=exclude)
    )


def _format_side(labels: Sequence[pb.Label], exclude: bool) -> Iterator[str]:
    for name, values in _groups(labels).items():
        if len(values) == 1 and values[0] == "":
            yield f"!{name}" if exclude else name
        elif len(values) == 1:
            yield f"{name}{'!' if exclude else ''}={values[0]}"
        else:
            yield f"{name} {'notin' if exclude else 'in'} ({','.join(values)})"


def format_selector(selector: pb.LabelSelector | None) -> str:
    """The canonical string of a selector, which `parse_selector` reads back."""
    if selector is None:
        return ""
    include = selector.include.labels if selector.include else []
    exclude = selector.exclude.labels if selector.exclude else []
    return ",".join([*_format_side(include, False), *_format_side(exclude, True)])


def _match_side(
    selector: Sequence[pb.Label], labels: Sequence[pb.Label], require_all: bool
) -> bool:
    have = _groups(labels)
    for name, wanted in _groups(selector).items():
        values = have.get(name)
        matched = values is not None and any(w == "" or w in values for w in wanted)
        if matched and not require_all:
            return True
        if not matched and require_all:
            return False
    return require_all


def matches(selector: pb.LabelSelector | None, labels: Sequence[pb.Label]) -> bool:
    """Whether a label set is selected: no exclude label matches, every include does.

    A selector label with an empty value matches the label with any value.
    """
    if selector is None:
        return True
    exclude = selector.exclude.labels if selector.exclude else []
    include = selector.include.labels if selector.include else []
    if _match_side(exclude, labels, require_all=False):
        return False
    return _match_side(include, labels, require_all=True)
