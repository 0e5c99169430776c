"""Shardspace and journalspace: spec files with common settings factored out.

Operators keep ShardSpecs and JournalSpecs in YAML the way gazctl does:

- a *shardspace* is a `common` ShardSpec plus a list of `shards`; a field a
  shard leaves unset takes the common value;
- a *journalspace* is a tree of nodes named by path prefix ("examples/",
  "examples/lines/"); a journal (a leaf) inherits every field it leaves unset
  from the directories above it.

Both come back from a List as "hoisted" files: whatever every member agrees on
moves up to `common` (or to the directory), so a printed file shows each
setting once. Going the other way, "pushing down" produces the complete specs
that an Apply carries, each with the `revision` the operator saw (0 creates,
-1 skips the check), or a `delete: true`.

The YAML keys and value forms are gazctl's (Go's field names in snake case,
durations as "1s"), so files move freely between gazctl and gazette-trio.
Errors name the offending place as a path (`shards[2].max_txn_duration`) and
say what was expected.

This module owns the file format, the hoist/push-down algebra and spec
validation (Gazette's `ShardSpec.Validate` and `JournalSpec.Validate`). It
does no I/O beyond parsing text; sending the Apply is the caller's job.
"""

from __future__ import annotations

import copy
import datetime
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..protocol import consumer as pc
from ..protocol import protocol as pb
from . import labels as lbl
from .durations import DurationError, format_duration, parse_duration

__all__ = [
    "JournalNode",
    "ShardEntry",
    "ShardSpace",
    "SpecError",
    "validate_journal_spec",
    "validate_shard_spec",
]


