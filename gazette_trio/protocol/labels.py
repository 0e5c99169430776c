"""Label sets and label selectors, with Gazette's rules for matching them.

Journals and shards carry a `LabelSet`: (name, value) pairs kept sorted by
name then value, where a name may repeat with distinct values. A
`LabelSelector` picks specs by their labels: every `include` label must match
(a selector value of "" matches any value of that name) and no `exclude`
label may match. A selector label may be a *prefix* label (`Label.prefix`,
written `name:prefix=value` in selector strings), which matches any value
that starts with its value. Only selectors may hold prefix labels.

Matching is against the spec's labels joined with *meta-labels* the spec
does not store: journals have `name`, shards have `id`. Journal selectors
also understand the historical `prefix` meta-label, which Gazette rewrites
to a `name:prefix` label before matching (`journal_selector`).

This module owns the pure functions over those messages: validation,
construction, union/intersection/subtraction (used by journalspace YAML
trees and by journal registers), matching, and the selector string syntax
(`"app=word-count, topic in (a, b), !deprecated, name:prefix=logs/"`). It is
generic over which meta-labels a kind of spec has: callers pass them to
`matches`.

In the (name, value) pair forms that `label_set`, `add_value`, `set_value`
and `pairs_of` speak, a prefix label's name carries a `:prefix` suffix, as
Gazette's `LabelSet.AddValue` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from . import protocol as pb
from .validation import (
    PATH_SYMBOLS,
    TOKEN_SYMBOLS,
    ValidationError,
    go_quote,
    validate_token,
)

MIN_LABEL_LEN = 2
MAX_LABEL_LEN = 64
MAX_LABEL_VALUE_LEN = 1024

PREFIX_SUFFIX = ":prefix"
"""Marks a prefix label in (name, value) pairs and selector strings."""

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


def _label(name: str, value: str) -> pb.Label:
    if name.endswith(PREFIX_SUFFIX):
        return pb.Label(name=name[: -len(PREFIX_SUFFIX)], value=value, prefix=True)
    return pb.Label(name=name, value=value)


def _key(label: pb.Label) -> tuple[str, str, bool]:
    return (label.name, label.value, label.prefix)


def _canonical(labels: Iterable[pb.Label]) -> pb.LabelSet:
    unique = {_key(label): label for label in labels}
    return pb.LabelSet(labels=[unique[k] for k in sorted(unique)])


def label_set(labels: Mapping[str, str | Iterable[str]] | Pairs | None = None) -> pb.LabelSet:
    """A LabelSet in canonical (sorted, de-duplicated) order.

    Accepts a mapping of name to a value or values, or (name, value) pairs:
    `label_set({"topic": "clicks"})`, `label_set([("a", "1"), ("a", "2")])`.
    A name ending in `:prefix` makes a prefix label (for selectors).
    """
    out: list[pb.Label] = []
    if isinstance(labels, Mapping):
        for name, values in labels.items():
            if isinstance(values, str):
                out.append(_label(name, values))
            else:
                out.extend(_label(name, v) for v in values)
    elif labels is not None:
        out.extend(_label(n, v) for n, v in labels)
    return _canonical(out)


def _labels(labels: pb.LabelSet | None) -> list[pb.Label]:
    return [] if labels is None else labels.labels


def pairs_of(labels: pb.LabelSet | None) -> list[tuple[str, str]]:
    """The (name, value) pairs of a LabelSet, in its order (a prefix label's
    name gets its `:prefix` suffix back)."""
    return [
        (label.name + PREFIX_SUFFIX if label.prefix else label.name, label.value)
        for label in _labels(labels)
    ]


def _copy(labels: Iterable[pb.Label]) -> pb.LabelSet:
    return pb.LabelSet(
        labels=[pb.Label(name=lb.name, value=lb.value, prefix=lb.prefix) for lb in labels]
    )


def values_of(labels: pb.LabelSet | None, name: str) -> list[str]:
    """Every value of label `name` (empty if absent)."""
    return [label.value for label in _labels(labels) if label.name == name]


def value_of(labels: pb.LabelSet | None, name: str) -> str:
    """The first value of label `name`, or "" if absent."""
    for label in _labels(labels):
        if label.name == name:
            return label.value
    return ""


def set_value(labels: pb.LabelSet | None, name: str, value: str) -> pb.LabelSet:
    """A copy of `labels` where `name` has exactly the one `value`."""
    new = _label(name, value)
    return _canonical([*(lb for lb in _labels(labels) if lb.name != new.name), new])


def add_value(labels: pb.LabelSet | None, name: str, value: str) -> pb.LabelSet:
    """A copy of `labels` with (`name`, `value`) added beside existing values."""
    return _canonical([*_labels(labels), _label(name, value)])


def remove(labels: pb.LabelSet | None, name: str) -> pb.LabelSet:
    """A copy of `labels` without any value of `name`."""
    return _copy(lb for lb in _labels(labels) if lb.name != name)


def _groups(labels: pb.LabelSet | None) -> dict[str, list[pb.Label]]:
    groups: dict[str, list[pb.Label]] = {}
    for label in _labels(labels):
        groups.setdefault(label.name, []).append(label)
    return groups


# --------------------------------------------------------------------------
# Validation


def validate_label(label: pb.Label, *, allow_prefix: bool = False) -> None:
    """Name: a 2-64 byte token (letters, digits and `-_+/.`). Value: up to
    1024 bytes of the same plus `=` and `%`. `prefix` only where allowed (in
    selectors). As Gazette's `Label.Validate`."""
    try:
        validate_token(label.name, TOKEN_SYMBOLS, MIN_LABEL_LEN, MAX_LABEL_LEN)
    except ValidationError as exc:
        raise exc.extend("Name") from None
    try:
        validate_token(label.value, PATH_SYMBOLS, 0, MAX_LABEL_VALUE_LEN)
    except ValidationError as exc:
        raise exc.extend("Value") from None
    if label.prefix and not allow_prefix:
        raise ValidationError("Prefix may not be set outside of a LabelSelector")


