"""The HTTP port under security, and the exposure rule of `serve`.

With auth keys, /status and /metrics answer a request from another machine
only with a READ token (401 with the reason otherwise); from loopback they
answer without one. With a certificate the port speaks HTTPS only. A config
listening beyond loopback without keys and TLS is refused, unless
`security.insecure`, whose warning is shown at the top of /status."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import h11
import pytest
import trio

from gazette_trio.auth import capabilities as caps
from gazette_trio.auth import tls
from gazette_trio.auth.claims import Claims
from gazette_trio.auth.tokens import Keys
from gazette_trio.auth.verifier import Verifier
from gazette_trio.runtime.config import Config, parse_config
from gazette_trio.runtime.http import StatusServer
from gazette_trio.runtime.security import SecurityConfigError, member_security
from gazette_trio.runtime.status import MemberStatus, StatusSnapshot

from .conftest import KEY_TEXT
from .pki import Pki


class Source:
    async def snapshot(self) -> StatusSnapshot:
        return StatusSnapshot(group="g", member=MemberStatus("z", "m", "https://m:8080", 1))


def request(token: str | None = None) -> h11.Request:
    headers = [("host", "member")]
    if token is not None:
        headers.append(("authorization", f"Bearer {token}"))
    return h11.Request(method="GET", target="/status.json", headers=headers)


def test_requests_from_other_machines_need_a_read_token(keys: Keys) -> None:
    server = StatusServer(Source(), verifier=Verifier(keys))
    refused = server._refusal(request(), "10.1.2.3")
    assert refused is not None and refused.status == 401
    assert b"missing or empty Authorization token" in refused.body
    appender = keys.sign(Claims(caps.APPEND), 60)
    refused = server._refusal(request(appender), "10.1.2.3")
    assert refused is not None and b"missing required READ capability" in refused.body
    assert server._refusal(request(keys.sign(Claims(caps.READ), 60)), "10.1.2.3") is None
    # This machine's own requests need none, v4 or v6.
    assert server._refusal(request(), "127.0.0.1") is None
    assert server._refusal(request(), "::1") is None
    # Without keys nothing is asked.
    assert StatusServer(Source())._refusal(request(), "10.1.2.3") is None


async def test_the_http_port_speaks_https_with_a_certificate(pki: Pki) -> None:
    server = StatusServer(Source(), tls=tls.server_context(pki.cert, pki.key, alpn=("http/1.1",)))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)

        def fetch(url: str, context: ssl.SSLContext | None) -> bytes:
            with urllib.request.urlopen(url, context=context, timeout=10) as response:
                return bytes(response.read())

        body = await trio.to_thread.run_sync(
            fetch,
            f"https://localhost:{port}/status.json",
            ssl.create_default_context(cafile=str(pki.ca)),
        )
        assert json.loads(body)["group"] == "g"
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            await trio.to_thread.run_sync(fetch, f"http://localhost:{port}/status.json", None)
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            await trio.to_thread.run_sync(
                fetch,
                f"https://localhost:{port}/status.json",
                ssl.create_default_context(cafile=str(pki.other_ca)),
            )
        nursery.cancel_scope.cancel()


def config(tmp_path: Path, extra: str) -> Config:
    return parse_config(f'[application]\nmodule = "x:Y"\n{extra}', base_dir=tmp_path, env={})


def test_listening_beyond_loopback_needs_keys_and_tls_or_insecure(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "keys").write_text(KEY_TEXT)
    exposed = '[member]\nhost = "0.0.0.0"\n'
    with pytest.raises(SecurityConfigError, match=r"without auth keys .* or TLS"):
        member_security(config(tmp_path, exposed))
    with pytest.raises(SecurityConfigError, match="without TLS"):
        member_security(config(tmp_path, exposed + '[security]\nauth_keys_file = "keys"\n'))
    secured = member_security(
        config(
            tmp_path,
            exposed + f'[security]\nauth_keys_file = "keys"\nserver_cert_file = "{pki.cert}"\n'
            f'server_key_file = "{pki.key}"\n',
        )
    )
    assert secured.warnings == ()
    assert secured.advertise("http://host:8080") == "https://host:8080"
    # The default, loopback, needs nothing.
    assert member_security(config(tmp_path, "")).warnings == ()


async def test_an_insecure_member_says_so_atop_status(tmp_path: Path) -> None:
    insecure = member_security(
        config(tmp_path, '[http]\nhost = "0.0.0.0"\n[security]\ninsecure = true\n')
    )
    (warning,) = insecure.warnings
    assert warning.startswith("INSECURE: http.host: the HTTP port listens on 0.0.0.0")
    snapshot = await insecure.noted(Source()).snapshot()
    assert snapshot.notes[0] == warning


def test_unusable_security_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SecurityConfigError, match=r"auth keys file .*nope.*No such file"):
        member_security(config(tmp_path, '[security]\nauth_keys_file = "nope"\n'))
    (tmp_path / "bad-keys").write_text("not base64!")
    with pytest.raises(SecurityConfigError, match="failed to decode key at index 0"):
        member_security(config(tmp_path, '[security]\nauth_keys_file = "bad-keys"\n'))
