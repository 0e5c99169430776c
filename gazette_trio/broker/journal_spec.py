"""JournalSpec: Gazette's rules for a valid journal specification, and its algebra.

A `JournalSpec` names a journal and says how it is stored and who may use
it: replication, labels (including `content-type`), the target length of its
fragments, flags (read-only, write-only, read-write) and its suspension.
This module owns the checks Gazette applies before a spec is stored
(`validate_journal_spec`, with Gazette's wording), what the flags permit
(`may_read`, `may_write`), how many replicas a spec wants given its
suspension (`desired_replication`), a builder with sensible defaults for a
single machine (`new_journal_spec`), and the field-wise
union/intersection/subtraction that journalspace YAML trees use to push
shared fields down to children or hoist them up to parents.

It does not store specs or decide anything about revisions; the journal
server and the list/apply helpers do.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..protocol import labels as L
from ..protocol import protocol as pb
from ..protocol.validation import ValidationError, validate_journal_name
from .durations import format_duration as _go_duration

MAX_REPLICATION = 5
MIN_FRAGMENT_LEN = 1 << 10
MAX_FRAGMENT_LEN = 1 << 34
MIN_REFRESH_INTERVAL = datetime.timedelta(seconds=1)
MAX_REFRESH_INTERVAL = datetime.timedelta(hours=24)
MIN_FLUSH_INTERVAL = datetime.timedelta(minutes=1)

DEFAULT_FRAGMENT_LENGTH = 1 << 26
"""64 MiB: the fragment length `new_journal_spec` uses unless told otherwise."""

Flag = pb.JournalSpecFlag
_VALID_FLAGS = {int(f) for f in (Flag.NOT_SPECIFIED, Flag.O_RDONLY, Flag.O_WRONLY, Flag.O_RDWR)}


Level = pb.JournalSpecSuspendLevel
_VALID_LEVELS = {int(v) for v in (Level.NONE, Level.PARTIAL, Level.FULL)}


def suspend_level(spec: pb.JournalSpec) -> Level:
    """The spec's suspension level (NONE when it has no `suspend`)."""
    return Level(spec.suspend.level) if spec.suspend is not None else Level.NONE


def desired_replication(spec: pb.JournalSpec, max_replication: int | None = None) -> int:
    """Replicas the journal wants: its replication, but one read-only replica
    while partially suspended and none while fully suspended, bounded by
    `max_replication` (Gazette's `JournalSpec.DesiredReplication`)."""
    level = suspend_level(spec)
    wanted = spec.replication
    if level == Level.PARTIAL:
        wanted = 1
    elif level == Level.FULL:
        wanted = 0
    if max_replication is not None:
        wanted = min(wanted, max_replication)
    return wanted


def may_read(flags: int) -> bool:
    """Reads are allowed unless the journal is write-only."""
    return int(flags) in (int(Flag.NOT_SPECIFIED), int(Flag.O_RDONLY), int(Flag.O_RDWR))


def may_write(flags: int) -> bool:
    """Appends of content are allowed unless the journal is read-only."""
    return int(flags) in (int(Flag.NOT_SPECIFIED), int(Flag.O_WRONLY), int(Flag.O_RDWR))


def new_journal_spec(
    name: str,
    *,
    labels: Mapping[str, str] | pb.LabelSet | None = None,
    content_type: str | None = None,
    fragment_length: int = DEFAULT_FRAGMENT_LENGTH,
    flags: int = int(Flag.NOT_SPECIFIED),
    replication: int = 1,
    refresh_interval: datetime.timedelta = datetime.timedelta(minutes=1),
) -> pb.JournalSpec:
    """A valid spec for `name` with defaults that suit one machine.

    `content_type` is a shorthand for the `content-type` label, e.g.
    `new_journal_spec("clicks/part-000", content_type="application/x-ndjson")`.
    """
    label_set = labels if isinstance(labels, pb.LabelSet) else L.label_set(labels or {})
    if content_type is not None:
        label_set = L.set_value(label_set, L.CONTENT_TYPE, content_type)
    return pb.JournalSpec(
        name=name,
        replication=replication,
        labels=label_set,
        fragment=pb.JournalSpecFragment(
            length=fragment_length,
            compression_codec=pb.CompressionCodec.NONE,
            refresh_interval=refresh_interval,
        ),
        flags=flags,
    )


