"""Journalspace: JournalSpecs as gazctl's YAML tree, and back.

Operators describe journals in YAML the way `gazctl journals apply` reads
them: a tree of nodes where a *directory* node (its name ends in '/') holds
fields its children share, and each *terminal* node is a journal:

    name: examples/
    replication: 1
    labels:
    - name: content-type
      value: application/x-ndjson
    fragment:
      length: 4194304
      compression_codec: NONE
      refresh_interval: 1m0s
    children:
    - name: examples/clicks/part-000
    - name: examples/clicks/part-001
      revision: 12          # expect this mod revision (0 or absent: create)
    - name: examples/old
      delete: true
      revision: 7

A child inherits every field it leaves unset (labels merge, the child's
values winning per label name). `changes_from_yaml` flattens such a document
into Apply changes; `tree_from_journals` builds the hoisted tree from a List
response (shared fields moved up to parents), as `gazctl journals list
--format yaml` prints it. Field names, enum names and durations ("1m0s") are
gazctl's, so files move between the two tools.

This module owns the YAML shape and the tree transformations; applying the
changes is `list_apply`'s job.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..protocol import labels as L
from ..protocol import protocol as pb
from ..protocol.validation import ValidationError, go_quote
from .durations import format_duration, parse_duration
from .journal_spec import intersect_specs, subtract_specs, union_specs

_SPEC_KEYS = ("name", "replication", "labels", "fragment", "flags", "max_append_rate", "suspend")
_NODE_KEYS = ("comment", "delete", "revision", "children")
_FRAGMENT_DURATIONS = ("refresh_interval", "retention", "flush_interval")
_FRAGMENT_KEYS = (
    "length",
    "compression_codec",
    "stores",
    *_FRAGMENT_DURATIONS,
    "path_postfix_template",
)


# --------------------------------------------------------------------------
# Spec <-> plain data


def spec_to_dict(spec: pb.JournalSpec) -> dict[str, Any]:
    """A spec as gazctl's YAML fields, omitting zero values."""
    out: dict[str, Any] = {}
    if spec.name:
        out["name"] = spec.name
    if spec.replication:
        out["replication"] = spec.replication
    pairs = L.pairs_of(spec.labels)
    if pairs:
        out["labels"] = [{"name": n, "value": v} for n, v in pairs]
    frag = spec.fragment
    if frag is not None:
        f: dict[str, Any] = {}
        if frag.length:
            f["length"] = frag.length
        if frag.compression_codec:
            f["compression_codec"] = pb.CompressionCodec(frag.compression_codec).name
        if frag.stores:
            f["stores"] = list(frag.stores)
        for key in _FRAGMENT_DURATIONS:
            value = getattr(frag, key)
            if value:
                f[key] = format_duration(value)
        if frag.path_postfix_template:
            f["path_postfix_template"] = frag.path_postfix_template
        if f:
            out["fragment"] = f
    if spec.flags:
        # A combination without a name (e.g. 35) is written as its number, as gazctl does.
        name = pb.JournalSpecFlag(spec.flags).name
        out["flags"] = name if name else int(spec.flags)
    if spec.max_append_rate:
        out["max_append_rate"] = spec.max_append_rate
    suspend = spec.suspend
    if suspend is not None and (suspend.level or suspend.offset):
        # Written back as listed, so that an edit and re-apply keeps it.
        s: dict[str, Any] = {}
        if suspend.level:
            s["level"] = pb.JournalSpecSuspendLevel(suspend.level).name
        if suspend.offset:
            s["offset"] = suspend.offset
        out["suspend"] = s
    return out


def _unknown(data: dict[str, Any], allowed: Iterable[str], where: str) -> None:
    extra = sorted(set(data) - set(allowed))
    if extra:
        raise ValidationError(
            f"unknown field(s) {', '.join(extra)} (expected {', '.join(allowed)})", where
        )


