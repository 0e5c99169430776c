"""Label sets and label selectors, with Gazette's rules for matching them.

Journals and shards carry a `LabelSet`: (name, value) pairs kept sorted by
name then value, where a name may repeat with distinct values. A
`LabelSelector` picks specs by their labels: every `include` label must match
(a selector value of "" matches any value of that name) and no `exclude`
label may match. Matching is against the spec's labels joined with
*meta-labels* the spec does not store: journals have `name` (the journal
name) and `prefix` (each directory prefix of the name, with its trailing
slash); shards have `id`.

This module owns the pure functions over those messages: validation,
construction, union/intersection/subtraction (used by journalspace YAML
trees and by journal registers), matching, and the selector string syntax
(`"app=word-count, topic in (a, b), !deprecated"`). It is generic over which
meta-labels a kind of spec has: callers pass them to `matches`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from . import protocol as pb
from .validation import TOKEN_SYMBOLS, ValidationError, validate_token

MIN_LABEL_LEN = 2
MAX_LABEL_LEN = 64
MAX_LABEL_VALUE_LEN = 1024

CONTENT_TYPE = "content-type"
MESSAGE_TYPE = "app.gazette.dev/message-type"
MESSAGE_SUB_TYPE = "app.gazette.dev/message-subtype"
TAG = "app.gazette.dev/tag"
MANAGED_BY = "app.gazette.dev/managed-by"
INSTANCE = "app.gazette.dev/instance"
REGION = "app.gazette.dev/region"

CONTENT_TYPE_JSON_LINES = "application/x-ndjson"
CONTENT_TYPE_PROTO_FIXED = "application/x-protobuf-fixed"
CONTENT_TYPE_RECOVERY_LOG = "application/x-gazette-recoverylog"

SINGLE_VALUE_LABELS = frozenset(
    {CONTENT_TYPE, INSTANCE, MANAGED_BY, MESSAGE_SUB_TYPE, MESSAGE_TYPE, REGION}
)
"""Label names a spec may carry at most one value of."""

Pairs = Iterable[tuple[str, str]]


# --------------------------------------------------------------------------
# Construction and access


def label_set(labels: Mapping[str, str | Iterable[str]] | Pairs | None = None) -> pb.LabelSet:
    """A LabelSet in canonical (sorted, de-duplicated) order.

    Accepts a mapping of name to a value or values, or (name, value) pairs:
    `label_set({"topic": "clicks"})`, `label_set([("a", "1"), ("a", "2")])`.
    """
    pairs: set[tuple[str, str]] = set()
    if isinstance(labels, Mapping):
        for name, values in labels.items():
            if isinstance(values, str):
                pairs.add((name, values))
            else:
                pairs.update((name, v) for v in values)
    elif labels is not None:
        pairs.update(labels)
    return pb.LabelSet(labels=[pb.Label(name=n, value=v) for n, v in sorted(pairs)])


def pairs_of(labels: pb.LabelSet | None) -> list[tuple[str, str]]:
    """The (name, value) pairs of a LabelSet, in its order."""
    if labels is None:
        return []
    return [(label.name, label.value) for label in labels.labels]


def _from_pairs(pairs: Iterable[tuple[str, str]]) -> pb.LabelSet:
    return pb.LabelSet(labels=[pb.Label(name=n, value=v) for n, v in pairs])


def values_of(labels: pb.LabelSet | None, name: str) -> list[str]:
    """Every value of label `name` (empty if absent)."""
    return [v for n, v in pairs_of(labels) if n == name]


def value_of(labels: pb.LabelSet | None, name: str) -> str:
    """The first value of label `name`, or "" if absent."""
    for n, v in pairs_of(labels):
        if n == name:
            return v
    return ""


def set_value(labels: pb.LabelSet | None, name: str, value: str) -> pb.LabelSet:
    """A copy of `labels` where `name` has exactly the one `value`."""
    kept = [(n, v) for n, v in pairs_of(labels) if n != name]
    return label_set([*kept, (name, value)])


def add_value(labels: pb.LabelSet | None, name: str, value: str) -> pb.LabelSet:
    """A copy of `labels` with (`name`, `value`) added beside existing values."""
    return label_set([*pairs_of(labels), (name, value)])


def remove(labels: pb.LabelSet | None, name: str) -> pb.LabelSet:
    """A copy of `labels` without any value of `name`."""
    return _from_pairs((n, v) for n, v in pairs_of(labels) if n != name)


def _groups(labels: pb.LabelSet | None) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for n, v in pairs_of(labels):
        groups.setdefault(n, []).append(v)
    return groups


# --------------------------------------------------------------------------
# Validation


def validate_label(label: pb.Label) -> None:
    """Name: a 2-64 byte token. Value: a token of up to 1024 bytes (letters,
    digits and `-_+/.`), as Gazette's `Label.Validate`."""
    try:
        validate_token(label.name, TOKEN_SYMBOLS, MIN_LABEL_LEN, MAX_LABEL_LEN)
    except ValidationError as exc:
        raise exc.extend("Name") from None
    try:
        validate_token(label.value, TOKEN_SYMBOLS, 0, MAX_LABEL_VALUE_LEN)
    except ValidationError as exc:
        raise exc.extend("Value") from None