def validate_label_set(labels: pb.LabelSet | None, *, allow_prefix: bool = False) -> None:
    """Valid labels, sorted by (name, value), unique, and a name with an empty
    value has no other value."""
    items = _labels(labels)
    for i, label in enumerate(items):
        try:
            validate_label(label, allow_prefix=allow_prefix)
        except ValidationError as exc:
            raise exc.extend(f"Labels[{i}]") from None
        if i == 0:
            continue
        prev = items[i - 1]
        name, value = label.name, label.value
        if prev.name < name:
            continue
        if prev.name == name:
            if prev.value >= value:
                raise ValidationError(
                    f"Labels not in unique, sorted order (index {i}; label {name} value {value} <= {prev.value})"
                )
            if prev.value == "":
                raise ValidationError(
                    f"Label has empty & non-empty values (index {i}; label {name} value {value})"
                )
        else:
            raise ValidationError(
                f"Labels not in unique, sorted order (index {i}; label name {name} <= {prev.name})"
            )


def validate_single_value_labels(labels: pb.LabelSet | None) -> None:
    """Labels in `SINGLE_VALUE_LABELS` have at most one value."""
    items = _labels(labels)
    for i in range(1, len(items)):
        name, value = items[i].name, items[i].value
        if items[i - 1].name == name and name in SINGLE_VALUE_LABELS:
            raise ValidationError(
                f"expected single-value Label has multiple values (index {i}; label {name} value {value})"
            )


def validate_selector(selector: pb.LabelSelector | None) -> None:
    """Both the include and exclude sets are valid label sets (prefix labels
    allowed)."""
    if selector is None:
        return
    try:
        validate_label_set(selector.include, allow_prefix=True)
    except ValidationError as exc:
        raise exc.extend("Include") from None
    try:
        validate_label_set(selector.exclude, allow_prefix=True)
    except ValidationError as exc:
        raise exc.extend("Exclude") from None


def validate_journal_selector(selector: pb.LabelSelector | None) -> None:
    """A valid selector whose `prefix` meta-label values end in '/', as
    Gazette's `ListRequest.Validate` (errors start at `Selector`)."""
    try:
        validate_selector(selector)
    except ValidationError as exc:
        raise exc.extend("Selector") from None
    if selector is None:
        return
    for part, labels in (("Include", selector.include), ("Exclude", selector.exclude)):
        for value in values_of(labels, "prefix"):
            if not value.endswith("/"):
                raise ValidationError(
                    f"Selector.{part}.Labels[\"prefix\"]: expected trailing '/' ({value})"
                )


# --------------------------------------------------------------------------
# Set algebra (whole value groups, as Gazette joins labels by name)


def _values(group: list[pb.Label]) -> list[str]:
    return [label.value for label in group]


