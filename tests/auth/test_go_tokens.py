"""Tokens interoperate with Gazette's own code, byte for byte.

A small Go program (`gomint/main.go`) signs and verifies with Gazette's
`auth` package and golang-jwt at the pinned version; it is built from the
module source the conformance suite uses. For the same claims, key and
times, the token gazette-trio mints is the token Gazette mints, character
for character; Gazette verifies ours, and we verify Gazette's, refusing
each with the same reasons.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gazette_trio.auth import capabilities as caps
from gazette_trio.auth import claims as claims_mod
from gazette_trio.auth import tokens
from gazette_trio.auth.claims import Claims
from gazette_trio.auth.tokens import Keys, TokenError
from gazette_trio.protocol import labels as lbl
from tests.upstream import module_root

pytestmark = pytest.mark.slow

KEY = base64.b64encode(b"shared between Go and Python").decode()


@pytest.fixture(scope="module")
def gomint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        pytest.skip("building Gazette's token helper needs the go command")
    root = module_root()
    work = tmp_path_factory.mktemp("gocore")
    shutil.copytree(root, work / "core")
    (work / "core").chmod(0o755)
    for path in (work / "core").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    target = work / "core" / "cmd" / "gomint"
    target.mkdir(parents=True)
    shutil.copy(Path(__file__).parent / "gomint" / "main.go", target / "main.go")
    binary = work / "gomint"
    built = subprocess.run(
        [go, "build", "-o", str(binary), "./cmd/gomint"],
        cwd=work / "core",
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off"},
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    return binary


def run(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("capability", "selector"),
    [
        (caps.READ, "name=examples/word-count/lines"),
        (caps.LIST | caps.APPEND, "hi in (there, x),name:prefix=a/,!gone"),
        (caps.APPLY, ""),
        (caps.ALL, "id=count-000"),
        (caps.READ | (1 << 16), "app.gazette.dev/message-type=Sum, team notin (b)"),
    ],
)
def test_the_same_claims_make_the_same_token(gomint: Path, capability: int, selector: str) -> None:
    theirs = run(gomint, "sign", KEY, str(capability), selector, "1700000000", "1900000000")
    assert theirs.returncode == 0, theirs.stderr
    parsed = lbl.parse_selector(selector) if selector else None
    claims = (
        Claims(capability, parsed, 1700000000, 1900000000)
        if parsed
        else Claims(capability, issued_at=1700000000, expires_at=1900000000)
    )
    ours = tokens.sign_with(base64.b64decode(KEY), claims)
    assert ours == theirs.stdout.strip()
    verified = Keys.parse(KEY).verify(theirs.stdout.strip(), now=1800000000)
    assert claims_mod.to_json(verified) == claims_mod.to_json(claims)


def test_gazette_verifies_our_tokens_and_refuses_as_we_do(gomint: Path) -> None:
    keys = Keys.parse(KEY)
    token = keys.sign(Claims(caps.READ | caps.LIST, lbl.parse_selector("name:prefix=ex/")), 3600)
    verified = run(gomint, "verify", f"{KEY} AA==", str(caps.READ), token)
    assert verified.returncode == 0, verified.stdout
    doc = json.loads(verified.stdout)
    assert doc["cap"] == caps.READ | caps.LIST
    assert doc["sel"] == claims_mod.selector_json(lbl.parse_selector("name:prefix=ex/"))

    refused = run(gomint, "verify", KEY, str(caps.APPEND), token)
    assert "authorization is missing required APPEND capability" in refused.stdout
    with pytest.raises(Exception, match="missing required APPEND capability"):
        caps.check(caps.READ | caps.LIST, caps.APPEND)

    other = base64.b64encode(b"another").decode()
    refused = run(gomint, "verify", other, str(caps.READ), token)
    assert "token signature is invalid: signature is invalid" in refused.stdout
    with pytest.raises(TokenError, match="token signature is invalid: signature is invalid"):
        Keys.parse(other).verify(token)

    expired = keys.sign(Claims(caps.READ), 1, now=time.time() - 60)
    refused = run(gomint, "verify", KEY, str(caps.READ), expired)
    assert "token has invalid claims: token is expired" in refused.stdout
    with pytest.raises(TokenError, match="token has invalid claims: token is expired"):
        keys.verify(expired)