def validate_label_set(labels: pb.LabelSet | None) -> None:
    """Valid labels, sorted by (name, value), unique, and a name with an empty
    value has no other value."""
    pairs = pairs_of(labels)
    for i, (name, value) in enumerate(pairs):
        try:
            validate_label(pb.Label(name=name, value=value))
        except ValidationError as exc:
            raise exc.extend(f"Labels[{i}]") from None
        if i == 0:
            continue
        prev_name, prev_value = pairs[i - 1]
        if prev_name < name:
            continue
        if prev_name == name:
            if prev_value >= value:
                raise ValidationError(
                    f"Labels not in unique, sorted order (index {i}; label {name} value {value} <= {prev_value})"
                )
            if prev_value == "":
                raise ValidationError(
                    f"Label has empty & non-empty values (index {i}; label {name} value {value})"
                )
        else:
            raise ValidationError(
                f"Labels not in unique, sorted order (index {i}; label name {name} <= {prev_name})"
            )


def validate_single_value_labels(labels: pb.LabelSet | None) -> None:
    """Labels in `SINGLE_VALUE_LABELS` have at most one value."""
    pairs = pairs_of(labels)
    for i in range(1, len(pairs)):
        name, value = pairs[i]
        if pairs[i - 1][0] == name and name in SINGLE_VALUE_LABELS:
            raise ValidationError(
                f"expected single-value Label has multiple values (index {i}; label {name} value {value})"
            )


def validate_selector(selector: pb.LabelSelector | None) -> None:
    """Both the include and exclude sets are valid label sets."""
    if selector is None:
        return
    try:
        validate_label_set(selector.include)
    except ValidationError as exc:
        raise exc.extend("Include") from None
    try:
        validate_label_set(selector.exclude)
    except ValidationError as exc:
        raise exc.extend("Exclude") from None


# --------------------------------------------------------------------------
# Set algebra (whole value groups, as Gazette joins labels by name)


def union(lhs: pb.LabelSet | None, rhs: pb.LabelSet | None) -> pb.LabelSet:
    """Labels of either set; where both name a label, `lhs`'s values win."""
    left, right = _groups(lhs), _groups(rhs)
    out: list[tuple[str, str]] = []
    for name in sorted(left.keys() | right.keys()):
        out.extend((name, v) for v in left.get(name, right.get(name, [])))
    return _from_pairs(out)


def intersect(lhs: pb.LabelSet | None, rhs: pb.LabelSet | None) -> pb.LabelSet:
    """Labels whose full set of values is identical in both."""
    left, right = _groups(lhs), _groups(rhs)
    out: list[tuple[str, str]] = []
    for name in sorted(left):
        if right.get(name) == left[name]:
            out.extend((name, v) for v in left[name])
    return _from_pairs(out)


def subtract(lhs: pb.LabelSet | None, rhs: pb.LabelSet | None) -> pb.LabelSet:
    """Labels of `lhs` whose values are not exactly matched in `rhs`."""
    left, right = _groups(lhs), _groups(rhs)
    out: list[tuple[str, str]] = []
    for name in sorted(left):
        if right.get(name) != left[name]:
            out.extend((name, v) for v in left[name])
    return _from_pairs(out)


# --------------------------------------------------------------------------
# Matching


def _group_matches(selector_values: Sequence[str], set_values: Sequence[str]) -> bool:
    if not set_values:
        return False
    return any(v == "" or v in set_values for v in selector_values)


