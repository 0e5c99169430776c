"""A member's security, from its config: what `serve` installs and refuses.

`member_security(cfg)` reads the `[security]` files (`auth.settings`) and
applies the exposure rule: a member listens on loopback by default, and
listening anywhere else (its gRPC port or its HTTP port) without both auth
keys and TLS is refused, unless `security.insecure = true` says the operator
means it; then a warning goes to the log and to the top of /status.

It also gives the endpoint the member advertises (`https://` when its port
speaks TLS, as Gazette's servers advertise theirs) and wraps the /status
source with the warnings.

This module owns those decisions; the files are `auth.settings`', the
listening is `serve`'s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypedDict

import click

from ..auth.settings import Security, SecurityError, is_loopback, load
from .config import Config, SecuritySettings
from .status import StatusSnapshot, StatusSource


class SecurityConfigError(click.ClickException):
    """The `[security]` settings cannot be used, or forbid how the member would listen."""

    exit_code = 2


@dataclasses.dataclass(frozen=True)
class MemberSecurity:
    security: Security
    warnings: tuple[str, ...] = ()

    def advertise(self, endpoint: str) -> str:
        """`endpoint` with the scheme clients must dial: https with TLS."""
        return tls_endpoint(endpoint) if self.security.server_tls is not None else endpoint

    def noted(self, source: StatusSource) -> StatusSource:
        """`source` with this member's security warnings at the top of /status."""
        return _NotedSource(source, self.warnings) if self.warnings else source


def tls_endpoint(endpoint: str) -> str:
    """`endpoint` with an `http://` scheme made `https://`."""
    if endpoint.startswith("http://"):
        return "https://" + endpoint[len("http://") :]
    return endpoint


class ClientFiles(TypedDict):
    auth_keys_file: Path | None
    auth_token_file: Path | None
    trusted_ca_file: Path | None
    client_cert_file: Path | None
    client_key_file: Path | None


def client_files(s: SecuritySettings) -> ClientFiles:
    """The `[security]` files a client of the cluster uses, as `load` takes them."""
    return ClientFiles(
        auth_keys_file=s.auth_keys_file,
        auth_token_file=s.auth_token_file,
        trusted_ca_file=s.trusted_ca_file,
        client_cert_file=s.client_cert_file,
        client_key_file=s.client_key_file,
    )


def member_security(cfg: Config) -> MemberSecurity:
    """The member's `Security`; raises `SecurityConfigError` naming the problem.
    Warnings are the caller's to log (it may check a config without running it)."""
    s = cfg.security
    try:
        security = load(
            **client_files(s),
            server_cert_file=s.server_cert_file,
            server_key_file=s.server_key_file,
            server_ca_file=s.server_ca_file,
            etcd_trusted_ca_file=s.etcd_trusted_ca_file,
            etcd_cert_file=s.etcd_cert_file,
            etcd_key_file=s.etcd_key_file,
            insecure=s.insecure,
        )
    except SecurityError as exc:
        raise SecurityConfigError(f"bad config: security: {exc}") from None
    exposed = [
        f"{what} listens on {host}"
        for what, host, on in (
            ("member.host: the gRPC port", cfg.member.host, True),
            ("http.host: the HTTP port", cfg.http.host, cfg.http.enabled),
        )
        if on and not is_loopback(host)
    ]
    missing = []
    if security.keys is None:
        missing.append("auth keys (security.auth_keys_file)")
    if security.server_tls is None:
        missing.append("TLS (security.server_cert_file)")
    warnings: list[str] = []
    if exposed and missing:
        problem = f"{' and '.join(exposed)} without {' or '.join(missing)}"
        if not security.insecure:
            raise SecurityConfigError(
                f"bad config: {problem}: anyone who can reach it could read, append and "
                "apply anything. Configure [security] (docs/security.md), listen on "
                "127.0.0.1, or set security.insecure = true to accept that"
            )
        warnings.append(f"INSECURE: {problem} (security.insecure = true)")
    return MemberSecurity(security, tuple(warnings))


class _NotedSource:
    def __init__(self, inner: StatusSource, notes: tuple[str, ...]) -> None:
        self._inner = inner
        self._notes = notes

    async def snapshot(self) -> StatusSnapshot:
        snapshot = await self._inner.snapshot()
        return dataclasses.replace(snapshot, notes=(*self._notes, *snapshot.notes))