def union(lhs: pb.LabelSet | None, rhs: pb.LabelSet | None) -> pb.LabelSet:
    """Labels of either set; where both name a label, `lhs`'s values win."""
    left, right = _groups(lhs), _groups(rhs)
    out: list[pb.Label] = []
    for name in sorted(left.keys() | right.keys()):
        out.extend(left[name] if name in left else right[name])
    return _copy(out)


def intersect(lhs: pb.LabelSet | None, rhs: pb.LabelSet | None) -> pb.LabelSet:
    """Labels whose full set of values is identical in both."""
    left, right = _groups(lhs), _groups(rhs)
    out: list[pb.Label] = []
    for name in sorted(left):
        if name in right and _values(right[name]) == _values(left[name]):
            out.extend(left[name])
    return _copy(out)


def subtract(lhs: pb.LabelSet | None, rhs: pb.LabelSet | None) -> pb.LabelSet:
    """Labels of `lhs` whose values are not exactly matched in `rhs`."""
    left, right = _groups(lhs), _groups(rhs)
    out: list[pb.Label] = []
    for name in sorted(left):
        if name not in right or _values(right[name]) != _values(left[name]):
            out.extend(left[name])
    return _copy(out)


# --------------------------------------------------------------------------
# Matching


def _group_matches(selected: list[pb.Label], have: list[str]) -> bool:
    """Whether any selector label of one name matches any of `have`, the
    values of that name in the set."""
    for label in selected:
        if label.value == "":
            if have:
                return True
        elif label.prefix:
            value = label.value
            for v in have:
                if v.startswith(value):
                    return True
        elif label.value in have:
            return True
    return False


def _values_by_name(labels: pb.LabelSet | None, meta: pb.LabelSet | None) -> dict[str, list[str]]:
    """Values of `labels` by name, joined with `meta`, whose values win on a
    name clash (as `union(meta, labels)`)."""
    have: dict[str, list[str]] = {}
    if labels is not None:
        for label in labels.labels:
            values = have.get(label.name)
            if values is None:
                have[label.name] = [label.value]
            else:
                values.append(label.value)
    if meta is not None:
        replaced: set[str] = set()
        for label in meta.labels:
            if label.name not in replaced:
                replaced.add(label.name)
                have[label.name] = []
            have[label.name].append(label.value)
    return have


def _selected(
    include: dict[str, list[pb.Label]],
    exclude: dict[str, list[pb.Label]],
    have: dict[str, list[str]],
) -> bool:
    for name, group in exclude.items():
        if _group_matches(group, have.get(name, [])):
            return False
    return all(_group_matches(group, have.get(name, [])) for name, group in include.items())


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
    return _selected(
        _groups(selector.include), _groups(selector.exclude), _values_by_name(labels, meta)
    )


def journal_selector(selector: pb.LabelSelector | None) -> pb.LabelSelector | None:
    """`selector` with each `prefix=x/` meta-label rewritten as the prefix
    label `name:prefix=x/`, as Gazette's List does before matching."""
    if selector is None:
        return None

    def rewrite(labels: pb.LabelSet | None) -> pb.LabelSet:
        prefixes = values_of(labels, "prefix")
        if not prefixes:
            return _copy(_labels(labels))
        kept = [lb for lb in _labels(labels) if lb.name != "prefix"]
        return _canonical([*kept, *(pb.Label(name="name", value=v, prefix=True) for v in prefixes)])

    return pb.LabelSelector(include=rewrite(selector.include), exclude=rewrite(selector.exclude))


def journal_meta_labels(name: str) -> pb.LabelSet:
    """Meta-labels of a journal: `name`, and `prefix` for each directory of it.

    `journal_meta_labels("a/b/c")` is name=a/b/c, prefix=a/, prefix=a/b/.
    Gazette's own meta-labels are only `name` (`JournalSpec.LabelSetExt`)
    and it rewrites a selector's `prefix` first; the directory prefixes here
    make `matches(selector, labels, journal_meta_labels(name))` agree with
    that for the `prefix=dir/` selectors Gazette accepts. `matches_journal`
    is Gazette's exact rule.
    """
    labels = [pb.Label(name="name", value=name)]
    index = name.find("/")
    while index != -1:
        labels.append(pb.Label(name="prefix", value=name[: index + 1]))
        index = name.find("/", index + 1)
    return pb.LabelSet(labels=labels)


def matches_journal(
    selector: pb.LabelSelector | None, name: str, labels: pb.LabelSet | None
) -> bool:
    """Whether the journal `name` with `labels` satisfies `selector`, as
    Gazette's List decides: `prefix` meta-labels become `name:prefix` labels,
    and the journal's labels are joined with its `name`. To match many
    journals against one selector, `journal_matcher` rewrites it once."""
    return journal_matcher(selector)(name, labels)