# --------------------------------------------------------------------------
# Validation

_TSPECIALS = set('()<>@,;:\\"/[]?=')


def _consume_token(text: str) -> tuple[str, str]:
    end = 0
    while end < len(text):
        ch = text[end]
        if ch in _TSPECIALS or ch <= " " or ch == "\x7f" or not ch.isascii():
            break
        end += 1
    return text[:end], text[end:]


def validate_media_type(value: str) -> None:
    """RFC 1521 media type (`type/subtype[; k=v]...`), worded as Go's `mime`."""
    base = value.split(";", 1)[0].strip().lower()
    major, rest = _consume_token(base)
    if not major:
        raise ValidationError("mime: no media type")
    if not rest:
        return
    if not rest.startswith("/"):
        raise ValidationError("mime: expected slash after first token")
    minor, rest = _consume_token(rest[1:])
    if not minor:
        raise ValidationError("mime: expected token after slash")
    if rest:
        raise ValidationError("mime: unexpected content after media subtype")
    for param in value.split(";")[1:]:
        key, eq, val = param.strip().partition("=")
        if not param.strip():
            continue
        if not eq or not _consume_token(key)[0] or _consume_token(key)[1] or not val:
            raise ValidationError("mime: invalid media parameter")


def validate_journal_label_constraints(labels: pb.LabelSet | None) -> None:
    """Single-value labels have one value; `content-type` parses as a media
    type; a message type needs a content type; a subtype needs a type."""
    L.validate_single_value_labels(labels)
    content_type = L.values_of(labels, L.CONTENT_TYPE)
    if content_type:
        try:
            validate_media_type(content_type[0])
        except ValidationError as exc:
            raise ValidationError(f"parsing {L.CONTENT_TYPE}: {exc}") from None
    if L.values_of(labels, L.MESSAGE_TYPE):
        if not content_type:
            raise ValidationError(f"expected {L.CONTENT_TYPE} label alongside {L.MESSAGE_TYPE}")
    elif L.values_of(labels, L.MESSAGE_SUB_TYPE):
        raise ValidationError(f"expected {L.MESSAGE_TYPE} label alongside {L.MESSAGE_SUB_TYPE}")


def validate_fragment_store(store: str) -> None:
    """An absolute gs/s3/azure/file URL whose path ends in '/'."""
    url = urlsplit(store)
    if not url.scheme:
        raise ValidationError(f"not absolute ({store})")
    if url.scheme in ("s3", "gs", "azure", "azure-ad"):
        if not url.netloc:
            raise ValidationError(f"missing bucket ({store})")
    elif url.scheme == "file":
        if url.netloc:
            raise ValidationError(f"file scheme cannot have host ({store})")
    else:
        raise ValidationError(f"invalid scheme ({url.scheme})")
    if not url.path.endswith("/"):
        raise ValidationError(f"path component doesn't end in '/' ({url.path})")