def matches(
    selector: pb.LabelSelector | None,
    labels: pb.LabelSet | None,
    meta: pb.LabelSet | None = None,
) -> bool:
    """Whether `labels` (joined with `meta`, whose values win on a name
    clash) satisfy `selector`: no exclude label matches, every include label
    does. A missing selector matches everything."""
    if selector is None:
        return True
    have = _groups(union(meta, labels) if meta is not None else labels)
    for name, values in _groups(selector.exclude).items():
        if _group_matches(values, have.get(name, ())):
            return False
    for name, values in _groups(selector.include).items():
        if not _group_matches(values, have.get(name, ())):
            return False
    return True


def journal_meta_labels(name: str) -> pb.LabelSet:
    """Meta-labels of a journal: `name`, and `prefix` for each directory of it.

    `journal_meta_labels("a/b/c")` is name=a/b/c, prefix=a/, prefix=a/b/.
    """
    pairs = [("name", name)]
    index = name.find("/")
    while index != -1:
        pairs.append(("prefix", name[: index + 1]))
        index = name.find("/", index + 1)
    return _from_pairs(pairs)


# --------------------------------------------------------------------------
# Selector strings

_TOKEN = r" ?([\w\-+/.]{2,})"
_COMMA_OR_END = r" ?(?:,|$)"
_PARENTHETICAL = r" ?\(([^)]+)\)"

_EQUAL = re.compile("^" + _TOKEN + " ?=?=" + _TOKEN + _COMMA_OR_END)
_NOT_EQUAL = re.compile("^" + _TOKEN + " ?!=" + _TOKEN + _COMMA_OR_END)
_SET_IN = re.compile("^" + _TOKEN + " in" + _PARENTHETICAL + _COMMA_OR_END)
_SET_NOT_IN = re.compile("^" + _TOKEN + " not ?in" + _PARENTHETICAL + _COMMA_OR_END)
_EXISTS = re.compile("^" + _TOKEN + _COMMA_OR_END)
_NOT_EXISTS = re.compile("^ ?!" + _TOKEN + _COMMA_OR_END)


def _parse_set(name: str, text: str, whole: str) -> list[tuple[str, str]]:
    out = []
    while text:
        m = _EXISTS.match(text)
        if m is None:
            raise ValidationError(
                f"could not match {text!r} to a label selector set expression"
            ).extend(f"parsing {whole!r}")
        out.append((name, m.group(1)))
        text = text[m.end() :]
    return out


def parse_selector(text: str) -> pb.LabelSelector:
    """Parse Gazette's selector syntax.

    `foo=bar` (or `foo==bar`), `foo!=bar`, `foo` (present with any value),
    `!foo` (absent), `foo in (a, b)`, `foo notin (a, b)`, comma-separated:
    `"topic in (a/one, a/two), prefix=a/"`. Raises `ValidationError` naming
    the expression that does not parse.
    """
    include: list[tuple[str, str]] = []
    exclude: list[tuple[str, str]] = []
    rest = text
    while rest:
        if m := _EQUAL.match(rest):
            include.append((m.group(1), m.group(2)))
        elif m := _NOT_EQUAL.match(rest):
            exclude.append((m.group(1), m.group(2)))
        elif m := _SET_IN.match(rest):
            include.extend(_parse_set(m.group(1), m.group(2), rest))
        elif m := _SET_NOT_IN.match(rest):
            exclude.extend(_parse_set(m.group(1), m.group(2), rest))
        elif m := _EXISTS.match(rest):
            include.append((m.group(1), ""))
        elif m := _NOT_EXISTS.match(rest):
            exclude.append((m.group(1), ""))
        else:
            raise ValidationError(f"could not match {rest!r} to a label selector expression")
        rest = rest[m.end() :]
    selector = pb.LabelSelector(
        include=_from_pairs(sorted(include)), exclude=_from_pairs(sorted(exclude))
    )
    validate_selector(selector)
    return selector


def _format_set(pairs: list[tuple[str, str]], exclude: bool) -> list[str]:
    out = []
    groups: dict[str, list[str]] = {}
    for n, v in pairs:
        groups.setdefault(n, []).append(v)
    for name, values in groups.items():
        if len(values) == 1 and values[0] == "":
            out.append(("!" if exclude else "") + name)
        elif len(values) == 1:
            out.append(f"{name}{'!' if exclude else ''}={values[0]}")
        else:
            out.append(f"{name} {'notin' if exclude else 'in'} ({','.join(values)})")
    return out


def format_selector(selector: pb.LabelSelector | None) -> str:
    """The canonical string of a selector; `parse_selector` reads it back."""
    if selector is None:
        return ""
    parts = _format_set(pairs_of(selector.include), False)
    parts += _format_set(pairs_of(selector.exclude), True)
    return ",".join(parts)