def _enum(enum: Any, value: Any, what: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(enum[str(value)])
    except KeyError:
        names = ", ".join(e.name for e in enum)
        raise ValidationError(
            f"{go_quote(str(value))} is not a valid {what} (options are {names})"
        ) from None


def spec_from_dict(data: dict[str, Any], where: str = "") -> pb.JournalSpec:
    """A (possibly partial) spec from gazctl's YAML fields; unknown fields,
    bad enum names and bad durations raise `ValidationError` naming them."""
    _unknown(data, (*_SPEC_KEYS, *_NODE_KEYS), where or "spec")
    try:
        spec = pb.JournalSpec(name=str(data.get("name") or ""))
        spec.replication = int(data.get("replication") or 0)
        labels = data.get("labels") or []
        if not isinstance(labels, list):
            raise ValidationError("labels must be a list of {name, value}")
        pairs = []
        for i, label in enumerate(labels):
            if not isinstance(label, dict) or "name" not in label:
                raise ValidationError(f"labels[{i}] must be a mapping with a name")
            _unknown(label, ("name", "value"), f"labels[{i}]")
            label_value = label.get("value")
            pairs.append((str(label["name"]), "" if label_value is None else str(label_value)))
        spec.labels = L.label_set(pairs)
        frag_data = data.get("fragment")
        if frag_data:
            if not isinstance(frag_data, dict):
                raise ValidationError("fragment must be a mapping")
            _unknown(frag_data, _FRAGMENT_KEYS, "fragment")
            frag = pb.JournalSpecFragment(length=int(frag_data.get("length") or 0))
            if frag_data.get("compression_codec"):
                frag.compression_codec = pb.CompressionCodec(
                    _enum(pb.CompressionCodec, frag_data["compression_codec"], "CompressionCodec")
                )
            frag.stores = [str(s) for s in frag_data.get("stores") or []]
            for key in _FRAGMENT_DURATIONS:
                raw = frag_data.get(key)
                if raw is None or raw == "":
                    continue
                try:
                    value: datetime.timedelta = parse_duration(str(raw))
                except ValueError as exc:
                    raise ValidationError(str(exc), "fragment", key) from None
                setattr(frag, key, value)
            frag.path_postfix_template = str(frag_data.get("path_postfix_template") or "")
            spec.fragment = frag
        if data.get("flags"):
            spec.flags = _enum(pb.JournalSpecFlag, data["flags"], "JournalSpec_Flag")
        spec.max_append_rate = int(data.get("max_append_rate") or 0)
        suspend_data = data.get("suspend")
        if suspend_data:
            if not isinstance(suspend_data, dict):
                raise ValidationError("suspend must be a mapping")
            _unknown(suspend_data, ("level", "offset"), "suspend")
            level = suspend_data.get("level") or 0
            spec.suspend = pb.JournalSpecSuspend(
                level=pb.JournalSpecSuspendLevel(
                    _enum(pb.JournalSpecSuspendLevel, level, "JournalSpec_Suspend_Level")
                ),
                offset=int(suspend_data.get("offset") or 0),
            )
    except ValidationError as exc:
        if where:
            exc.extend(where)
        raise
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc), *([where] if where else [])) from None
    return spec


# --------------------------------------------------------------------------
# The tree


@dataclass
class Node:
    """A node of a journalspace tree (see the module docstring)."""

    spec: pb.JournalSpec
    comment: str = ""
    delete: bool | None = None
    revision: int = 0
    children: list[Node] = field(default_factory=list)

    @property
    def is_dir(self) -> bool:
        return not self.spec.name or self.spec.name.endswith("/")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.comment:
            out["comment"] = self.comment
        if self.delete is not None:
            out["delete"] = self.delete
        out.update(spec_to_dict(self.spec))
        if self.revision:
            out["revision"] = self.revision
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out


def node_from_dict(data: Any, where: str = "root") -> Node:
    if not isinstance(data, dict):
        raise ValidationError("expected a mapping", where)
    spec = spec_from_dict(data, where)
    children = data.get("children") or []
    if not isinstance(children, list):
        raise ValidationError("children must be a list", where)
    delete = data.get("delete")
    return Node(
        spec=spec,
        comment=str(data.get("comment") or ""),
        delete=None if delete is None else bool(delete),
        revision=int(data.get("revision") or 0),
        children=[
            node_from_dict(c, f"{spec.name or where}.children[{i}]") for i, c in enumerate(children)
        ],
    )


