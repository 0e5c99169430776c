"""`gazette-trio serve` secured with `[security]` (auth keys and TLS), driven
by the `gazette-trio` commands as an operator would: with the keys' tokens
and the CA they work, and each refusal is clear and writes nothing: no
token, an expired token, a token for other journals or shards, a missing
capability, plaintext to the TLS port, another CA's certificate. A config
that would expose the member without keys and TLS is refused at start."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gazette_trio import aio
from gazette_trio.auth import ALL, Claims, Keys, tls
from gazette_trio.auth.authorizer import KeyedAuthorizer, channel_hook
from gazette_trio.protocol import consumer as pc
from tests.serve_member import (
    CONFIG,
    ServeMember,
    appended_head,
    gazette_trio,
    serve_pair,
    stat,
)

from .conftest import KEY_TEXT, OTHER_KEY_TEXT
from .pki import Pki

SECURITY = """
[security]
auth_keys_file = "auth-keys"
server_cert_file = "{cert}"
server_key_file = "{key}"
trusted_ca_file = "{ca}"
"""


def security(pki: Pki) -> str:
    return SECURITY.format(cert=pki.cert, key=pki.key, ca=pki.ca)


class SecuredMember(ServeMember):
    """A member serving with the keys and certificates of `pki`, whose
    operator holds the keys and the CA."""

    host = "https://localhost"

    def __init__(
        self, directory: Path, pki: Pki, *, config: str = "config.toml", log: str = "serve.log"
    ) -> None:
        super().__init__(directory, config=config, log=log)
        self.pki = pki
        (directory / "auth-keys").write_text(KEY_TEXT + "\n")

    def env(self, **overrides: str | Path | None) -> dict[str, str]:
        """The environment of an operator holding the keys and the CA."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAZETTE_TRIO_")}
        base: dict[str, str | Path | None] = {
            "GAZETTE_TRIO_AUTH_KEYS_FILE": self.directory / "auth-keys",
            "GAZETTE_TRIO_TRUSTED_CA_FILE": self.pki.ca,
        }
        base.update(overrides)
        env.update({k: str(v) for k, v in base.items() if v is not None})
        return env

    def serve_env(self) -> dict[str, str]:
        # The member's keys and CA are its config's, not the environment's.
        return self.env(GAZETTE_TRIO_AUTH_KEYS_FILE=None, GAZETTE_TRIO_TRUSTED_CA_FILE=None)

    def operator_env(self) -> dict[str, str]:
        return self.env()

    def lines(self) -> str:
        read = self.cli("journals", "-e", self.endpoint, "read", "ex/lines")
        assert read.returncode == 0, read.stderr
        return read.stdout


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[SecuredMember]:
    m = SecuredMember(tmp_path_factory.mktemp("secured"), pki)
    m.write_word_count(settings=security(pki))
    try:
        m.start()
        yield m
    finally:
        m.stop(20)


def token_file(member: SecuredMember, name: str, *args: str, key_file: Path | None = None) -> Path:
    minted = member.cli(
        "auth", "token", *args, "--key-file", str(key_file or member.directory / "auth-keys")
    )
    assert minted.returncode == 0, minted.stderr
    path = member.directory / name
    path.write_text(minted.stdout)
    return path


LINE = json.dumps({"text": "sealed words"}) + "\n"


@pytest.mark.slow
def test_an_operator_with_the_keys_and_the_ca_runs_the_member(member: SecuredMember) -> None:
    appended = member.cli(
        "journals", "-e", member.endpoint, "append", "ex/lines", stdin=LINE.encode()
    )
    assert appended.returncode == 0, appended.stderr
    assert LINE in member.lines()
    deadline = time.monotonic() + 30
    while "sealed" not in member.cli("journals", "-e", member.endpoint, "read", "ex/counts").stdout:
        assert time.monotonic() < deadline, member.logs()
        time.sleep(0.2)
    shards = member.cli("shards", "list", "-e", member.endpoint, "-o", "json").stdout
    assert '"count-000"' in shards


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-token", "missing or empty Authorization token"),
        ("expired", "token is expired"),
        ("unknown-key", "token signature is invalid"),
        ("other-journals", "JOURNAL_NOT_FOUND"),
        ("no-append-capability", "authorization is missing required APPEND capability"),
        ("plaintext", "if it serves TLS, dial https://localhost"),
        ("other-ca", "CERTIFICATE_VERIFY_FAILED"),
    ],
)
def test_refused_appends_are_explained_and_write_nothing(
    member: SecuredMember, tmp_path: Path, case: str, message: str
) -> None:
    before = member.lines()
    endpoint = member.endpoint
    env: dict[str, str]
    if case == "no-token":
        env = member.env(GAZETTE_TRIO_AUTH_KEYS_FILE=None)
    elif case == "expired":
        # Issued two minutes ago for one: past the five seconds of leeway.
        path = member.directory / "expired.token"
        path.write_text(Keys.parse(KEY_TEXT).sign(Claims(ALL), 60, now=time.time() - 120))
        env = member.env(GAZETTE_TRIO_AUTH_KEYS_FILE=None, GAZETTE_TRIO_AUTH_TOKEN_FILE=path)
    elif case == "unknown-key":
        other = tmp_path / "other-keys"
        other.write_text(OTHER_KEY_TEXT)
        env = member.env(GAZETTE_TRIO_AUTH_KEYS_FILE=other)
    elif case == "other-journals":
        path = token_file(
            member, "scoped.token", "--cap", "ALL", "--selector", "name:prefix=other/"
        )
        env = member.env(GAZETTE_TRIO_AUTH_KEYS_FILE=None, GAZETTE_TRIO_AUTH_TOKEN_FILE=path)
    elif case == "no-append-capability":
        path = token_file(member, "reader.token", "--cap", "READ,LIST")
        env = member.env(GAZETTE_TRIO_AUTH_KEYS_FILE=None, GAZETTE_TRIO_AUTH_TOKEN_FILE=path)
    elif case == "plaintext":
        endpoint = endpoint.replace("https://", "http://")
        env = member.env()
    else:
        env = member.env(GAZETTE_TRIO_TRUSTED_CA_FILE=member.pki.other_ca)
    refused = member.cli("journals", "-e", endpoint, "append", "ex/lines", stdin=b"{}\n", env=env)
    assert refused.returncode != 0
    assert message in refused.stderr, refused.stderr
    assert member.lines() == before