def validate_fragment_spec(fragment: pb.JournalSpecFragment | None) -> None:
    """Length within [1 KiB, 16 GiB], a known codec, valid stores, a refresh
    interval within [1s, 24h], a flush interval of 0 or at least 1m."""
    f = fragment if fragment is not None else pb.JournalSpecFragment()
    if f.length < MIN_FRAGMENT_LEN or f.length > MAX_FRAGMENT_LEN:
        raise ValidationError(
            f"invalid Length ({f.length}; expected {MIN_FRAGMENT_LEN} <= length <= {MAX_FRAGMENT_LEN})"
        )
    codec = int(f.compression_codec)
    if codec not in {int(c) for c in pb.CompressionCodec} or codec == int(
        pb.CompressionCodec.INVALID
    ):
        raise ValidationError(f"invalid value ({codec})").extend("CompressionCodec")
    for i, store in enumerate(f.stores):
        try:
            validate_fragment_store(store)
        except ValidationError as exc:
            raise exc.extend(f"Stores[{i}]") from None
        if (
            i == 0
            and store.startswith("file:")
            and codec == int(pb.CompressionCodec.GZIP_OFFLOAD_DECOMPRESSION)
        ):
            raise ValidationError(
                f"GZIP_OFFLOAD_DECOMPRESSION is incompatible with file:// stores ({store})"
            )
    refresh = f.refresh_interval or datetime.timedelta(0)
    if refresh < MIN_REFRESH_INTERVAL or refresh > MAX_REFRESH_INTERVAL:
        raise ValidationError(
            f"invalid RefreshInterval ({_go_duration(refresh)}; expected "
            f"{_go_duration(MIN_REFRESH_INTERVAL)} <= interval <= {_go_duration(MAX_REFRESH_INTERVAL)})"
        )
    flush = f.flush_interval or datetime.timedelta(0)
    if flush and flush < MIN_FLUSH_INTERVAL:
        raise ValidationError(
            f"invalid FlushInterval ({_go_duration(flush)}; expected >= {_go_duration(MIN_FLUSH_INTERVAL)})"
        )
    _check_template(f.path_postfix_template)


def _check_template(template: str) -> None:
    """Every `{{` action of a Go text/template is closed, worded as Go's
    parser (`template: postfix:LINE: unclosed action`). Only action
    balance is checked: Go's full parse and trial execution are not."""
    at = 0
    while (start := template.find("{{", at)) != -1:
        end = template.find("}}", start + 2)
        if end == -1:
            line = template.count("\n", 0, start) + 1
            raise ValidationError(f"template: postfix:{line}: unclosed action").extend(
                "PathPostfixTemplate"
            )
        at = end + 2


def validate_journal_spec(spec: pb.JournalSpec) -> None:
    """Gazette's `JournalSpec.Validate`, with its wording and context paths.

    Raises `ValidationError`, e.g. `Name: not a valid token (bad name)` or
    `Fragment: invalid Length (0; expected 1024 <= length <= 17179869184)`.
    """
    try:
        validate_journal_name(spec.name, allow_meta=False)
    except ValidationError as exc:
        if exc.message.startswith("Name cannot have"):
            raise
        raise exc.extend("Name") from None
    if spec.replication < 1 or spec.replication > MAX_REPLICATION:
        raise ValidationError(
            f"invalid Replication ({spec.replication}; expected 1 <= Replication <= {MAX_REPLICATION})"
        )
    try:
        L.validate_label_set(spec.labels)
    except ValidationError as exc:
        raise exc.extend("Labels") from None
    if L.values_of(spec.labels, "name"):
        raise ValidationError('Labels cannot include label "name"')
    if L.values_of(spec.labels, "prefix"):
        raise ValidationError('Labels cannot include label "prefix"')
    try:
        validate_journal_label_constraints(spec.labels)
    except ValidationError as exc:
        raise exc.extend("Labels") from None
    try:
        validate_fragment_spec(spec.fragment)
    except ValidationError as exc:
        raise exc.extend("Fragment") from None
    if int(spec.flags) not in _VALID_FLAGS:
        raise ValidationError(f"invalid combination ({int(spec.flags)})").extend("Flags")
    if spec.max_append_rate < 0:
        raise ValidationError(f"invalid MaxAppendRate ({spec.max_append_rate}; expected >= 0)")
    suspend = spec.suspend
    if suspend is not None:
        if int(suspend.level) not in _VALID_LEVELS:
            raise ValidationError(f"invalid Level variant ({int(suspend.level)})").within(
                "Suspend", "Level"
            )
        if suspend.offset < 0:
            raise ValidationError(f"invalid Offset ({suspend.offset}; expected >= 0)").within(
                "Suspend", "Offset"
            )


