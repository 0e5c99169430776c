"""Authorization and TLS with Gazette's own binaries, both ways.

- A gazette-trio member consumes from a `gazette serve` broker that runs
  with `--auth-keys` and TLS: it dials https://, signs its calls with the
  shared key, and counts words exactly; gazctl publishes with keys of its
  own minting, and a token `gazette-trio auth token` minted reads from the
  broker, scoped to what it names.
- gazctl, given the CA and a token (minted by gazctl itself from the keys,
  or by `gazette-trio auth token`), drives a secured `gazette-trio serve`:
  shards, journals, append and read. Without a token, with one for other
  journals, or trusting another CA, gazctl is refused and nothing is
  written.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from ..auth.pki import Pki, make_pki
from ..examples.processes import (
    GAZETTE_TRIO,
    PYTHON,
    REPO,
    SERVING,
    MemberPorts,
    ProcessGroup,
    clean_env,
    member_env,
)
from ..services import free_port
from .conftest import Completed, Gazctl, etcd_count, peer, run_tool, wait_until

KEY = base64.b64encode(b"interop key shared by Go and Python").decode()
WORD_COUNT = REPO / "examples" / "word_count"
LINES = ["the quick brown fox", "jumps over the lazy dog", "the end"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "auth-keys"
    path.write_text(KEY + "\n")
    return path


def mint(keys_file: Path, *args: str) -> str:
    done = run_tool(
        [GAZETTE_TRIO, "auth", "token", "--key-file", str(keys_file), *args], clean_env()
    )
    return done.ok().strip()


def secured_gazette(group: ProcessGroup, etcd: str, pki: Pki, tmp_path: Path) -> str:
    """One `gazette serve` with --auth-keys and TLS; its https:// address."""
    port = free_port()
    prefix = f"/gazette/secured-{uuid.uuid4().hex[:8]}"
    spool = tmp_path / "spool"
    spool.mkdir(parents=True)
    group.start(
        "secured-gazette",
        [
            peer("gazette"),
            "serve",
            "--broker.host=127.0.0.1",
            f"--broker.port={port}",
            "--broker.id=secured",
            "--broker.zone=zone-a",
            f"--broker.auth-keys={KEY}",
            f"--broker.server-cert-file={pki.cert}",
            f"--broker.server-cert-key-file={pki.key}",
            f"--broker.peer-ca-file={pki.ca}",
            f"--broker.file-root={tmp_path}",
            f"--etcd.address={etcd}",
            f"--etcd.prefix={prefix}",
            "--etcd.lease=5s",
            "--log.level=info",
        ],
        clean_env(TMPDIR=str(spool)),
    )
    wait_until("the secured broker announced", lambda: etcd_count(etcd, f"{prefix}/members/") == 1)
    return f"https://127.0.0.1:{port}"


def gazctl_env(gazctl: Gazctl, **settings: str) -> dict[str, str]:
    env = gazctl.environment()
    env.update(settings)
    return env


def query(
    group: ProcessGroup, endpoint: str, env: dict[str, str], words: list[str]
) -> dict[str, int]:
    code, out = group.run(
        "query", [PYTHON, str(WORD_COUNT / "wordcountctl.py"), "query", "-e", endpoint, *words], env
    )
    assert code == 0, out
    counts: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_a_member_consumes_from_a_secured_gazette_broker_over_tls(
    interop_etcd: str,
    group: ProcessGroup,
    gazctl: Gazctl,
    pki: Pki,
    keys_file: Path,
    tmp_path: Path,
) -> None:
    broker = secured_gazette(group, interop_etcd, pki, tmp_path / "broker")
    ports = MemberPorts()
    env = member_env(
        ports,
        tmp_path / "member",
        etcd=interop_etcd,
        etcd_prefix=f"/gazette/consumers/wc-{uuid.uuid4().hex[:8]}",
        broker=broker,
    )
    env.update(
        GAZETTE_TRIO_SECURITY__AUTH_KEYS_FILE=str(keys_file),
        GAZETTE_TRIO_SECURITY__TRUSTED_CA_FILE=str(pki.ca),
    )
    member = group.start(
        "secured-member", [GAZETTE_TRIO, "serve", "examples/word_count/config.toml"], env
    )
    member.wait_for_log(SERVING, timeout=90)

    # gazctl mints its own tokens from the keys; the broker verifies them.
    ctl = gazctl_env(
        gazctl,
        BROKER_ADDRESS=broker,
        BROKER_AUTH_KEYS=KEY,
        BROKER_TRUSTED_CA_FILE=str(pki.ca),
    )
    template = '{"_meta":{"uuid":"{{.UUID}}"},"text":"{{.Line}}"}\n'
    framed = run_tool(
        [gazctl.binary, "attach-uuids", f"--template={template}"],
        ctl,
        input="".join(f"{x}\n" for x in LINES),
        cwd=gazctl.cwd,
    ).ok()
    run_tool(
        [gazctl.binary, "journals", "append", "-l", "name=examples/word-count/lines/part-000"],
        ctl,
        input=framed,
        cwd=gazctl.cwd,
    ).ok()

    client = clean_env(
        GAZETTE_TRIO_AUTH_KEYS_FILE=str(keys_file), GAZETTE_TRIO_TRUSTED_CA_FILE=str(pki.ca)
    )
    expected = {"the": 3, "fox": 1, "dog": 1, "end": 1}
    wait_until(
        "the member counted the words",
        lambda: query(group, ports.endpoint, client, list(expected)) == expected,
        timeout=60,
        every=0.5,
    )

    # A token gazette-trio mints is accepted by Gazette's broker, for what it names.
    reader = mint(
        keys_file, "--cap", "READ,LIST", "--selector", "name:prefix=examples/word-count/lines/"
    )
    scoped = gazctl_env(
        gazctl, BROKER_ADDRESS=broker, BROKER_AUTH_TOKEN=reader, BROKER_TRUSTED_CA_FILE=str(pki.ca)
    )
    read = run_tool(
        [gazctl.binary, "journals", "read", "-l", "name=examples/word-count/lines/part-000"],
        scoped,
        cwd=gazctl.cwd,
    )
    assert "jumps over the lazy dog" in read.ok()
    listed = run_tool([gazctl.binary, "journals", "list", "--format=json"], scoped, cwd=gazctl.cwd)
    names = {j["spec"]["name"] for j in _json_journals(listed.ok())}
    assert names == {"examples/word-count/lines/part-000", "examples/word-count/lines/part-001"}
    refused = run_tool(
        [gazctl.binary, "journals", "append", "-l", "name=examples/word-count/lines/part-001"],
        scoped,
        input='{"text":"no"}\n',
        cwd=gazctl.cwd,
    )
    assert refused.code != 0
    assert "missing required APPEND capability" in refused.stderr


