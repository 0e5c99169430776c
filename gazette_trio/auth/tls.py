"""TLS contexts for the gRPC port, from certificate files.

Gazette's TLS settings, in Python's `ssl`:

- a server presents a certificate and key; with a client CA it requires
  every client to present a certificate that CA signed (Gazette's
  `--server-ca-file`), otherwise it asks for none;
- a client trusts a CA bundle (Gazette's `--trusted-ca-file`; the system's
  roots without one), checks the server's name against the endpoint's host,
  and may present a certificate of its own (`--cert-file`, `--cert-key-file`).

Both offer ALPN `h2`, which gRPC over TLS needs (Gazette's Go servers
refuse a TLS client that does not offer it). A file that cannot be read or
parsed is a `TLSConfigError` naming the file and the setting.

This module owns building the contexts; which endpoints use them is
`aio.Channel`'s (the `https://` scheme) and the config's.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from ..errors import AuthError


class TLSConfigError(AuthError, ValueError):
    """A certificate, key or CA file cannot be used."""


def _check_file(path: str | Path, what: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise TLSConfigError(f"{what} {str(p)!r}: no such file")
    return str(p)


def _load_chain(
    context: ssl.SSLContext, cert: str | Path, key: str | Path | None, what: str
) -> None:
    cert_file = _check_file(cert, f"{what} certificate")
    key_file = _check_file(key, f"{what} key") if key else None
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(
            f"{what} certificate {cert_file!r} with key {key_file!r}: cannot be loaded ({exc})"
        ) from None


def _load_ca(context: ssl.SSLContext, ca: str | Path, what: str) -> None:
    ca_file = _check_file(ca, what)
    try:
        context.load_verify_locations(cafile=ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"{what} {ca_file!r}: not a PEM CA bundle ({exc})") from None


def server_context(
    cert_file: str | Path,
    key_file: str | Path,
    client_ca_file: str | Path | None = None,
    *,
    alpn: tuple[str, ...] = ("h2",),
) -> ssl.SSLContext:
    """The context a TLS server listens with (gRPC's ALPN `h2` by default;
    the HTTP port offers `http/1.1`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert_file, key_file, "server")
    if client_ca_file:
        _load_ca(context, client_ca_file, "client CA file")
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(list(alpn))
    return context


def client_context(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> ssl.SSLContext:
    """The context a client dials `https://` endpoints with."""
    # With a CA file, only it is trusted (as Gazette's RootCAs pool).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        _load_ca(context, ca_file, "trusted CA file")
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert_file:
        _load_chain(context, cert_file, key_file, "client")
    elif key_file:
        raise TLSConfigError("a client key file was given without its certificate file")
    context.set_alpn_protocols(["h2"])
    return context
