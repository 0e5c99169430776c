"""JSON query routes on secured members: the HTTP port's rules, and a
forwarded query verified at the primary.

Two members secured with keys and TLS share a real etcd; their HTTP ports
listen on a non-loopback address of this machine, so a request there comes
from off loopback and needs a token with READ. Asked of the member that is
not the shard's primary, a query with such a token is forwarded to the
primary over its TLS gRPC port with a token the forwarding member signs,
and answered there. Without a token it is 401; with a token whose selector
does not reach the shard it is 404, as `Stat` hides such a shard.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gazette_trio.auth import Claims, Keys
from gazette_trio.auth import capabilities as caps
from gazette_trio.protocol import labels as lbl
from tests.services import free_port

from .conftest import KEY_TEXT
from .pki import Pki
from .test_serve_secured import SECURITY

APP = """
from gazette_trio import Aggregation, JSONMessage, QueryParams, Shard, Store, query


class Counter(Aggregation[JSONMessage, int]):
    message_type = JSONMessage

    def keys(self, line):
        return line["text"].split()

    def reduce(self, count, line):
        return (count or 0) + 1

    @query("count")
    async def count(self, shard: Shard, store: Store, params: QueryParams) -> object:
        return {"word": params["word"], "count": await self.value(store, params["word"]) or 0}
"""

CONFIG = """
data_dir = "data-{suffix}"

[application]
module = "qcounter:Counter"

[member]
port = {port}
suffix = "{suffix}"

[http]
host = "{host}"
port = {http}

[etcd]
endpoints = ["{etcd}"]
prefix = "/gazette/consumers/secured-queries"
{broker}
[journals]
name = "ex/"
labels = [{{name = "content-type", value = "application/x-ndjson"}}]
children = [{{ name = "ex/lines" }}]

[[shards.shards]]
id = "count-000"
sources = [{{ journal = "ex/lines" }}]
max_txn_duration = "500ms"
"""


def outward_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: it picks a route
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def ask(url: str, ca: Path, token: str | None) -> tuple[int, dict[str, object]]:
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False  # the test certificate names localhost only
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else {"text": body.decode()}


@pytest.mark.slow
def test_queries_need_a_token_off_loopback_are_scoped_by_it_and_forwarded_verified(
    tmp_path: Path, etcd_endpoint: str, pki: Pki
) -> None:
    host = outward_address()
    if host is None:
        pytest.skip("this machine has no address but loopback")
    (tmp_path / "qcounter.py").write_text(textwrap.dedent(APP))
    (tmp_path / "auth-keys").write_text(KEY_TEXT + "\n")
    ports = [free_port(), free_port()]
    https = [free_port(), free_port()]
    security = SECURITY.format(cert=pki.cert, key=pki.key, ca=pki.ca)
    procs = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAZETTE_TRIO_")}
    try:
        for i, suffix in enumerate(["member-one", "member-two"]):
            broker = "" if i == 0 else f'[broker]\nendpoint = "https://localhost:{ports[0]}"\n'
            config = tmp_path / f"{suffix}.toml"
            config.write_text(
                CONFIG.format(
                    suffix=suffix,
                    port=ports[i],
                    http=https[i],
                    host=host,
                    etcd=etcd_endpoint,
                    broker=broker,
                )
                + security
            )
            log = open(tmp_path / f"{suffix}.log", "wb")  # noqa: SIM115 (closed below)
            proc = subprocess.Popen(
                [sys.executable, "-m", "gazette_trio", "serve", config.name],
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            procs.append((proc, log))
            deadline = time.monotonic() + 30
            while "serving consumer group" not in (tmp_path / f"{suffix}.log").read_text():
                assert proc.poll() is None and time.monotonic() < deadline, (
                    tmp_path / f"{suffix}.log"
                ).read_text()
                time.sleep(0.1)

        keys = Keys.parse(KEY_TEXT)
        reader = keys.sign(Claims(caps.READ), 600)
        elsewhere = keys.sign(Claims(caps.READ, lbl.parse_selector("id=count-999")), 600)
        urls = [f"https://{host}:{p}/query/count?word=x&shard=count-000" for p in https]

        # The shard's primary, as whichever member answers says.
        deadline = time.monotonic() + 30
        while (answer := ask(urls[1], pki.ca, reader))[0] != 200:
            assert time.monotonic() < deadline, answer
            time.sleep(0.3)
        primary = 0 if answer[1]["member"] == "local/member-one" else 1
        other = 1 - primary

        status, answer = ask(urls[other], pki.ca, reader)
        assert status == 200, answer
        assert answer == {
            "shard": "count-000",
            "member": f"local/{['member-one', 'member-two'][primary]}",
            "result": {"word": "x", "count": 0},
        }
        status, refused = ask(urls[other], pki.ca, None)
        assert status == 401, refused
        assert "missing or empty Authorization token" in refused["text"]
        assert ask(urls[other], pki.ca, elsewhere) == (404, {"error": "no shard count-000"})
    finally:
        for proc, log in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