def journal_matcher(selector: pb.LabelSelector | None) -> Callable[[str, pb.LabelSet | None], bool]:
    """`matches_journal` with `selector` prepared once: a function of a
    journal's name and labels."""
    rewritten = journal_selector(selector)
    if rewritten is None:
        return lambda name, labels: True
    include, exclude = _groups(rewritten.include), _groups(rewritten.exclude)

    def match(name: str, labels: pb.LabelSet | None) -> bool:
        have = _values_by_name(labels, None)
        have["name"] = [name]
        return _selected(include, exclude, have)

    return match


# --------------------------------------------------------------------------
# Selector strings

# A label name, optionally marked as a prefix match; values may also hold
# '=' and '%', and may be empty. `\Z`, not `$`: Python's `$` also matches
# before a trailing newline.
_LETTER_OR_NUMBER = r"[^\W_]"
_TOKEN = rf" ?((?:{_LETTER_OR_NUMBER}|[\-_+/.]){{2,}}(?::prefix)?)"
_PATH = rf" ?((?:{_LETTER_OR_NUMBER}|[\-_+/.=%])*)"
_COMMA_OR_END = r" ?(?:,|\Z)"
_PARENTHETICAL = r" ?\(([^)]+)\)"

_EQUAL = re.compile(_TOKEN + " ?=?=" + _PATH + _COMMA_OR_END)
_NOT_EQUAL = re.compile(_TOKEN + " ?!=" + _PATH + _COMMA_OR_END)
_SET_IN = re.compile(_TOKEN + " in" + _PARENTHETICAL + _COMMA_OR_END)
_SET_NOT_IN = re.compile(_TOKEN + " not ?in" + _PARENTHETICAL + _COMMA_OR_END)
_EXISTS = re.compile(_TOKEN + _COMMA_OR_END)
_NOT_EXISTS = re.compile(" ?!" + _TOKEN + _COMMA_OR_END)
_SET_VALUE = re.compile(_PATH + _COMMA_OR_END)


def _parse_set(name: str, text: str, whole: str) -> list[pb.Label]:
    out = []
    while text:
        m = _SET_VALUE.match(text)
        if m is None:
            raise ValidationError(
                f"could not match {go_quote(text)} to a label selector set expression"
            ).extend(f"parsing {go_quote(whole)}")
        out.append(_label(name, m.group(1)))
        text = text[m.end() :]
    return out


def parse_selector(text: str) -> pb.LabelSelector:
    """Parse Gazette's selector syntax.

    `foo=bar` (or `foo==bar`), `foo!=bar`, `foo` (present with any value),
    `!foo` (absent), `foo in (a, b)`, `foo notin (a, b)`, comma-separated;
    a name with a `:prefix` suffix matches values starting with the given
    one: `"topic in (a/one, a/two), name:prefix=a/"`. Raises
    `ValidationError` naming the expression that does not parse.
    """
    include: list[pb.Label] = []
    exclude: list[pb.Label] = []
    rest = text
    while rest:
        if m := _EQUAL.match(rest):
            include.append(_label(m.group(1), m.group(2)))
        elif m := _NOT_EQUAL.match(rest):
            exclude.append(_label(m.group(1), m.group(2)))
        elif m := _SET_IN.match(rest):
            include.extend(_parse_set(m.group(1), m.group(2), rest))
        elif m := _SET_NOT_IN.match(rest):
            exclude.extend(_parse_set(m.group(1), m.group(2), rest))
        elif m := _EXISTS.match(rest):
            include.append(_label(m.group(1), ""))
        elif m := _NOT_EXISTS.match(rest):
            exclude.append(_label(m.group(1), ""))
        else:
            raise ValidationError(
                f"could not match {go_quote(rest)} to a label selector expression"
            )
        rest = rest[m.end() :]
    selector = pb.LabelSelector(include=_canonical(include), exclude=_canonical(exclude))
    validate_selector(selector)
    return selector


def _format_set(labels: pb.LabelSet | None, exclude: bool) -> list[str]:
    # Prefix and exact labels of one name are separate groups.
    groups: dict[str, list[str]] = {}
    for name, value in sorted(pairs_of(labels)):
        groups.setdefault(name, []).append(value)
    out = []
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
    parts = _format_set(selector.include, False)
    parts += _format_set(selector.exclude, True)
    return ",".join(parts)
