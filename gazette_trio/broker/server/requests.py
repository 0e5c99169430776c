"""Gazette's well-formedness rules for Journal API requests.

Before a broker acts on a request it checks its shape: offsets in range,
journal names valid, a content chunk carrying nothing but content, an Apply
change that is either an upsert or a delete. A request that fails is answered
with INVALID_ARGUMENT and a message such as
`Journal: not a valid token (bad name!)`; one that passes may still be
answered with a Gazette status (JOURNAL_NOT_FOUND, ...) by the core.

This module owns those checks, one pure function per request type, raising
`ValidationError`. It does not look at server state.
"""

from __future__ import annotations

from ...protocol import labels as L
from ...protocol import protocol as pb
from ...protocol.headers import validate_header
from ...protocol.validation import ValidationError, validate_journal_name
from ..durations import format_duration
from ..journal_spec import validate_fragment_store, validate_journal_spec


def _journal(journal: str) -> None:
    try:
        validate_journal_name(journal)
    except ValidationError as exc:
        raise exc.extend("Journal") from None


def _header(header: pb.Header | None) -> None:
    if header is None:
        return
    try:
        validate_header(header)
    except ValidationError as exc:
        raise exc.extend("Header") from None


_SUSPEND_NAMES = {
    int(pb.AppendRequestSuspend.RESUME): "SUSPEND_RESUME",
    int(pb.AppendRequestSuspend.NO_RESUME): "SUSPEND_NO_RESUME",
    int(pb.AppendRequestSuspend.IF_FLUSHED): "SUSPEND_IF_FLUSHED",
    int(pb.AppendRequestSuspend.NOW): "SUSPEND_NOW",
    int(pb.AppendRequestSuspend.KEEP): "SUSPEND_KEEP",
}


def _suspend_name(suspend: pb.AppendRequestSuspend) -> str:
    return _SUSPEND_NAMES.get(int(suspend), str(int(suspend)))


def validate_read_request(request: pb.ReadRequest) -> None:
    _header(request.header)
    _journal(request.journal)
    if request.offset < -1:
        raise ValidationError(
            f"invalid Offset ({request.offset}; expected -1 <= Offset <= MaxInt64)"
        )
    if request.end_offset < 0 or (request.end_offset != 0 and request.end_offset < request.offset):
        raise ValidationError(
            f"invalid EndOffset ({request.end_offset}; expected 0 or Offset <= EndOffset)"
        )


def _selector(name: str, selector: pb.LabelSelector | None) -> None:
    try:
        L.validate_selector(selector)
    except ValidationError as exc:
        raise exc.extend(name) from None


def validate_append_header(request: pb.AppendRequest) -> None:
    """The first message of an Append stream: journal, offset, registers."""
    if not request.journal:
        raise ValidationError("expected Journal in the first AppendRequest of the stream")
    _header(request.header)
    _journal(request.journal)
    if request.offset < 0:
        raise ValidationError(f"invalid Offset ({request.offset}; expected >= 0)")
    if request.content:
        raise ValidationError("unexpected Content")
    _selector("CheckRegisters", request.check_registers)
    for name, labels in (
        ("UnionRegisters", request.union_registers),
        ("SubtractRegisters", request.subtract_registers),
    ):
        try:
            L.validate_label_set(labels)
        except ValidationError as exc:
            raise exc.extend(name) from None
    if int(request.suspend) not in _SUSPEND_NAMES:
        raise ValidationError(f"invalid Suspend variant ({int(request.suspend)})").extend("Suspend")


def validate_append_chunk(request: pb.AppendRequest) -> None:
    """A later message of an Append stream: content, and nothing else."""
    if request.journal:
        raise ValidationError("expected Content chunk")
    for field, present in (
        ("Header", request.header is not None),
        ("DoNotProxy", request.do_not_proxy),
        ("Offset", request.offset != 0),
        ("CheckRegisters", request.check_registers is not None),
        ("UnionRegisters", request.union_registers is not None),
        ("SubtractRegisters", request.subtract_registers is not None),
    ):
        if present:
            raise ValidationError(f"unexpected {field}")
    if request.suspend != pb.AppendRequestSuspend.RESUME:
        raise ValidationError(
            f"unexpected Suspend ({_suspend_name(request.suspend)}; expected SUSPEND_RESUMED)"
        )