# --------------------------------------------------------------------------
# Field-wise algebra, for journalspace trees

_SCALARS = ("replication", "flags", "max_append_rate")
_FRAGMENT_FIELDS = (
    "length",
    "compression_codec",
    "stores",
    "refresh_interval",
    "retention",
    "flush_interval",
    "path_postfix_template",
)


def _fragment(spec: pb.JournalSpec) -> pb.JournalSpecFragment:
    return spec.fragment if spec.fragment is not None else pb.JournalSpecFragment()


def _is_zero(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, datetime.timedelta):
        return value == datetime.timedelta(0)
    return not value


def _zero(field: str) -> object:
    return pb.JournalSpecFragment().__getattribute__(field)


def _rebuild(
    spec: pb.JournalSpec,
    scalars: dict[str, object],
    frag: dict[str, object],
    suspend: pb.JournalSpecSuspend | None,
) -> pb.JournalSpec:
    fragment = pb.JournalSpecFragment(**frag)  # type: ignore[arg-type]
    labels = scalars.pop("labels")
    assert isinstance(labels, pb.LabelSet)
    out = pb.JournalSpec(
        name=spec.name,
        labels=labels if labels.labels else None,
        fragment=fragment if fragment != pb.JournalSpecFragment() else None,
        suspend=(
            pb.JournalSpecSuspend(level=suspend.level, offset=suspend.offset)
            if suspend is not None
            else None
        ),
        **scalars,  # type: ignore[arg-type]
    )
    return out


def union_specs(a: pb.JournalSpec, b: pb.JournalSpec) -> pb.JournalSpec:
    """`a` with each zero-valued field taken from `b` (labels: union, `a`
    wins). `a`'s suspension is kept as it is."""
    scalars: dict[str, object] = {
        f: getattr(a, f) if not _is_zero(getattr(a, f)) else getattr(b, f) for f in _SCALARS
    }
    scalars["labels"] = L.union(a.labels, b.labels)
    fa, fb = _fragment(a), _fragment(b)
    frag = {
        f: getattr(fa, f) if not _is_zero(getattr(fa, f)) else getattr(fb, f)
        for f in _FRAGMENT_FIELDS
    }
    return _rebuild(a, scalars, frag, a.suspend)


def intersect_specs(a: pb.JournalSpec, b: pb.JournalSpec) -> pb.JournalSpec:
    """`a` keeping only the fields whose value `b` shares (name is kept,
    suspension dropped: it is per journal, never shared)."""
    scalars: dict[str, object] = {
        f: getattr(a, f) if getattr(a, f) == getattr(b, f) else type(getattr(a, f))(0)
        for f in _SCALARS
    }
    scalars["labels"] = L.intersect(a.labels, b.labels)
    fa, fb = _fragment(a), _fragment(b)
    frag = {
        f: getattr(fa, f) if getattr(fa, f) == getattr(fb, f) else _zero(f)
        for f in _FRAGMENT_FIELDS
    }
    return _rebuild(a, scalars, frag, None)


def subtract_specs(a: pb.JournalSpec, b: pb.JournalSpec) -> pb.JournalSpec:
    """`a` with each field that `b` matches zeroed (name and suspension are kept)."""
    scalars: dict[str, object] = {
        f: type(getattr(a, f))(0) if getattr(a, f) == getattr(b, f) else getattr(a, f)
        for f in _SCALARS
    }
    scalars["labels"] = L.subtract(a.labels, b.labels)
    fa, fb = _fragment(a), _fragment(b)
    frag = {
        f: _zero(f) if getattr(fa, f) == getattr(fb, f) else getattr(fa, f)
        for f in _FRAGMENT_FIELDS
    }
    return _rebuild(a, scalars, frag, a.suspend)