class SpecError(ValueError):
    """A spec file or spec is malformed. `path` names where (`shards[1].id`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message

    def within(self, prefix: str) -> SpecError:
        """The same error, its path placed under `prefix`."""
        return SpecError(join_path(prefix, self.path), self.message)


def join_path(prefix: str, key: str) -> str:
    """Join dotted/indexed path parts: ("shards", "[2]") -> "shards[2]"."""
    if not prefix:
        return key
    if not key:
        return prefix
    return prefix + key if key.startswith("[") else f"{prefix}.{key}"


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    return repr(value)


# --------------------------------------------------------------------------
# Field kinds: YAML value <-> canonical Python value (None means zero/unset)


@dataclass(frozen=True)
class _Kind:
    expected: str
    parse: Callable[[Any, str], Any]
    dump: Callable[[Any], Any]


def _bad(path: str, kind: str, value: Any) -> SpecError:
    return SpecError(path, f"expected {kind}, got {_describe(value)}")


def _parse_str(value: Any, path: str) -> str | None:
    if not isinstance(value, str):
        raise _bad(path, "a string", value)
    return value or None


def _int_kind(lo: int, hi: int, what: str) -> _Kind:
    def parse(value: Any, path: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(path, what, value)
        if not lo <= value <= hi:
            raise SpecError(path, f"expected {what} in [{lo}, {hi}], got {value}")
        return value or None

    return _Kind(what, parse, lambda v: v)


def _parse_bool(value: Any, path: str) -> bool | None:
    if not isinstance(value, bool):
        raise _bad(path, "true or false", value)
    return value or None


def _parse_duration(value: Any, path: str) -> datetime.timedelta | None:
    if value == 0 and not isinstance(value, bool):
        return None
    if not isinstance(value, str):
        raise _bad(path, 'a duration string like "1s", "500ms" or "2m"', value)
    try:
        parsed = parse_duration(value)
    except DurationError as exc:
        raise SpecError(path, str(exc)) from None
    return parsed or None


def _parse_labels(value: Any, path: str) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(value, list):
        raise _bad(path, "a list of {name, value} tables", value)
    pairs = []
    for i, item in enumerate(value):
        item_path = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            raise _bad(item_path, "a {name, value} table", item)
        unknown = set(item) - {"name", "value"}
        if unknown:
            key = sorted(map(str, unknown))[0]
            raise SpecError(join_path(item_path, key), "unknown field (expected name, value)")
        name = item.get("name")
        val = item.get("value", "")
        if not isinstance(name, str) or not name:
            raise SpecError(join_path(item_path, "name"), f"expected a label name, got {name!r}")
        if not isinstance(val, str):
            raise _bad(join_path(item_path, "value"), "a string", val)
        pairs.append(pb.Label(name=name, value=val))
    ordered = lbl.sorted_labels(pairs)
    try:
        lbl.validate_label_set(ordered)
    except lbl.LabelError as exc:
        raise SpecError(path, str(exc)) from None
    return tuple((label.name, label.value) for label in ordered) or None


def _dump_labels(value: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": n, "value": v} for n, v in value]


def _parse_sources(value: Any, path: str) -> tuple[tuple[str, int], ...] | None:
    if not isinstance(value, list):
        raise _bad(path, "a list of {journal, min_offset} tables", value)
    out = []
    for i, item in enumerate(value):
        item_path = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            raise _bad(item_path, "a {journal, min_offset} table", item)
        unknown = set(item) - {"journal", "min_offset"}
        if unknown:
            key = sorted(map(str, unknown))[0]
            raise SpecError(
                join_path(item_path, key), "unknown field (expected journal, min_offset)"
            )
        journal = item.get("journal")
        if not isinstance(journal, str) or not journal:
            raise SpecError(
                join_path(item_path, "journal"), f"expected a journal name, got {journal!r}"
            )
        offset = item.get("min_offset", 0)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise _bad(join_path(item_path, "min_offset"), "a byte offset >= 0", offset)
        out.append((journal, offset))
    return tuple(out) or None


def _dump_sources(value: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for journal, offset in value:
        item: dict[str, Any] = {"journal": journal}
        if offset:
            item["min_offset"] = offset
        out.append(item)
    return out


def _parse_strings(value: Any, path: str) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(path, "a list of strings", value)
    return tuple(value) or None


def _parse_codec(value: Any, path: str) -> int | None:
    names = [c.name for c in pb.CompressionCodec if c.value]
    if isinstance(value, str) and value in pb.CompressionCodec.__members__:
        return int(pb.CompressionCodec[value]) or None
    codes = {c.value for c in pb.CompressionCodec}
    if isinstance(value, int) and not isinstance(value, bool) and value in codes:
        return value or None
    raise _bad(path, f"a compression codec ({', '.join(names)})", value)


def _parse_flags(value: Any, path: str) -> int | None:
    if isinstance(value, str) and value in pb.JournalSpecFlag.__members__:
        return int(pb.JournalSpecFlag[value]) or None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32:
        return value or None
    names = ", ".join(f.name for f in pb.JournalSpecFlag)
    raise _bad(path, f"journal flags ({names})", value)


def _dump_flags(value: int) -> Any:
    try:
        return pb.JournalSpecFlag(value).name
    except ValueError:
        return value


_STR = _Kind("a string", _parse_str, lambda v: v)
_BOOL = _Kind("true or false", _parse_bool, lambda v: v)
_INT32 = _int_kind(-(2**31), 2**31 - 1, "an integer")
_UINT32 = _int_kind(0, 2**32 - 1, "a non-negative integer")
_INT64 = _int_kind(-(2**63), 2**63 - 1, "an integer")
_DURATION = _Kind("a duration", _parse_duration, format_duration)
_LABELS = _Kind("labels", _parse_labels, _dump_labels)
_SOURCES = _Kind("sources", _parse_sources, _dump_sources)
_STRINGS = _Kind("a list of strings", _parse_strings, list)
_CODEC = _Kind("a compression codec", _parse_codec, lambda v: pb.CompressionCodec(v).name)
_FLAGS = _Kind("journal flags", _parse_flags, _dump_flags)

# Keys in gazctl's order, which is the order they print in.
SHARD_FIELDS: dict[str, _Kind] = {
    "id": _STR,
    "sources": _SOURCES,
    "recovery_log_prefix": _STR,
    "hint_prefix": _STR,
    "hint_backups": _INT32,
    "max_txn_duration": _DURATION,
    "min_txn_duration": _DURATION,
    "disable": _BOOL,
    "hot_standbys": _UINT32,
    "labels": _LABELS,
    "disable_wait_for_ack": _BOOL,
    "ring_buffer_size": _UINT32,
    "read_channel_size": _UINT32,
}
FRAGMENT_FIELDS: dict[str, _Kind] = {
    "length": _INT64,
    "compression_codec": _CODEC,
    "stores": _STRINGS,
    "refresh_interval": _DURATION,
    "retention": _DURATION,
    "flush_interval": _DURATION,
    "path_postfix_template": _STR,
}
JOURNAL_FIELDS: dict[str, _Kind] = {
    "name": _STR,
    "replication": _INT32,
    "labels": _LABELS,
    # "fragment" is a nested table of FRAGMENT_FIELDS, flattened to "fragment.<key>".
    "flags": _FLAGS,
    "max_append_rate": _INT64,
}
_JOURNAL_ORDER = ["name", "replication", "labels", "fragment", "flags", "max_append_rate"]

Fields = dict[str, Any]
"""A spec as its non-zero fields, keyed by YAML key ("fragment.length" for nested)."""


def _parse_fields(
    data: Mapping[str, Any],
    table: Mapping[str, _Kind],
    path: str,
    meta: Mapping[str, _Kind],
    nested: Mapping[str, Mapping[str, _Kind]] | None = None,
) -> tuple[Fields, Fields]:
    """Split a YAML table into spec fields and meta fields, checking each."""
    nested = nested or {}
    fields: Fields = {}
    metas: Fields = {}
    for key, value in data.items():
        key_path = join_path(path, str(key))
        if key in table:
            parsed = table[key].parse(value, key_path)
            if parsed is not None:
                fields[key] = parsed
        elif key in meta:
            parsed = meta[key].parse(value, key_path)
            if parsed is not None:
                metas[key] = parsed
        elif key in nested:
            if not isinstance(value, Mapping):
                raise _bad(key_path, "a table", value)
            sub, _ = _parse_fields(value, nested[key], key_path, {})
            fields.update({f"{key}.{k}": v for k, v in sub.items()})
        else:
            known = ", ".join([*table, *nested, *meta])
            raise SpecError(key_path, f"unknown field (expected one of: {known})")
    return fields, metas


def _dump_fields(
    fields: Fields, order: Sequence[str], tables: Mapping[str, _Kind]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in order:
        if key == "fragment":
            frag = {
                k: FRAGMENT_FIELDS[k].dump(fields[f"fragment.{k}"])
                for k in FRAGMENT_FIELDS
                if f"fragment.{k}" in fields
            }
            if frag:
                out["fragment"] = frag
        elif key in fields:
            out[key] = tables[key].dump(fields[key])
    return out


# --------------------------------------------------------------------------
# The algebra: union, intersection and subtraction of partial specs


def _labels_of(fields: Fields) -> list[pb.Label]:
    return [pb.Label(name=n, value=v) for n, v in fields.get("labels", ())]


def _with_labels(fields: Fields, labels: list[pb.Label]) -> Fields:
    out = {k: v for k, v in fields.items() if k != "labels"}
    if labels:
        out["labels"] = tuple((label.name, label.value) for label in labels)
    return out


def union(a: Fields, b: Fields) -> Fields:
    """Every field set in either; where both set one, `a`'s value is kept."""
    return _with_labels({**b, **a}, lbl.union_labels(_labels_of(a), _labels_of(b)))


