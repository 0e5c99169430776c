"""Gazette's well-formedness rules for processes, routes and response headers.

Every Journal and Shard API response carries a `Header`: the process that
answered (`process_id`), the route of the journal or shard it answered for,
and the etcd cluster, member, revision and raft term its view was read
from. Gazette's clients refuse a header that does not validate (for example
a zero `cluster_id`: "Etcd: invalid ClusterId (expected != 0)"), and its
brokers and members validate the headers of proxied requests. A header
without a `process_id` is fine: clients leave it empty.

A route names its members by process id (zone and suffix), the same ids
brokers and consumer members announce in their `ProcessSpec`s.

This module owns those checks (`validate_header`, `validate_route`,
`validate_etcd`, `validate_process_id`, `validate_endpoint`,
`validate_process_spec`, `validate_broker_spec`), worded and ordered as
Gazette's, raising `ValidationError`, and `routes_equivalent`, Gazette's
test of whether two routes name the same members and primary. It does not
build headers; the servers that answer do.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from . import protocol as pb
from .validation import TOKEN_SYMBOLS, ValidationError, go_quote, validate_token

MIN_ZONE_LEN, MAX_ZONE_LEN = 1, 32
MIN_SUFFIX_LEN, MAX_SUFFIX_LEN = 4, 128
MAX_BROKER_JOURNAL_LIMIT = 1 << 17


def _go_id(pid: pb.ProcessSpecId) -> str:
    # Go's %+v of a ProcessSpec_ID.
    return f"{{Zone:{pid.zone} Suffix:{pid.suffix}}}"


def validate_process_id(pid: pb.ProcessSpecId | None) -> None:
    """A zone of 1-32 and a suffix of 4-128 token runes."""
    pid = pid if pid is not None else pb.ProcessSpecId()
    try:
        validate_token(pid.zone, TOKEN_SYMBOLS, MIN_ZONE_LEN, MAX_ZONE_LEN)
    except ValidationError as exc:
        raise exc.extend("Zone") from None
    try:
        validate_token(pid.suffix, TOKEN_SYMBOLS, MIN_SUFFIX_LEN, MAX_SUFFIX_LEN)
    except ValidationError as exc:
        raise exc.extend("Suffix") from None


def validate_endpoint(endpoint: str) -> None:
    """An absolute URL with a host (`http://host:port`, `unix://host/path`)."""
    if endpoint.startswith(":"):
        # Go's url.Parse refuses an empty scheme before parsing anything else.
        raise ValidationError(f"parse {go_quote(endpoint)}: missing protocol scheme")
    url = urlsplit(endpoint)
    if not url.scheme:
        raise ValidationError(f"not absolute: {endpoint}")
    if not url.netloc:
        raise ValidationError(f"missing host: {endpoint}")


def validate_process_spec(spec: pb.ProcessSpec | None) -> None:
    """A valid id and an absolute endpoint URL."""
    spec = spec if spec is not None else pb.ProcessSpec()
    try:
        validate_process_id(spec.id)
    except ValidationError as exc:
        raise exc.extend("Id") from None
    try:
        validate_endpoint(spec.endpoint)
    except ValidationError as exc:
        raise exc.extend("Endpoint") from None


def validate_broker_spec(spec: pb.BrokerSpec) -> None:
    """A valid process spec and a journal limit of at most 2^17."""
    validate_process_spec(spec.process_spec)
    if spec.journal_limit > MAX_BROKER_JOURNAL_LIMIT:
        raise ValidationError(
            f"invalid JournalLimit ({spec.journal_limit}; expected 0 <= JournalLimit <= "
            f"{MAX_BROKER_JOURNAL_LIMIT})"
        )


def routes_equivalent(a: pb.Route | None, b: pb.Route | None) -> bool:
    """Whether two routes have the same members and primary (endpoints aside)."""
    if a is None or b is None:
        return False
    if a.primary != b.primary or len(a.members) != len(b.members):
        return False
    return all(
        (x.zone, x.suffix) == (y.zone, y.suffix) for x, y in zip(a.members, b.members, strict=True)
    )


def validate_route(route: pb.Route | None) -> None:
    """Valid members in unique (zone, suffix) order, a primary among them
    (or -1), and no endpoints or one per member."""
    route = route if route is not None else pb.Route()
    members = route.members
    for i, member in enumerate(members):
        try:
            validate_process_id(member)
        except ValidationError as exc:
            raise exc.extend(f"Members[{i}]") from None
        if i and not (members[i - 1].zone, members[i - 1].suffix) < (member.zone, member.suffix):
            raise ValidationError(
                f"Members not in unique, sorted order (index {i}; "
                f"{_go_id(members[i - 1])} <= {_go_id(member)})"
            )
    if route.primary < -1 or route.primary >= len(members):
        raise ValidationError(
            f"invalid Primary ({route.primary}; expected -1 <= Primary < {len(members)})"
        )
    if route.endpoints and len(route.endpoints) != len(members):
        raise ValidationError(
            f"len(Endpoints) != 0, and != len(Members) ({len(route.endpoints)} vs {len(members)})"
        )
    for i, endpoint in enumerate(route.endpoints):
        if not endpoint:
            continue
        try:
            validate_endpoint(endpoint)
        except ValidationError as exc:
            raise exc.extend(f"Endpoints[{i}]") from None


def validate_etcd(etcd: pb.HeaderEtcd | None) -> None:
    """Non-zero cluster, member and raft term, and a positive revision."""
    etcd = etcd if etcd is not None else pb.HeaderEtcd()
    if etcd.cluster_id == 0:
        raise ValidationError("invalid ClusterId (expected != 0)")
    if etcd.member_id == 0:
        raise ValidationError("invalid MemberId (expected != 0)")
    if etcd.revision <= 0:
        raise ValidationError(f"invalid Revision ({etcd.revision}; expected 0 < revision)")
    if etcd.raft_term == 0:
        raise ValidationError("invalid RaftTerm (expected != 0)")


def validate_header(header: pb.Header | None) -> None:
    """Gazette's `Header.Validate`: a process id if one is given (an empty
    one is allowed), a valid route, and a valid etcd view."""
    header = header if header is not None else pb.Header()
    pid = header.process_id
    if pid is not None and (pid.zone or pid.suffix):
        try:
            validate_process_id(pid)
        except ValidationError as exc:
            raise exc.extend("ProcessId") from None
    try:
        validate_route(header.route)
    except ValidationError as exc:
        raise exc.extend("Route") from None
    try:
        validate_etcd(header.etcd)
    except ValidationError as exc:
        raise exc.extend("Etcd") from None
