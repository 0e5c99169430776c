"""Resource limits of gazette-trio's servers, and the process's descriptor limit.

A server must survive clients that are slow, idle, numerous or hostile. Each
bound here is one an operator can set (`[limits]` in a member's config, or
for `gazette-trio broker serve` the same keys as `GAZETTE_TRIO_LIMITS__<KEY>`
environment variables, which also override a member's config); the defaults are upstream
Gazette's where it has one (`--max-grpc-recv-size`, 4 MiB) and otherwise
chosen so that a default descriptor limit of 1,024 cannot take the process
down (docs/limits.md lists them all).

The limits in force are process-wide: a process runs one configuration, and
the gRPC plumbing (`aio`) and the Journal service read them when they start
serving. `configure` sets them; `current` reads them.

This module owns the values and `raise_open_files_limit`; enforcement lives
where each resource is spent (`aio` for gRPC connections and messages, the
Journal service for appends, `runtime.http` for the status port).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MiB = 1 << 20

# HTTP/2's bounds on a flow-control window (RFC 9113 section 6.9): the
# initial 65,535 below which a peer may already have sent, and 2^31 - 1.
MIN_WINDOW = 65_535
MAX_WINDOW = 2**31 - 1


@dataclass(frozen=True)
class Limits:
    """Bounds on what clients may make a server hold."""

    max_grpc_recv_size: int = 4 * MiB
    """Largest gRPC message a server accepts, in bytes (upstream's
    `--max-grpc-recv-size`); a larger one answers RESOURCE_EXHAUSTED before any
    of it is buffered."""

    max_grpc_client_recv_size: int = 16 * MiB
    """Largest gRPC message our clients accept from a server (what gazctl and
    Gazette's Go clients set); a larger reply fails the call with
    RESOURCE_EXHAUSTED before any of it is buffered."""

    max_append_size: int = 64 * MiB
    """Most content one Append stream may carry before its commit; past this
    the append is refused with RESOURCE_EXHAUSTED and nothing is appended.
    Content past one message (`max_grpc_recv_size`) is streamed to disk as it
    arrives, so this bounds disk and how long a journal stays locked, not
    memory."""

    max_connections: int = 0
    """gRPC connections served at once per port; 0 derives it from the
    descriptor limit (`reserved_descriptors` fewer than RLIMIT_NOFILE). A
    connection past it is closed as soon as it is accepted."""

    reserved_descriptors: int = 256
    """Descriptors kept for files and outgoing connections when
    `max_connections` is derived."""

    max_concurrent_streams: int = 100
    """Concurrent calls per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS);
    compliant clients queue the rest."""

    idle_timeout: float = 300.0
    """Seconds a connection with no call in progress stays open (HTTP/2
    connections get a GOAWAY first). 0 disables it."""

    max_http_connections: int = 64
    """Connections to the HTTP status port served at once."""

    stream_buffer_bytes: int = 256 * 1024
    """Bytes of replies a server-streaming call may queue for a slow reader
    beyond what HTTP/2 flow control lets through (at least one message), and
    of requests (as received, encoded) queued for a handler."""

    stream_window: int = 1 * MiB
    """HTTP/2 flow-control window a server grants each call's request data
    (SETTINGS_INITIAL_WINDOW_SIZE): what a client can make it hold for one
    call that its handler has not read. The connection's window is derived
    (`connection_window`) so that it never binds before the streams' do."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value < 0:
                raise ValueError(f"limit {field.name} must not be negative, got {value}")
        if self.max_grpc_recv_size < 1024:
            raise ValueError(
                f"limit max_grpc_recv_size must be at least 1024 bytes, got {self.max_grpc_recv_size}"
            )
        if self.max_concurrent_streams < 1:
            raise ValueError("limit max_concurrent_streams must be at least 1")
        if not MIN_WINDOW <= self.stream_window <= MAX_WINDOW:
            raise ValueError(
                f"limit stream_window must be from {MIN_WINDOW} to {MAX_WINDOW} bytes "
                f"(HTTP/2's bounds), got {self.stream_window}"
            )
        if self.connection_window() > MAX_WINDOW:
            raise ValueError(
                f"limits stream_window x (max_concurrent_streams + 1) must be at most "
                f"{MAX_WINDOW} bytes, HTTP/2's largest connection window, got "
                f"{self.stream_window} x {self.max_concurrent_streams + 1}; lower one of them"
            )

    def connection_window(self) -> int:
        """The HTTP/2 window a server grants one connection: room for every
        call it may carry to fill its own window, and one more.

        grpclib returns connection window only as handlers read, like stream
        window. Were the connection's smaller than the sum of its streams',
        a few calls whose handlers wait (appends queued behind a journal's
        lock) could use it all and stall the call whose progress would free
        them. As large as the streams' sum, it never binds first, so the
        stream windows alone bound what a connection holds unread; the extra
        stream covers a finished call whose unread data is released a moment
        after HTTP/2 lets the client open its successor.
        """
        return self.stream_window * (self.max_concurrent_streams + 1)

    def connection_cap(self) -> int:
        """The gRPC connection cap in force: `max_connections`, or what the
        descriptor limit leaves after `reserved_descriptors`."""
        if self.max_connections:
            return self.max_connections
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 1 << 20
        return max(16, soft - self.reserved_descriptors)


# The settings an operator may give, by their config key (`[limits]`) and
# environment variable `GAZETTE_TRIO_LIMITS__<KEY>`, as the Limits field each sets.
SETTINGS: dict[str, str] = {
    "max_grpc_recv_size": "max_grpc_recv_size",
    "max_append_size": "max_append_size",
    "max_connections": "max_connections",
    "max_concurrent_streams": "max_concurrent_streams",
    "idle_timeout": "idle_timeout",
    "max_http_connections": "max_http_connections",
    "stream_buffer": "stream_buffer_bytes",
    "stream_window": "stream_window",
}
ENV_PREFIX = "GAZETTE_TRIO_LIMITS__"


def from_env(env: Mapping[str, str]) -> Limits:
    """The defaults, with any `GAZETTE_TRIO_LIMITS__<KEY>` of `env` applied:
    how `gazette-trio broker serve` is configured, under the same names as a
    member's `[limits]` keys. A bad value raises ValueError naming the variable."""
    values: dict[str, Any] = {}
    for name, value in env.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in SETTINGS:
            raise ValueError(f"{name}: unknown limit (expected one of: {', '.join(SETTINGS)})")
        try:
            if key == "idle_timeout":
                from .broker.durations import parse_duration

                values[SETTINGS[key]] = parse_duration(value.strip()).total_seconds()
            else:
                values[SETTINGS[key]] = int(value.strip().replace("_", ""))
        except ValueError as exc:
            raise ValueError(f"{name}={value!r}: {exc}") from None
    try:
        return Limits(**values)
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}*: {exc}") from None


_current: Limits | None = None


def current() -> Limits:
    """The limits servers started from now on enforce: those `configure`
    set, else the defaults with the environment's `GAZETTE_TRIO_LIMITS__*`."""
    global _current
    if _current is None:
        _current = from_env(os.environ)
    return _current


def configure(limits: Limits) -> None:
    """Make `limits` the process's limits (before servers start)."""
    global _current
    _current = limits


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.

    Connections, spools and SQLite files all cost a descriptor, and a soft
    limit of 1,024 is a distribution default rather than a decision.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. a hard limit above the kernel's nr_open
            log.debug("could not raise RLIMIT_NOFILE from %d to %d: %s", soft, hard, exc)
            return soft
        return hard
    return soft