def intersect(a: Fields, b: Fields) -> Fields:
    """The fields both set to the same value."""
    same = {k: v for k, v in a.items() if b.get(k) == v}
    return _with_labels(same, lbl.intersect_labels(_labels_of(a), _labels_of(b)))


def subtract(a: Fields, b: Fields) -> Fields:
    """`a`'s fields, less those `b` sets to the same value."""
    rest = {k: v for k, v in a.items() if b.get(k) != v}
    return _with_labels(rest, lbl.subtract_labels(_labels_of(a), _labels_of(b)))


# --------------------------------------------------------------------------
# Specs <-> fields


def _duration_or_none(d: datetime.timedelta | None) -> datetime.timedelta | None:
    return d if d else None


def shard_fields(spec: pc.ShardSpec) -> Fields:
    """The non-zero fields of a ShardSpec."""
    raw: Fields = {
        "id": spec.id or None,
        "sources": tuple((s.journal, s.min_offset) for s in spec.sources) or None,
        "recovery_log_prefix": spec.recovery_log_prefix or None,
        "hint_prefix": spec.hint_prefix or None,
        "hint_backups": spec.hint_backups or None,
        "max_txn_duration": _duration_or_none(spec.max_txn_duration),
        "min_txn_duration": _duration_or_none(spec.min_txn_duration),
        "disable": spec.disable or None,
        "hot_standbys": spec.hot_standbys or None,
        "labels": tuple((x.name, x.value) for x in (spec.labels.labels if spec.labels else []))
        or None,
        "disable_wait_for_ack": spec.disable_wait_for_ack or None,
        "ring_buffer_size": spec.ring_buffer_size or None,
        "read_channel_size": spec.read_channel_size or None,
    }
    return {k: v for k, v in raw.items() if v is not None}


def shard_spec(fields: Fields) -> pc.ShardSpec:
    """A ShardSpec from its fields (unset fields are zero)."""
    return pc.ShardSpec(
        id=fields.get("id", ""),
        sources=[pc.ShardSpecSource(journal=j, min_offset=o) for j, o in fields.get("sources", ())],
        recovery_log_prefix=fields.get("recovery_log_prefix", ""),
        hint_prefix=fields.get("hint_prefix", ""),
        hint_backups=fields.get("hint_backups", 0),
        max_txn_duration=fields.get("max_txn_duration"),
        min_txn_duration=fields.get("min_txn_duration"),
        disable=fields.get("disable", False),
        hot_standbys=fields.get("hot_standbys", 0),
        labels=pb.LabelSet(labels=_labels_of(fields)),
        disable_wait_for_ack=fields.get("disable_wait_for_ack", False),
        ring_buffer_size=fields.get("ring_buffer_size", 0),
        read_channel_size=fields.get("read_channel_size", 0),
    )