def _json_journals(text: str) -> list[dict[str, object]]:
    doc = json.loads(text)
    return list(doc.get("journals", [])) if isinstance(doc, dict) else list(doc)


def start_secured_member(
    group: ProcessGroup, tmp_path: Path, pki: Pki, keys_file: Path
) -> tuple[MemberPorts, str]:
    ports = MemberPorts()
    env = member_env(ports, tmp_path / "member")
    env.update(
        GAZETTE_TRIO_SECURITY__AUTH_KEYS_FILE=str(keys_file),
        GAZETTE_TRIO_SECURITY__SERVER_CERT_FILE=str(pki.cert),
        GAZETTE_TRIO_SECURITY__SERVER_KEY_FILE=str(pki.key),
        GAZETTE_TRIO_SECURITY__TRUSTED_CA_FILE=str(pki.ca),
    )
    member = group.start(
        "secured-trio", [GAZETTE_TRIO, "serve", "examples/word_count/config.toml"], env
    )
    member.wait_for_log(SERVING, timeout=90)
    return ports, f"https://127.0.0.1:{ports.grpc}"


def test_gazctl_with_a_token_drives_a_secured_gazette_trio_serve(
    group: ProcessGroup, gazctl: Gazctl, pki: Pki, keys_file: Path, tmp_path: Path
) -> None:
    _, endpoint = start_secured_member(group, tmp_path, pki, keys_file)
    operator = mint(keys_file, "--cap", "ALL", "--ttl", "10m")
    ctl = gazctl_env(
        gazctl,
        BROKER_ADDRESS=endpoint,
        BROKER_AUTH_TOKEN=operator,
        BROKER_TRUSTED_CA_FILE=str(pki.ca),
        CONSUMER_ADDRESS=endpoint,
        CONSUMER_AUTH_KEYS=KEY,  # gazctl mints the Shard API's tokens itself
        CONSUMER_TRUSTED_CA_FILE=str(pki.ca),
    )

    def gz(*args: str, env: dict[str, str] = ctl, input: str | None = None) -> Completed:
        return run_tool([gazctl.binary, *args], env, input=input, cwd=gazctl.cwd)

    shards = gz("shards", "list", "--primary")
    assert "count-000" in shards.ok() and "split-001" in shards.ok()
    journal = "examples/word-count/lines/part-001"
    gz("journals", "append", "-l", f"name={journal}", input='{"text":"sealed by gazctl"}\n').ok()
    assert "sealed by gazctl" in gz("journals", "read", "-l", f"name={journal}").ok()

    def content() -> str:
        return gz("journals", "read", "-l", f"name={journal}").ok()

    before = content()
    other = mint(keys_file, "--cap", "ALL", "--selector", "name:prefix=elsewhere/")
    cases = {
        "no token": ({"BROKER_AUTH_TOKEN": ""}, "missing or empty Authorization token"),
        # gazctl lists the journal first; the token's List does not show it.
        "other journals": ({"BROKER_AUTH_TOKEN": other}, "empty ListResponse"),
    }
    for case, (change, message) in cases.items():
        env = dict(ctl)
        for key, value in change.items():
            if value:
                env[key] = value
            else:
                env.pop(key)
        refused = gz("journals", "append", "-l", f"name={journal}", env=env, input='{"text":"x"}\n')
        assert refused.code != 0, case
        assert message in refused.stderr, (case, refused)
    # Trusting another CA, gazctl never gets past the handshake: gRPC waits for
    # a usable connection, retrying, and logs why at its info level.
    env = dict(ctl, BROKER_TRUSTED_CA_FILE=str(pki.other_ca), GRPC_GO_LOG_SEVERITY_LEVEL="info")
    stuck = subprocess.run(
        ["timeout", "10", gazctl.binary, "journals", "append", "-l", f"name={journal}"],
        env=env,
        input='{"text":"x"}\n',
        capture_output=True,
        text=True,
        cwd=gazctl.cwd,
    )
    assert stuck.returncode != 0
    assert "certificate signed by unknown authority" in stuck.stderr, stuck.stderr
    assert content() == before
