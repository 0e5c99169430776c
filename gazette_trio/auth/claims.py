"""Claims: the scope of an authorization, and their JSON form in a token.

A token's payload holds Gazette's `pb.Claims`: `cap` (a capability mask),
`sel` (a label selector: the journals or shards the token reaches) and the
registered `exp` and `iat` times in Unix seconds. Their JSON is what Go's
encoding/json makes of Gazette's structs, byte for byte: a selector is
`{"include":{"labels":[...]},"exclude":{"labels":...}}` with `null` for no
labels, a label omits an empty value and a false prefix, and `<`, `>`, `&`
are escaped as Go escapes them. So a token minted here is the token
Gazette's clients would mint for the same claims at the same second.

This module owns that mapping and a claim set's match against a resource's
labels. Signing is `tokens`'; which claims an RPC needs is `authorizer`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import AuthError
from ..protocol import labels as lbl
from ..protocol import protocol as pb


class ClaimsError(AuthError, ValueError):
    """A token's payload is not Gazette's claims."""


@dataclass(frozen=True)
class Claims:
    """What a token grants: `capability` over resources `selector` matches."""

    capability: int = 0
    selector: pb.LabelSelector = field(default_factory=pb.LabelSelector)
    issued_at: int | None = None
    expires_at: int | None = None

    def matches_journal(self, name: str, labels: pb.LabelSet | None) -> bool:
        """Whether the journal is in scope: its labels joined with its `name`
        meta-label, as Gazette's resolver matches (no `prefix` rewriting)."""
        return lbl.matches(self.selector, labels, _meta("name", name))

    def matches_shard(self, shard_id: str, labels: pb.LabelSet | None) -> bool:
        """Whether the shard is in scope: its labels joined with its `id`."""
        return lbl.matches(self.selector, labels, _meta("id", shard_id))

    def matches_name(self, name: str) -> bool:
        """Whether a journal is in scope by its name alone (Apply deletions)."""
        return lbl.matches(self.selector, None, _meta("name", name))

    def matches_id(self, shard_id: str) -> bool:
        """Whether a shard is in scope by its id alone (Apply deletions, Unassign)."""
        return lbl.matches(self.selector, None, _meta("id", shard_id))


def _meta(name: str, value: str) -> pb.LabelSet:
    return pb.LabelSet(labels=[pb.Label(name=name, value=value)])


# --------------------------------------------------------------------------
# JSON, as Go encodes Gazette's structs


def _label_json(label: pb.Label) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if label.name:
        out["name"] = label.name
    if label.value:
        out["value"] = label.value
    if label.prefix:
        out["prefix"] = True
    return out


def _set_json(labels: pb.LabelSet | None) -> dict[str, Any]:
    items = list(labels.labels) if labels is not None else []
    return {"labels": [_label_json(x) for x in items] if items else None}


def selector_json(selector: pb.LabelSelector | None) -> dict[str, Any]:
    """The JSON object Go's encoding/json makes of a `pb.LabelSelector`."""
    include = selector.include if selector is not None else None
    exclude = selector.exclude if selector is not None else None
    return {"include": _set_json(include), "exclude": _set_json(exclude)}


def to_json(claims: Claims) -> bytes:
    """The payload of a token for `claims`, in Go's field order and escaping."""
    doc: dict[str, Any] = {"cap": claims.capability, "sel": selector_json(claims.selector)}
    if claims.expires_at is not None:
        doc["exp"] = claims.expires_at
    if claims.issued_at is not None:
        doc["iat"] = claims.issued_at
    return go_json(doc)


def go_json(doc: Any) -> bytes:
    """Compact JSON with Go's HTML-safe escaping of `<`, `>`, `&` and of the
    line and paragraph separators; other text is UTF-8 as written."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return text.encode()


_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def _labels_from(doc: Any, where: str) -> pb.LabelSet:
    if doc is None:
        return pb.LabelSet()
    if not isinstance(doc, dict):
        raise ClaimsError(f"{where}: expected an object")
    items = doc.get("labels")
    if items is None:
        return pb.LabelSet()
    if not isinstance(items, list):
        raise ClaimsError(f"{where}.labels: expected a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ClaimsError(f"{where}.labels[{i}]: expected an object")
        name, value, prefix = item.get("name", ""), item.get("value", ""), item.get("prefix", False)
        if not isinstance(name, str) or not isinstance(value, str) or not isinstance(prefix, bool):
            raise ClaimsError(f"{where}.labels[{i}]: expected name and value strings")
        out.append(pb.Label(name=name, value=value, prefix=prefix))
    return pb.LabelSet(labels=out)


def selector_from_json(doc: Any) -> pb.LabelSelector:
    """A `pb.LabelSelector` from its Go JSON form (`null` is the empty one)."""
    if doc is None:
        return pb.LabelSelector()
    if not isinstance(doc, dict):
        raise ClaimsError("sel: expected an object")
    return pb.LabelSelector(
        include=_labels_from(doc.get("include"), "sel.include"),
        exclude=_labels_from(doc.get("exclude"), "sel.exclude"),
    )


def _numeric_date(doc: dict[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClaimsError(f"{key}: expected a number of seconds")
    return int(value)


def from_json(payload: bytes) -> Claims:
    """Claims from a token's payload; a malformed one is a `ClaimsError`."""
    return from_doc(payload_doc(payload))


def payload_doc(payload: bytes) -> dict[str, Any]:
    """A token's payload as a JSON object (`ClaimsError` if it is not one),
    for a caller that reads more of it than `Claims` carries."""
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        raise ClaimsError(f"payload is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ClaimsError("payload: expected a JSON object")
    return doc


def from_doc(doc: dict[str, Any]) -> Claims:
    """Claims from a token's payload already parsed (`payload_doc`)."""
    cap = doc.get("cap", 0)
    if isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= 0xFFFFFFFF:
        raise ClaimsError(f"cap: expected a 32-bit capability mask, not {cap!r}")
    return Claims(
        capability=cap,
        selector=selector_from_json(doc.get("sel")),
        issued_at=_numeric_date(doc, "iat"),
        expires_at=_numeric_date(doc, "exp"),
    )