def journal_fields(spec: pb.JournalSpec) -> Fields:
    """The non-zero fields of a JournalSpec (fragment fields as "fragment.<key>")."""
    frag = spec.fragment or pb.JournalSpecFragment()
    raw: Fields = {
        "name": spec.name or None,
        "replication": spec.replication or None,
        "labels": tuple((x.name, x.value) for x in (spec.labels.labels if spec.labels else []))
        or None,
        "fragment.length": frag.length or None,
        "fragment.compression_codec": int(frag.compression_codec) or None,
        "fragment.stores": tuple(frag.stores) or None,
        "fragment.refresh_interval": _duration_or_none(frag.refresh_interval),
        "fragment.retention": _duration_or_none(frag.retention),
        "fragment.flush_interval": _duration_or_none(frag.flush_interval),
        "fragment.path_postfix_template": frag.path_postfix_template or None,
        "flags": spec.flags or None,
        "max_append_rate": spec.max_append_rate or None,
    }
    return {k: v for k, v in raw.items() if v is not None}


def journal_spec(fields: Fields) -> pb.JournalSpec:
    """A JournalSpec from its fields (unset fields are zero)."""
    return pb.JournalSpec(
        name=fields.get("name", ""),
        replication=fields.get("replication", 0),
        labels=pb.LabelSet(labels=_labels_of(fields)),
        fragment=pb.JournalSpecFragment(
            length=fields.get("fragment.length", 0),
            compression_codec=pb.CompressionCodec(fields.get("fragment.compression_codec", 0)),
            stores=list(fields.get("fragment.stores", ())),
            refresh_interval=fields.get("fragment.refresh_interval"),
            retention=fields.get("fragment.retention"),
            flush_interval=fields.get("fragment.flush_interval"),
            path_postfix_template=fields.get("fragment.path_postfix_template", ""),
        ),
        flags=fields.get("flags", 0),
        max_append_rate=fields.get("max_append_rate", 0),
    )


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError("", f"{source}: not valid YAML{where}: {problem}") from None


def _dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _parse_delete(value: Any, path: str) -> bool | None:
    # Unlike spec fields, `delete: false` is kept: it overrides an inherited delete.
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _bad(path, "true or false", value)
    return value


_META: dict[str, _Kind] = {
    "comment": _STR,
    "delete": _Kind("true or false", _parse_delete, bool),
    "revision": _INT64,
}


def _dump_meta(out: dict[str, Any], comment: str, delete: bool | None) -> dict[str, Any]:
    head: dict[str, Any] = {}
    if comment:
        head["comment"] = comment
    if delete is not None:
        head["delete"] = delete
    return {**head, **out}


# --------------------------------------------------------------------------
# Shardspace


@dataclass
class ShardEntry:
    """One shard of a shardspace: a possibly partial spec and its bookkeeping.

    `revision` is the etcd ModRevision the operator last saw (0: create it;
    -1: apply whatever the current revision is). `delete=True` deletes it.
    """

    spec: pc.ShardSpec
    revision: int = 0
    delete: bool | None = None
    comment: str = ""