def validate_list_request(request: pb.ListRequest) -> None:
    _selector("Selector", request.selector)
    if request.selector is None:
        return
    for which, labels in (
        ("Include", request.selector.include),
        ("Exclude", request.selector.exclude),
    ):
        for value in L.values_of(labels, "prefix"):
            if not value.endswith("/"):
                raise ValidationError(
                    f"Selector.{which}.Labels[\"prefix\"]: expected trailing '/' ({value})"
                )


def validate_apply_change(change: pb.ApplyRequestChange) -> None:
    if change.upsert is not None:
        if change.delete:
            raise ValidationError("both Upsert and Delete are set (expected exactly one)")
        try:
            validate_journal_spec(change.upsert)
        except ValidationError as exc:
            raise exc.extend("Upsert") from None
        if change.expect_mod_revision < -1:
            raise ValidationError(
                f"invalid ExpectModRevision ({change.expect_mod_revision}; expected >= 0 or -1)"
            )
    elif change.delete:
        try:
            validate_journal_name(change.delete, allow_meta=False)
        except ValidationError as exc:
            raise exc.extend("Delete") from None
        if change.expect_mod_revision <= 0 and change.expect_mod_revision != -1:
            raise ValidationError(
                f"invalid ExpectModRevision ({change.expect_mod_revision}; expected > 0 or -1)"
            )
    else:
        raise ValidationError("neither Upsert nor Delete are set (expected exactly one)")


def validate_apply_request(request: pb.ApplyRequest) -> None:
    seen: set[str] = set()
    for i, change in enumerate(request.changes):
        try:
            validate_apply_change(change)
        except ValidationError as exc:
            raise exc.extend(f"Changes[{i}]") from None
        name = change.upsert.name if change.upsert is not None else change.delete
        if name in seen:
            raise ValidationError(f"journal {name} appears in more than one change").extend(
                f"Changes[{i}]"
            )
        seen.add(name)


def validate_fragments_request(request: pb.FragmentsRequest) -> None:
    _header(request.header)
    _journal(request.journal)
    if request.end_mod_time != 0 and request.end_mod_time < request.begin_mod_time:
        raise ValidationError(
            f"invalid EndModTime ({request.end_mod_time} must be after {request.begin_mod_time})"
        )
    if request.next_page_token < 0:
        raise ValidationError(f"invalid NextPageToken ({request.next_page_token}; must be >= 0)")
    if request.page_limit < 0 or request.page_limit > 10000:
        raise ValidationError(
            f"invalid PageLimit ({request.page_limit}; must be >= 0 and <= 10000)"
        )
    ttl = request.signature_ttl
    if ttl is not None and ttl.total_seconds() <= 0:
        raise ValidationError(f"invalid SignatureTTL ({format_duration(ttl)}; must be > 0s)")


def validate_fragment_store_health_request(request: pb.FragmentStoreHealthRequest) -> None:
    try:
        validate_fragment_store(request.fragment_store)
    except ValidationError as exc:
        raise exc.extend("FragmentStore") from None
    prefix = request.check_delete_prefix
    if prefix and not request.check_delete:
        raise ValidationError("CheckDeletePrefix: cannot be set when CheckDelete is false")
    if prefix:
        if not prefix.endswith("/"):
            raise ValidationError(f"CheckDeletePrefix: must end in '/' ({prefix})")
        trimmed = prefix[:-1]
        if trimmed == ".." or trimmed.startswith("../") or "/../" in f"/{trimmed}/":
            raise ValidationError(
                f"CheckDeletePrefix: cannot traverse outside the store ({prefix})"
            )
