"""Shardspace: ShardSpecs as gazctl's YAML, with common settings factored out.

Operators keep ShardSpecs in YAML the way gazctl does: a `common` ShardSpec
and a list of `shards`; a field a shard leaves unset takes the common value
(labels merge, the shard's values winning per label name):

    common:
      max_txn_duration: 1s
      recovery_log_prefix: examples/recovery
      hint_prefix: /gazette/hints
    shards:
    - id: count-000
      sources:
      - journal: examples/lines/part-000
      revision: 12          # as listed; 0 or absent creates; -1 overwrites
    - id: count-001
      delete: true
      revision: 13

Listed shards print "hoisted": whatever every shard agrees on moves up to
`common`, so each setting shows once. Going the other way, `flattened()`
pushes `common` down into complete specs and `apply_request()` builds the
Apply, each change carrying the revision the operator saw.

Keys and value forms are gazctl's (Go field names in snake case, durations
as "1s"), so files move between gazctl and gazette-trio. A malformed file is
a `SpecError` whose `path` names the key (`shards[2].max_txn_duration`) and
whose message says what was expected.

This module owns the file format. The field algebra and the validation of a
complete spec are `gazette_trio.consumer.shard_spec`'s; labels and durations
are `gazette_trio.broker`'s; journals have their own tree format in
`gazette_trio.broker.journalspace`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..broker.durations import format_duration, parse_duration
from ..consumer import shard_spec
from ..errors import GazetteTrioError
from ..protocol import consumer as pc
from ..protocol import labels as lbl
from ..protocol import protocol as pb
from ..protocol.validation import ValidationError

__all__ = ["SHARD_FIELDS", "ShardEntry", "ShardSpace", "SpecError", "join_path"]

DURATION_EXAMPLES = '"1s", "500ms", "2m" or "1h30m"'


class SpecError(GazetteTrioError, ValueError):
    """A shardspace is malformed. `path` names where (`shards[1].id`)."""

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


def _bad(path: str, kind: str, value: Any) -> SpecError:
    return SpecError(path, f"expected {kind}, got {_describe(value)}")


# --------------------------------------------------------------------------
# Field kinds: a YAML value checked and set on a ShardSpec


@dataclass(frozen=True)
class _Field:
    parse: Callable[[Any, str], Any]
    """YAML value -> the message field's value (raises SpecError naming the path)."""
    dump: Callable[[Any], Any]
    """The message field's value -> YAML value, or None to omit it."""


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, "a string", value)
    return value