@dataclass
class ShardSpace:
    """A set of shards sharing the fields of `common` they leave unset."""

    common: pc.ShardSpec = field(default_factory=pc.ShardSpec)
    shards: list[ShardEntry] = field(default_factory=list)

    # -- building

    @classmethod
    def from_specs(cls, specs: Iterable[tuple[pc.ShardSpec, int]]) -> ShardSpace:
        """Hoisted shardspace of complete specs and their revisions."""
        entries = [ShardEntry(spec=spec, revision=rev) for spec, rev in specs]
        entries.sort(key=lambda e: e.spec.id)
        return cls(shards=entries).hoisted()

    @classmethod
    def from_list_response(cls, response: pc.ListResponse) -> ShardSpace:
        """The hoisted shardspace of a Shard List (what `shards list -o yaml` prints)."""
        return cls.from_specs(
            (shard.spec or pc.ShardSpec(), shard.mod_revision) for shard in response.shards
        )

    @classmethod
    def from_yaml(cls, text: str, source: str = "shardspace") -> ShardSpace:
        """Parse gazctl's shardspace YAML. Raises `SpecError` naming the bad key."""
        data = _load_yaml(text, source)
        return cls.from_data({} if data is None else data)

    @classmethod
    def from_data(cls, data: Any, path: str = "") -> ShardSpace:
        """Parse an already-decoded shardspace (from YAML or a TOML table)."""
        if not isinstance(data, Mapping):
            raise _bad(path, "a table with `common` and `shards`", data)
        unknown = set(data) - {"common", "shards"}
        if unknown:
            key = sorted(map(str, unknown))[0]
            raise SpecError(join_path(path, key), "unknown field (expected common, shards)")
        common_data = data.get("common") or {}
        common_path = join_path(path, "common")
        if not isinstance(common_data, Mapping):
            raise _bad(common_path, "a table of ShardSpec fields", common_data)
        common, _ = _parse_fields(common_data, SHARD_FIELDS, common_path, {})
        if "id" in common:
            raise SpecError(join_path(common_path, "id"), "an id cannot be common to shards")

        shards_data = data.get("shards") or []
        shards_path = join_path(path, "shards")
        if not isinstance(shards_data, list):
            raise _bad(shards_path, "a list of shards", shards_data)
        entries: list[ShardEntry] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(shards_data):
            item_path = f"{shards_path}[{i}]"
            if not isinstance(item, Mapping):
                raise _bad(item_path, "a table of ShardSpec fields", item)
            fields, meta = _parse_fields(item, SHARD_FIELDS, item_path, _META)
            shard_id = fields.get("id")
            if not shard_id:
                raise SpecError(join_path(item_path, "id"), "missing: every shard needs an id")
            if shard_id in seen:
                raise SpecError(
                    join_path(item_path, "id"),
                    f"duplicate shard id {shard_id!r} (also at {shards_path}[{seen[shard_id]}])",
                )
            seen[shard_id] = i
            entries.append(
                ShardEntry(
                    spec=shard_spec(fields),
                    revision=meta.get("revision", 0),
                    delete=meta.get("delete"),
                    comment=meta.get("comment", ""),
                )
            )
        return cls(common=shard_spec(common), shards=entries)

    # -- printing

    def to_data(self) -> dict[str, Any]:
        """The shardspace as plain data in gazctl's key order."""
        common = _dump_fields(shard_fields(self.common), list(SHARD_FIELDS), SHARD_FIELDS)
        shards = []
        for entry in self.shards:
            item = _dump_fields(shard_fields(entry.spec), list(SHARD_FIELDS), SHARD_FIELDS)
            if entry.revision:
                item["revision"] = entry.revision
            shards.append(_dump_meta(item, entry.comment, entry.delete))
        return {"common": common, "shards": shards}

    def to_yaml(self) -> str:
        return _dump_yaml(self.to_data())

    # -- the algebra

    def hoisted(self) -> ShardSpace:
        """The same shards, with every field they all share moved to `common`."""
        flat = self.flattened()
        if not flat:
            return ShardSpace(common=self.common, shards=[])
        all_fields = [shard_fields(e.spec) for e in flat]
        common = {k: v for k, v in all_fields[0].items() if k != "id"}
        for fields in all_fields[1:]:
            common = intersect(common, fields)
        shards = [
            ShardEntry(
                spec=shard_spec(subtract(fields, common) | {"id": fields["id"]}),
                revision=e.revision,
                delete=e.delete,
                comment=e.comment,
            )
            for e, fields in zip(flat, all_fields, strict=True)
        ]
        return ShardSpace(common=shard_spec(common), shards=shards)

    def flattened(self) -> list[ShardEntry]:
        """Each shard with `common` pushed into the fields it leaves unset."""
        common = shard_fields(self.common)
        return [
            ShardEntry(
                spec=shard_spec(union(shard_fields(e.spec), common)),
                revision=e.revision,
                delete=e.delete,
                comment=e.comment,
            )
            for e in self.shards
        ]

    def validate(self) -> None:
        """Validate every complete (pushed-down) spec that is not being deleted."""
        for i, entry in enumerate(self.flattened()):
            if entry.delete:
                continue
            try:
                validate_shard_spec(entry.spec)
            except SpecError as exc:
                raise exc.within(f"shards[{i}]") from None

    def apply_request(self) -> pc.ApplyRequest:
        """The Apply that makes the cluster match this file, ordered by shard id."""
        changes = []
        for entry in sorted(self.flattened(), key=lambda e: e.spec.id):
            if entry.delete:
                changes.append(
                    pc.ApplyRequestChange(expect_mod_revision=entry.revision, delete=entry.spec.id)
                )
            else:
                changes.append(
                    pc.ApplyRequestChange(expect_mod_revision=entry.revision, upsert=entry.spec)
                )
        return pc.ApplyRequest(changes=changes)


# --------------------------------------------------------------------------
# Journalspace