@pytest.mark.slow
def test_a_token_scoped_to_other_shards_sees_none(member: SecuredMember) -> None:
    path = token_file(member, "shards.token", "--cap", "LIST,READ", "--selector", "id=count-999")
    env = member.env(GAZETTE_TRIO_AUTH_KEYS_FILE=None, GAZETTE_TRIO_AUTH_TOKEN_FILE=path)
    listed = member.cli("shards", "list", "-e", member.endpoint, "-o", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "count-000" not in listed.stdout
    unassign = member.cli(
        "shards", "unassign", "-e", member.endpoint, "-l", "id=count-000", env=env
    )
    assert "no shards match selector 'id=count-000'; nothing unassigned" in unassign.stderr
    assert "count-000" in member.cli("shards", "list", "-e", member.endpoint).stdout


def test_listening_beyond_loopback_without_keys_and_tls_is_refused(tmp_path: Path) -> None:
    ServeMember(tmp_path).write_word_count(
        CONFIG.replace("[member]\n", '[member]\nhost = "0.0.0.0"\n')
    )
    started = gazette_trio("serve", "config.toml", cwd=tmp_path)
    assert started.returncode == 2
    assert "member.host: the gRPC port listens on 0.0.0.0 without auth keys" in started.stderr
    assert "security.insecure = true" in started.stderr
    assert not (tmp_path / "data" / "journals").exists()


@pytest.mark.slow
def test_a_stat_proxied_between_secured_members_carries_the_members_token(
    tmp_path: Path, etcd_endpoint: str, pki: Pki
) -> None:
    """Two secured members share a real etcd; the second reads journals from
    the first's embedded journal server over TLS, with its own tokens. A Stat
    asked of the member that is not primary is forwarded to the primary with
    a token the forwarding member signs, verified there like any other."""
    make = functools.partial(SecuredMember, tmp_path, pki)
    with serve_pair(make, etcd_endpoint, "secured-pair", security(pki)) as (members, primary):
        lines = "".join(json.dumps({"text": f"x y {i}"}) + "\n" for i in range(10)).encode()
        first = members[0]
        appended = first.cli("journals", "-e", first.endpoint, "append", "ex/lines", stdin=lines)
        assert appended.returncode == 0, appended.stderr
        head = appended_head(appended)

        credentials = aio.DialCredentials(
            ssl=tls.client_context(pki.ca),
            metadata=channel_hook(KeyedAuthorizer(Keys.parse(KEY_TEXT))),
        )
        reply = stat(members[1 - primary].endpoint, {"ex/lines": head}, credentials)
        assert reply.status == pc.Status.OK
        assert reply.read_through["ex/lines"] >= head
        assert reply.header is not None and reply.header.process_id is not None
        assert reply.header.process_id.suffix == ["member-one", "member-two"][primary]


@pytest.mark.slow
def test_the_members_config_lends_an_operator_its_credentials(member: SecuredMember) -> None:
    """On the member's machine, `-c config.toml` is enough: the config's keys
    sign, its CA is trusted, and its TLS port is dialed with https://."""
    bare = member.env(GAZETTE_TRIO_AUTH_KEYS_FILE=None, GAZETTE_TRIO_TRUSTED_CA_FILE=None)
    config = str(member.directory / "config.toml")
    listed = member.cli("shards", "list", "-c", config, env=bare)
    assert listed.returncode == 0, listed.stderr
    assert "count-000" in listed.stdout
    # Client settings in the environment replace the config's, all of them.
    other = member.directory / "elsewhere-keys"
    other.write_text(OTHER_KEY_TEXT)
    refused = member.cli(
        "shards", "list", "-c", config, env=dict(bare, GAZETTE_TRIO_AUTH_KEYS_FILE=str(other))
    )
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr  # no CA from the config either
    refused = member.cli(
        "shards",
        "list",
        "-c",
        config,
        env=dict(
            bare,
            GAZETTE_TRIO_AUTH_KEYS_FILE=str(other),
            GAZETTE_TRIO_TRUSTED_CA_FILE=str(member.pki.ca),
        ),
    )
    assert refused.returncode != 0
    assert "signature is invalid" in refused.stderr