def _int(lo: int, hi: int, what: str) -> Callable[[Any, str], int]:
    def parse(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(path, what, value)
        if not lo <= value <= hi:
            raise SpecError(path, f"expected {what} in [{lo}, {hi}], got {value}")
        return value

    return parse


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(path, "true or false", value)
    return value


def _duration(value: Any, path: str) -> datetime.timedelta | None:
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return None
    if not isinstance(value, str):
        raise _bad(path, f"a duration string like {DURATION_EXAMPLES}", value)
    try:
        parsed = parse_duration(value)
    except ValueError:
        raise SpecError(
            path, f"expected a duration like {DURATION_EXAMPLES}, got {value!r}"
        ) from None
    return parsed or None


def _labels(value: Any, path: str) -> pb.LabelSet:
    if not isinstance(value, list):
        raise _bad(path, "a list of {name, value} tables", value)
    pairs = []
    for i, item in enumerate(value):
        item_path = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            raise _bad(item_path, "a {name, value} table", item)
        unknown = sorted(set(map(str, item)) - {"name", "value"})
        if unknown:
            raise SpecError(
                join_path(item_path, unknown[0]), "unknown field (expected name, value)"
            )
        name, label_value = item.get("name"), item.get("value", "")
        if not isinstance(name, str) or not name:
            raise SpecError(join_path(item_path, "name"), f"expected a label name, got {name!r}")
        if not isinstance(label_value, str):
            raise _bad(join_path(item_path, "value"), "a string", label_value)
        pairs.append((name, label_value))
    labels = lbl.label_set(pairs)
    try:
        lbl.validate_label_set(labels)
    except ValidationError as exc:
        raise SpecError(path, str(exc)) from None
    return labels


def _sources(value: Any, path: str) -> list[pc.ShardSpecSource]:
    if not isinstance(value, list):
        raise _bad(path, "a list of {journal, min_offset} tables", value)
    out = []
    for i, item in enumerate(value):
        item_path = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            raise _bad(item_path, "a {journal, min_offset} table", item)
        unknown = sorted(set(map(str, item)) - {"journal", "min_offset"})
        if unknown:
            raise SpecError(
                join_path(item_path, unknown[0]), "unknown field (expected journal, min_offset)"
            )
        journal = item.get("journal")
        if not isinstance(journal, str) or not journal:
            raise SpecError(
                join_path(item_path, "journal"), f"expected a journal name, got {journal!r}"
            )
        offset = item.get("min_offset", 0)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise _bad(join_path(item_path, "min_offset"), "a byte offset >= 0", offset)
        out.append(pc.ShardSpecSource(journal=journal, min_offset=offset))
    return out


def _dump_sources(sources: list[pc.ShardSpecSource]) -> list[dict[str, Any]] | None:
    out = []
    for source in sources:
        item: dict[str, Any] = {"journal": source.journal}
        if source.min_offset:
            item["min_offset"] = source.min_offset
        out.append(item)
    return out or None


def _dump_labels(labels: pb.LabelSet | None) -> list[dict[str, str]] | None:
    return [{"name": n, "value": v} for n, v in lbl.pairs_of(labels)] or None


def _same(value: Any) -> Any:
    return value or None


def _dump_duration(value: datetime.timedelta | None) -> str | None:
    return format_duration(value) if value else None


_UINT32 = _int(0, 2**32 - 1, "a non-negative integer")

SHARD_FIELDS: dict[str, _Field] = {
    "id": _Field(_str, _same),
    "sources": _Field(_sources, _dump_sources),
    "recovery_log_prefix": _Field(_str, _same),
    "hint_prefix": _Field(_str, _same),
    "hint_backups": _Field(_int(-(2**31), 2**31 - 1, "an integer"), _same),
    "max_txn_duration": _Field(_duration, _dump_duration),
    "min_txn_duration": _Field(_duration, _dump_duration),
    "disable": _Field(_bool, _same),
    "hot_standbys": _Field(_UINT32, _same),
    "labels": _Field(_labels, _dump_labels),
    "disable_wait_for_ack": _Field(_bool, _same),
    "ring_buffer_size": _Field(_UINT32, _same),
    "read_channel_size": _Field(_UINT32, _same),
}
"""The ShardSpec keys of a shardspace, in gazctl's (printing) order."""

_ENTRY_KEYS = ("comment", "delete", "revision")


def _spec_from(data: Mapping[str, Any], path: str, extra: Iterable[str] = ()) -> pc.ShardSpec:
    allowed = [*SHARD_FIELDS, *extra]
    spec = pc.ShardSpec(labels=pb.LabelSet())
    for key, value in data.items():
        if key in SHARD_FIELDS:
            setattr(spec, key, SHARD_FIELDS[key].parse(value, join_path(path, str(key))))
        elif key not in allowed:
            raise SpecError(
                join_path(path, str(key)), f"unknown field (expected one of: {', '.join(allowed)})"
            )
    return spec


def _spec_to(spec: pc.ShardSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind in SHARD_FIELDS.items():
        value = kind.dump(getattr(spec, key))
        if value is not None:
            out[key] = value
    return out


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

    common: pc.ShardSpec = field(default_factory=lambda: pc.ShardSpec(labels=pb.LabelSet()))
    shards: list[ShardEntry] = field(default_factory=list)

    # -- building

    @classmethod
    def from_specs(cls, specs: Iterable[tuple[pc.ShardSpec, int]]) -> ShardSpace:
        """The hoisted shardspace of complete specs and their revisions."""
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
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise SpecError("", f"{source}: not valid YAML{where}: {problem}") from None
        return cls.from_data({} if data is None else data)

    @classmethod
    def from_data(cls, data: Any, path: str = "") -> ShardSpace:
        """Parse an already-decoded shardspace (from YAML or a TOML table)."""
        if not isinstance(data, Mapping):
            raise _bad(path, "a table with `common` and `shards`", data)
        unknown = sorted(set(map(str, data)) - {"common", "shards"})
        if unknown:
            raise SpecError(join_path(path, unknown[0]), "unknown field (expected common, shards)")
        common_path = join_path(path, "common")
        common_data = data.get("common") or {}
        if not isinstance(common_data, Mapping):
            raise _bad(common_path, "a table of ShardSpec fields", common_data)
        common = _spec_from(common_data, common_path)
        if common.id:
            raise SpecError(join_path(common_path, "id"), "an id cannot be common to shards")

        shards_path = join_path(path, "shards")
        shards_data = data.get("shards") or []
        if not isinstance(shards_data, list):
            raise _bad(shards_path, "a list of shards", shards_data)
        entries: list[ShardEntry] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(shards_data):
            item_path = f"{shards_path}[{i}]"
            if not isinstance(item, Mapping):
                raise _bad(item_path, "a table of ShardSpec fields", item)
            spec = _spec_from(item, item_path, _ENTRY_KEYS)
            if not spec.id:
                raise SpecError(join_path(item_path, "id"), "missing: every shard needs an id")
            if spec.id in seen:
                raise SpecError(
                    join_path(item_path, "id"),
                    f"duplicate shard id {spec.id!r} (also at {shards_path}[{seen[spec.id]}])",
                )
            seen[spec.id] = i
            delete = item.get("delete")
            if delete is not None:
                _bool(delete, join_path(item_path, "delete"))
            comment = _str(item.get("comment", ""), join_path(item_path, "comment"))
            revision = _int(-1, 2**63 - 1, "a revision (-1, 0 or an etcd revision)")(
                item.get("revision", 0), join_path(item_path, "revision")
            )
            entries.append(ShardEntry(spec, revision, delete, comment))
        return cls(common=common, shards=entries)

    # -- printing

    def to_data(self) -> dict[str, Any]:
        """The shardspace as plain data in gazctl's key order."""
        shards = []
        for entry in self.shards:
            item: dict[str, Any] = {}
            if entry.comment:
                item["comment"] = entry.comment
            if entry.delete is not None:
                item["delete"] = entry.delete
            item.update(_spec_to(entry.spec))
            if entry.revision:
                item["revision"] = entry.revision
            shards.append(item)
        return {"common": _spec_to(self.common), "shards": shards}

    def to_yaml(self) -> str:
        return yaml.safe_dump(
            self.to_data(), sort_keys=False, default_flow_style=False, allow_unicode=True
        )

    # -- the algebra

    def flattened(self) -> list[ShardEntry]:
        """Each shard with `common` pushed into the fields it leaves unset."""
        return [
            ShardEntry(shard_spec.union(e.spec, self.common), e.revision, e.delete, e.comment)
            for e in self.shards
        ]

    def hoisted(self) -> ShardSpace:
        """The same shards, with every field they all share moved to `common`."""
        flat = self.flattened()
        if not flat:
            return ShardSpace(common=self.common, shards=[])
        common = pc.ShardSpec.parse(bytes(flat[0].spec))
        common.id = ""
        for entry in flat[1:]:
            common = shard_spec.intersect(common, entry.spec)
        shards = [
            ShardEntry(shard_spec.subtract(e.spec, common), e.revision, e.delete, e.comment)
            for e in flat
        ]
        return ShardSpace(common=common, shards=shards)

    def validate(self) -> None:
        """Check every complete (pushed-down) spec not being deleted, as the Apply would.

        The error's path is the shard's (`shards[2]`); its message is
        Gazette's, naming the field (`invalid MaxTxnDuration ...`).
        """
        for i, entry in enumerate(self.flattened()):
            if entry.delete:
                continue
            try:
                shard_spec.validate(entry.spec)
            except ValidationError as exc:
                raise SpecError(f"shards[{i}]", f"shard {entry.spec.id}: {exc}") from None

    def apply_request(self) -> pc.ApplyRequest:
        """The Apply that makes the cluster match this file, ordered by shard id."""
        changes = []
        for entry in sorted(self.flattened(), key=lambda e: e.spec.id):
            if entry.delete:
                change = pc.ApplyRequestChange(
                    expect_mod_revision=entry.revision, delete=entry.spec.id
                )
            else:
                change = pc.ApplyRequestChange(
                    expect_mod_revision=entry.revision, upsert=entry.spec
                )
            changes.append(change)
        return pc.ApplyRequest(changes=changes)