@dataclass
class JournalNode:
    """A node of a journalspace tree.

    A *directory* node's name is empty or ends in "/"; it carries settings its
    descendants inherit and has at least one child. A *journal* node names a
    journal and has no children.
    """

    spec: pb.JournalSpec
    revision: int = 0
    delete: bool | None = None
    comment: str = ""
    children: list[JournalNode] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_dir(self) -> bool:
        return self.spec.name == "" or self.spec.name.endswith("/")

    # -- building

    @classmethod
    def from_specs(cls, specs: Iterable[tuple[pb.JournalSpec, int]]) -> JournalNode:
        """The hoisted tree of complete specs and their revisions."""
        nodes = [cls(spec=spec, revision=rev) for spec, rev in specs]
        nodes.sort(key=lambda n: n.name)
        tree = _extract_tree(nodes)
        return tree.hoisted()

    @classmethod
    def from_list_response(cls, response: pb.ListResponse) -> JournalNode:
        """The hoisted tree of a Journal List (what `journals list -o yaml` prints)."""
        return cls.from_specs(
            (j.spec or pb.JournalSpec(), j.mod_revision) for j in response.journals
        )

    @classmethod
    def from_yaml(cls, text: str, source: str = "journalspace") -> JournalNode:
        """Parse gazctl's journalspace YAML. Raises `SpecError` naming the bad key."""
        data = _load_yaml(text, source)
        return cls.from_data({} if data is None else data)

    @classmethod
    def from_data(cls, data: Any, path: str = "") -> JournalNode:
        """Parse an already-decoded journalspace tree and check its shape."""
        node = cls._parse(data, path)
        node.validate_tree(path)
        return node

    @classmethod
    def _parse(cls, data: Any, path: str) -> JournalNode:
        if not isinstance(data, Mapping):
            raise _bad(path, "a journalspace node table", data)
        meta_kinds = {**_META, "children": _Kind("a list", lambda v, p: v, list)}
        fields, meta = _parse_fields(
            data, JOURNAL_FIELDS, path, meta_kinds, nested={"fragment": FRAGMENT_FIELDS}
        )
        children_data = meta.get("children") or []
        children_path = join_path(path, "children")
        if not isinstance(children_data, list):
            raise _bad(children_path, "a list of journalspace nodes", children_data)
        children = [
            cls._parse(child, f"{children_path}[{i}]") for i, child in enumerate(children_data)
        ]
        return cls(
            spec=journal_spec(fields),
            revision=meta.get("revision", 0),
            delete=meta.get("delete"),
            comment=meta.get("comment", ""),
            children=children,
        )

    def validate_tree(self, path: str = "") -> None:
        """Check the tree's shape (Gazette's `Node.Validate`); specs may be partial."""
        if self.is_dir:
            if self.revision:
                raise SpecError(
                    join_path(path, "revision"),
                    f"a directory node ({self.name or '<root>'}) has no revision",
                )
            if not self.children:
                raise SpecError(
                    join_path(path, "children"),
                    f"directory node {self.name or '<root>'} needs one or more children "
                    "(names ending in '/' are directories)",
                )
            for i, child in enumerate(self.children):
                child_path = join_path(path, f"children[{i}]")
                if not child.name.startswith(self.name):
                    raise SpecError(
                        join_path(child_path, "name"),
                        f"{child.name!r} does not begin with its parent's name {self.name!r}",
                    )
                if i and self.children[i - 1].name >= child.name:
                    raise SpecError(
                        join_path(child_path, "name"),
                        f"children not in unique, sorted order "
                        f"({self.children[i - 1].name!r} >= {child.name!r})",
                    )
                child.validate_tree(child_path)
            return
        problem = _journal_name_problem(self.name)
        if problem:
            raise SpecError(join_path(path, "name"), problem)
        if self.children:
            raise SpecError(
                join_path(path, "children"),
                f"journal {self.name} cannot have children (only names ending in '/' can)",
            )

    # -- printing

    def to_data(self) -> dict[str, Any]:
        """The tree as plain data in gazctl's key order."""
        out = _dump_fields(journal_fields(self.spec), _JOURNAL_ORDER, JOURNAL_FIELDS)
        if self.revision:
            out["revision"] = self.revision
        if self.children:
            out["children"] = [c.to_data() for c in self.children]
        return _dump_meta(out, self.comment, self.delete)

    def to_yaml(self) -> str:
        return _dump_yaml(self.to_data())

    # -- the algebra

    def hoisted(self) -> JournalNode:
        """A copy with every setting all of a directory's children share moved up."""
        node = copy.deepcopy(self)
        _hoist(node)
        return node

    def journals(self) -> list[JournalNode]:
        """The journal (leaf) nodes, each with every inherited setting pushed in."""
        return [leaf for _, leaf in self._leaves()]

    def _leaves(self) -> list[tuple[str, JournalNode]]:
        out: list[tuple[str, JournalNode]] = []
        _push_down(self, "", {}, None, out)
        return out

    def validate(self) -> None:
        """Validate every complete journal spec that is not being deleted.

        An error's path leads to the journal's node; the journal is named in
        the message, since the faulty value may be inherited from above.
        """
        self.validate_tree()
        for path, journal in self._leaves():
            if journal.delete:
                continue
            try:
                validate_journal_spec(journal.spec)
            except SpecError as exc:
                raise SpecError(
                    join_path(path, exc.path), f"{exc.message} (journal {journal.name})"
                ) from None

    def apply_request(self) -> pb.ApplyRequest:
        """The Apply that makes the broker match this tree, in journal order."""
        changes = []
        for journal in self.journals():
            if journal.delete:
                changes.append(
                    pb.ApplyRequestChange(expect_mod_revision=journal.revision, delete=journal.name)
                )
            else:
                changes.append(
                    pb.ApplyRequestChange(expect_mod_revision=journal.revision, upsert=journal.spec)
                )
        return pb.ApplyRequest(changes=changes)


