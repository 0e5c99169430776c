"""A process's security settings, loaded from files into what runs.

Secrets are never values in a config file: keys, tokens and private keys
are files it names (or environment variables name), read here. The result,
`Security`, gives the rest of the process what each part needs:

- `verifier`: checks calls to this process (with keys; open without);
- `dial`: `aio.DialCredentials` for calls it makes to Gazette services
  (brokers, members): TLS for `https://` endpoints, and a token per call,
  minted from the keys or else the pre-shared bearer token;
- `server_tls`: the TLS context its gRPC port serves with, if any, and
  `http_tls` the same certificate for its HTTP port;
- `etcd_tls`: etcd's own TLS, apart from the rest.

Command-line tools take the client half from the environment
(`client_from_env`): `GAZETTE_TRIO_AUTH_KEYS_FILE`, `GAZETTE_TRIO_AUTH_TOKEN_FILE`,
`GAZETTE_TRIO_TRUSTED_CA_FILE`, `GAZETTE_TRIO_CERT_FILE` and
`GAZETTE_TRIO_CERT_KEY_FILE`.

This module owns reading those files and the errors that name them. The
config keys are `runtime.config`'s; installing the result is `serve`'s and
each tool's.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import aio
from ..errors import AuthError
from . import tls
from .authorizer import Authorizer, BearerAuthorizer, KeyedAuthorizer, channel_hook
from .tokens import Keys, KeysError
from .verifier import OPEN, Verifier


class SecurityError(AuthError, ValueError):
    """A security setting cannot be used; the message names the file and why."""


def read_keys_file(path: str | Path) -> Keys:
    """Keys from a file in Gazette's `--auth-keys` format."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SecurityError(f"auth keys file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        return Keys.parse(text)
    except KeysError as exc:
        raise SecurityError(f"auth keys file {str(path)!r}: {exc}") from None


def read_token_file(path: str | Path) -> str:
    """A bearer token from a file (surrounding whitespace dropped)."""
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise SecurityError(f"auth token file {str(path)!r}: {exc.strerror or exc}") from None
    if not token or any(c.isspace() for c in token):
        raise SecurityError(f"auth token file {str(path)!r}: expected one token on one line")
    return token


@dataclass(frozen=True)
class Security:
    """What a process runs with; see the module docstring."""

    keys: Keys | None = None
    token: str | None = None
    server_tls: ssl.SSLContext | None = None
    client_tls: ssl.SSLContext | None = None
    etcd_tls: ssl.SSLContext | None = None
    insecure: bool = False
    http_tls: ssl.SSLContext | None = None

    @functools.cached_property
    def verifier(self) -> Verifier:
        # One per process: it remembers the tokens it has checked.
        return Verifier(self.keys) if self.keys is not None else OPEN

    @functools.cached_property
    def authorizer(self) -> Authorizer | None:
        # One per process: it caches the tokens it has signed.
        if self.keys is not None:
            return KeyedAuthorizer(self.keys)
        if self.token is not None:
            return BearerAuthorizer(self.token)
        return None

    @property
    def dial(self) -> aio.DialCredentials:
        authorizer = self.authorizer
        return aio.DialCredentials(
            ssl=self.client_tls,
            metadata=channel_hook(authorizer) if authorizer is not None else None,
        )

    @property
    def secured(self) -> bool:
        """Whether calls to this process are both verified and encrypted."""
        return self.keys is not None and self.server_tls is not None


def _tls_error(exc: tls.TLSConfigError) -> SecurityError:
    return SecurityError(str(exc))


def load(
    *,
    auth_keys_file: str | Path | None = None,
    auth_token_file: str | Path | None = None,
    server_cert_file: str | Path | None = None,
    server_key_file: str | Path | None = None,
    server_ca_file: str | Path | None = None,
    trusted_ca_file: str | Path | None = None,
    client_cert_file: str | Path | None = None,
    client_key_file: str | Path | None = None,
    etcd_trusted_ca_file: str | Path | None = None,
    etcd_cert_file: str | Path | None = None,
    etcd_key_file: str | Path | None = None,
    insecure: bool = False,
) -> Security:
    """Read every named file; the first that cannot be used is a `SecurityError`."""
    keys = read_keys_file(auth_keys_file) if auth_keys_file else None
    token = read_token_file(auth_token_file) if auth_token_file else None
    try:
        server_tls = http_tls = None
        if server_cert_file or server_key_file:
            if not (server_cert_file and server_key_file):
                raise SecurityError("TLS needs both a server certificate file and its key file")
            server_tls = tls.server_context(server_cert_file, server_key_file, server_ca_file)
            http_tls = tls.server_context(
                server_cert_file, server_key_file, server_ca_file, alpn=("http/1.1",)
            )
        elif server_ca_file:
            raise SecurityError("a server CA file was given without a server certificate")
        client_tls = None
        if trusted_ca_file or client_cert_file or client_key_file:
            client_tls = tls.client_context(trusted_ca_file, client_cert_file, client_key_file)
        etcd_tls = None
        if etcd_trusted_ca_file or etcd_cert_file or etcd_key_file:
            etcd_tls = tls.client_context(etcd_trusted_ca_file, etcd_cert_file, etcd_key_file)
    except tls.TLSConfigError as exc:
        raise _tls_error(exc) from None
    return Security(keys, token, server_tls, client_tls, etcd_tls, insecure, http_tls)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is only reachable from this machine."""
    if host in ("", "0.0.0.0", "::"):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


CLIENT_ENV = {
    "auth_keys_file": "GAZETTE_TRIO_AUTH_KEYS_FILE",
    "auth_token_file": "GAZETTE_TRIO_AUTH_TOKEN_FILE",
    "trusted_ca_file": "GAZETTE_TRIO_TRUSTED_CA_FILE",
    "client_cert_file": "GAZETTE_TRIO_CERT_FILE",
    "client_key_file": "GAZETTE_TRIO_CERT_KEY_FILE",
}


def client_from_env(env: Mapping[str, str] | None = None) -> Security:
    """The client half of `Security` from `CLIENT_ENV`'s variables."""
    source = os.environ if env is None else env
    chosen = {key: source[var] for key, var in CLIENT_ENV.items() if source.get(var)}
    try:
        return load(
            auth_keys_file=chosen.get("auth_keys_file"),
            auth_token_file=chosen.get("auth_token_file"),
            trusted_ca_file=chosen.get("trusted_ca_file"),
            client_cert_file=chosen.get("client_cert_file"),
            client_key_file=chosen.get("client_key_file"),
        )
    except SecurityError as exc:
        named = ", ".join(f"${CLIENT_ENV[k]}" for k in chosen)
        raise SecurityError(f"{exc} (from {named})") from None


def install_client_from_env(env: Mapping[str, str] | None = None) -> Security:
    """Make the environment's client settings every new channel's default
    (for a command-line tool, at its start)."""
    security = client_from_env(env)
    aio.set_dial_credentials(security.dial)
    return security
