"""`gazette-trio broker serve`, the standalone journal server, secured like a
member: with auth keys and a certificate it speaks TLS and verifies tokens;
without them it listens on loopback only, unless --insecure."""

from __future__ import annotations

import os
from pathlib import Path

from tests.examples.processes import clean_env
from tests.hostile.hostile_support import start_broker
from tests.serve_member import gazette_trio
from tests.services import free_port

from .conftest import KEY_TEXT
from .pki import Pki


def test_a_secured_journal_server(tmp_path: Path, pki: Pki) -> None:
    keys = tmp_path / "auth-keys"
    keys.write_text(KEY_TEXT)
    base = clean_env()
    server = start_broker(
        tmp_path / "broker",
        args=[
            "--auth-keys-file", str(keys),
            "--server-cert-file", str(pki.cert), "--server-key-file", str(pki.key),
        ],
    )  # fmt: skip
    port = server.port
    try:
        server.wait_for_log(f"listening on https://127.0.0.1:{port}", within=30)
        operator = dict(
            base, GAZETTE_TRIO_AUTH_KEYS_FILE=str(keys), GAZETTE_TRIO_TRUSTED_CA_FILE=str(pki.ca)
        )
        endpoint = f"https://localhost:{port}"
        spec = "name: sealed/one\nreplication: 1\nfragment:\n  length: 1048576\n  compression_codec: NONE\n  refresh_interval: 1m\n"
        applied = gazette_trio(
            "journals", "-e", endpoint, "apply", env=operator, stdin=spec.encode()
        )
        assert applied.returncode == 0, applied.stderr
        appended = gazette_trio(
            "journals", "-e", endpoint, "append", "sealed/one", env=operator, stdin=b"hello\n"
        )
        assert appended.returncode == 0, appended.stderr
        anonymous = dict(base, GAZETTE_TRIO_TRUSTED_CA_FILE=str(pki.ca))
        refused = gazette_trio(
            "journals", "-e", endpoint, "append", "sealed/one", env=anonymous, stdin=b"no\n"
        )
        assert refused.returncode != 0
        assert "missing or empty Authorization token" in refused.stderr
        read = gazette_trio("journals", "-e", endpoint, "read", "sealed/one", env=operator)
        assert read.stdout == "hello\n", read.stderr
    finally:
        server.stop()


def test_beyond_loopback_it_needs_keys_and_tls_or_insecure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAZETTE_TRIO_")}
    refused = gazette_trio(
        "broker", "serve", "--memory", "--host", "0.0.0.0", "--port", str(free_port()), env=env
    )
    assert refused.returncode == 2
    assert "--host 0.0.0.0 without --auth-keys-file and --server-cert-file" in refused.stderr