def _hoist(node: JournalNode) -> None:
    if not node.is_dir:
        return
    for child in node.children:
        _hoist(child)
    child_fields = [journal_fields(c.spec) for c in node.children]
    common = {k: v for k, v in child_fields[0].items() if k != "name"} if child_fields else {}
    for fields in child_fields[1:]:
        common = intersect(common, fields)
    deletes = {c.delete for c in node.children}
    node.delete = deletes.pop() if len(deletes) == 1 else None
    node.spec = journal_spec(common | {"name": node.name})
    for child, fields in zip(node.children, child_fields, strict=True):
        if node.delete is not None:
            child.delete = None
        child.spec = journal_spec(subtract(fields, common))


def _push_down(
    node: JournalNode,
    path: str,
    inherited: Fields,
    delete: bool | None,
    out: list[tuple[str, JournalNode]],
) -> None:
    fields = union(journal_fields(node.spec), inherited)
    node_delete = node.delete if node.delete is not None else delete
    if not node.is_dir:
        leaf = JournalNode(
            spec=journal_spec(fields),
            revision=node.revision,
            delete=node_delete,
            comment=node.comment,
        )
        out.append((path, leaf))
        return
    fields.pop("name", None)
    for i, child in enumerate(node.children):
        _push_down(child, join_path(path, f"children[{i}]"), fields, node_delete, out)