def validate_tree(node: Node) -> None:
    """Directory nodes have children whose names they prefix, in order, and
    no revision; terminal nodes have no children."""
    name = node.spec.name
    if node.is_dir:
        if node.revision:
            raise ValidationError(f"unexpected Revision ({node.revision})", name or "root")
        if not node.children:
            raise ValidationError("expected one or more Children", name or "root")
        for i, child in enumerate(node.children):
            if not child.spec.name.startswith(name):
                raise ValidationError(
                    f"expected parent Name to prefix child ({name} vs {child.spec.name})"
                )
            if i and node.children[i - 1].spec.name >= child.spec.name:
                raise ValidationError(
                    f"expected Children to be ordered (ind {i}; {node.children[i - 1].spec.name} vs {child.spec.name})"
                )
            validate_tree(child)
    elif node.children:
        raise ValidationError(f"expected no Children with non-directory Node ({name})")


def push_down(node: Node) -> list[Node]:
    """Terminal nodes with every inherited field made explicit."""
    if not node.is_dir:
        return [node]
    out = []
    for child in node.children:
        merged = Node(
            spec=union_specs(child.spec, node.spec),
            comment=child.comment,
            delete=child.delete if child.delete is not None else node.delete,
            revision=child.revision,
            children=child.children,
        )
        merged.spec.name = child.spec.name
        out.extend(push_down(merged))
    return out


def changes_from_yaml(text: str) -> list[pb.ApplyRequestChange]:
    """Apply changes for every journal of a journalspace YAML document (or
    several documents, `---`-separated). Specs are validated by the server."""
    changes = []
    for doc in yaml.safe_load_all(text):
        if doc is None:
            continue
        root = node_from_dict(doc)
        validate_tree(root)
        for node in push_down(root):
            if node.delete:
                changes.append(
                    pb.ApplyRequestChange(delete=node.spec.name, expect_mod_revision=node.revision)
                )
            else:
                changes.append(
                    pb.ApplyRequestChange(upsert=node.spec, expect_mod_revision=node.revision)
                )
    return changes


def _shared_prefix(a: str, b: str) -> int:
    """Length of the common prefix of `a` and `b` that ends at a '/'."""
    if len(a) > len(b):
        a, b = b, a
    length = 0
    while True:
        index = a.find("/", length)
        if index == -1 or a[: index + 1] != b[: index + 1]:
            return length
        length = index + 1


def _extract_tree(nodes: list[Node]) -> Node:
    if not nodes:
        return Node(spec=pb.JournalSpec())
    nodes = list(nodes)
    while len(nodes) > 1:
        begin, end, longest = 0, 0, -1
        for i in range(1, len(nodes)):
            n = _shared_prefix(nodes[i].spec.name, nodes[i - 1].spec.name)
            if n > longest:
                begin, end, longest = i - 1, i + 1, n
            elif n == longest and i == end:
                end = i + 1
        parent = Node(
            spec=pb.JournalSpec(name=nodes[begin].spec.name[:longest]),
            children=nodes[begin:end],
        )
        nodes[begin:end] = [parent]
    return nodes[0]


def _hoist(node: Node) -> None:
    if not node.is_dir:
        return
    for child in node.children:
        _hoist(child)
    name = node.spec.name
    shared = node.children[0].spec
    delete = node.children[0].delete
    for child in node.children[1:]:
        shared = intersect_specs(shared, child.spec)
        if child.delete != delete:
            delete = None
    node.spec = shared
    node.spec.name = name
    node.delete = delete
    for child in node.children:
        if delete is not None:
            child.delete = None
        child_name = child.spec.name
        child.spec = subtract_specs(child.spec, node.spec)
        child.spec.name = child_name


def tree_from_journals(journals: Sequence[pb.ListResponseJournal]) -> Node:
    """The hoisted tree of listed journals (shared fields on parents)."""
    nodes = [
        Node(spec=pb.JournalSpec.parse(bytes(j.spec or pb.JournalSpec())), revision=j.mod_revision)
        for j in sorted(journals, key=lambda j: j.spec.name if j.spec else "")
    ]
    tree = _extract_tree(nodes)
    _hoist(tree)
    return tree


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