def _shared_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of `a` and `b` that ends in "/"."""
    if len(a) > len(b):
        a, b = b, a
    length = 0
    while True:
        n = a.find("/", length)
        if n == -1 or a[: n + 1] != b[: n + 1]:
            return length
        length = n + 1


def _extract_tree(nodes: list[JournalNode]) -> JournalNode:
    """Group name-ordered nodes into directories by their shared path prefixes."""
    if not nodes:
        return JournalNode(spec=pb.JournalSpec())
    nodes = list(nodes)
    while len(nodes) > 1:
        # The longest run of neighbours sharing the longest prefix becomes one directory.
        begin, end, best = 0, 0, -1
        for i in range(1, len(nodes)):
            shared = _shared_prefix(nodes[i].name, nodes[i - 1].name)
            if shared > best:
                begin, end, best = i - 1, i + 1, shared
            elif shared == best and i == end:
                end = i + 1
        parent = JournalNode(
            spec=pb.JournalSpec(name=nodes[begin].name[:best]), children=nodes[begin:end]
        )
        nodes[begin:end] = [parent]
    return nodes[0]


# --------------------------------------------------------------------------
# Validation of complete specs (Gazette's Validate)

MIN_SHARD_ID_LEN, MAX_SHARD_ID_LEN = 4, 512
MIN_JOURNAL_NAME_LEN, MAX_JOURNAL_NAME_LEN = 4, 512
MAX_JOURNAL_REPLICATION = 5
MIN_FRAGMENT_LEN, MAX_FRAGMENT_LEN = 1 << 10, 1 << 34
MIN_REFRESH, MAX_REFRESH = datetime.timedelta(seconds=1), datetime.timedelta(hours=24)
MIN_FLUSH = datetime.timedelta(minutes=1)


def _journal_name_problem(name: str) -> str | None:
    problem = lbl.validate_token(name, MIN_JOURNAL_NAME_LEN, MAX_JOURNAL_NAME_LEN, lbl.PATH_SYMBOLS)
    if problem:
        return f"journal name {name!r}: {problem}"
    if posixpath.normpath(name) != name:
        return f"journal name {name!r} must be a clean path"
    if name.startswith("/"):
        return f"journal name {name!r} cannot begin with '/'"
    return None


def validate_shard_spec(spec: pc.ShardSpec) -> None:
    """Raise `SpecError` (path = YAML key) unless the spec is complete and valid."""
    problem = lbl.validate_token(spec.id, MIN_SHARD_ID_LEN, MAX_SHARD_ID_LEN, lbl.PATH_SYMBOLS)
    if problem:
        raise SpecError("id", f"shard id {spec.id!r}: {problem}")
    if spec.recovery_log_prefix:
        problem = _journal_name_problem(f"{spec.recovery_log_prefix}/{spec.id}")
        if problem:
            raise SpecError("recovery_log_prefix", f"recovery log {problem}")
        hint = spec.hint_prefix
        if not (
            posixpath.isabs(hint) and posixpath.normpath(hint) == hint and posixpath.basename(hint)
        ):
            raise SpecError(
                "hint_prefix",
                f"expected an absolute, clean, non-directory path like /gazette/hints, got {hint!r}",
            )
    elif spec.hint_prefix:
        raise SpecError(
            "hint_prefix", f"set ({spec.hint_prefix!r}) but recovery_log_prefix is empty"
        )
    if spec.hint_backups < 0:
        raise SpecError("hint_backups", f"expected >= 0, got {spec.hint_backups}")
    if spec.min_txn_duration and spec.min_txn_duration < datetime.timedelta(0):
        raise SpecError(
            "min_txn_duration", f"expected >= 0, got {format_duration(spec.min_txn_duration)}"
        )
    if not spec.max_txn_duration or spec.max_txn_duration <= datetime.timedelta(0):
        raise SpecError(
            "max_txn_duration",
            f'expected a duration > 0 such as "1s", got {format_duration(spec.max_txn_duration)}',
        )
    labels = spec.labels.labels if spec.labels else []
    try:
        lbl.validate_label_set(labels)
    except lbl.LabelError as exc:
        raise SpecError("labels", str(exc)) from None
    if lbl.values_of(labels, "id"):
        raise SpecError("labels", 'a shard cannot carry the label "id" (it is the shard id)')
    if not spec.sources:
        raise SpecError("sources", "expected at least one source journal")
    for i, source in enumerate(spec.sources):
        problem = _journal_name_problem(source.journal)
        if problem:
            raise SpecError(f"sources[{i}].journal", problem)
        if source.min_offset < 0:
            raise SpecError(f"sources[{i}].min_offset", f"expected >= 0, got {source.min_offset}")
        if i and spec.sources[i - 1].journal >= source.journal:
            raise SpecError(
                f"sources[{i}].journal",
                f"sources not in unique, sorted order "
                f"({spec.sources[i - 1].journal!r} >= {source.journal!r})",
            )


def validate_journal_spec(spec: pb.JournalSpec) -> None:
    """Raise `SpecError` (path = YAML key) unless the spec is complete and valid."""
    problem = _journal_name_problem(spec.name)
    if problem:
        raise SpecError("name", problem)
    if not 1 <= spec.replication <= MAX_JOURNAL_REPLICATION:
        raise SpecError(
            "replication",
            f"expected 1 <= replication <= {MAX_JOURNAL_REPLICATION}, got {spec.replication}",
        )
    labels = spec.labels.labels if spec.labels else []
    try:
        lbl.validate_label_set(labels)
    except lbl.LabelError as exc:
        raise SpecError("labels", str(exc)) from None
    for reserved in ("name", "prefix"):
        if lbl.values_of(labels, reserved):
            raise SpecError("labels", f"a journal cannot carry the label {reserved!r}")
    frag = spec.fragment or pb.JournalSpecFragment()
    if not MIN_FRAGMENT_LEN <= frag.length <= MAX_FRAGMENT_LEN:
        raise SpecError(
            "fragment.length",
            f"expected {MIN_FRAGMENT_LEN} <= length <= {MAX_FRAGMENT_LEN}, got {frag.length}",
        )
    if frag.compression_codec == pb.CompressionCodec.INVALID:
        raise SpecError("fragment.compression_codec", "expected a codec such as NONE or SNAPPY")
    refresh = frag.refresh_interval or datetime.timedelta(0)
    if not MIN_REFRESH <= refresh <= MAX_REFRESH:
        raise SpecError(
            "fragment.refresh_interval",
            f"expected 1s <= interval <= 24h0m0s, got {format_duration(refresh)}",
        )
    if frag.flush_interval and frag.flush_interval < MIN_FLUSH:
        raise SpecError(
            "fragment.flush_interval",
            f"expected 0s or >= 1m0s, got {format_duration(frag.flush_interval)}",
        )
    if spec.flags not in {f.value for f in pb.JournalSpecFlag}:
        raise SpecError("flags", f"invalid combination ({spec.flags})")
    if spec.max_append_rate < 0:
        raise SpecError("max_append_rate", f"expected >= 0, got {spec.max_append_rate}")
