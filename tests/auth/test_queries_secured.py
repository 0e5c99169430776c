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

import functools
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gazette_trio.auth import Claims, Keys
from gazette_trio.auth import capabilities as caps
from gazette_trio.protocol import labels as lbl
from tests.serve_member import PAIR, serve_pair

from .conftest import KEY_TEXT
from .pki import Pki
from .test_serve_secured import SecuredMember, security

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
prefix = "/gazette/consumers/{group}"
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
    with serve_pair(
        functools.partial(SecuredMember, tmp_path, pki),
        etcd_endpoint,
        "secured-queries",
        security(pki),
        app=("qcounter.py", APP),
        config=CONFIG,
        host=host,
    ) as (members, _):
        keys = Keys.parse(KEY_TEXT)
        reader = keys.sign(Claims(caps.READ), 600)
        elsewhere = keys.sign(Claims(caps.READ, lbl.parse_selector("id=count-999")), 600)
        urls = [f"https://{host}:{m.http}/query/count?word=x&shard=count-000" for m in members]

        # The shard's primary, as whichever member answers says.
        deadline = time.monotonic() + 30
        while (first := ask(urls[1], pki.ca, reader))[0] != 200:
            assert time.monotonic() < deadline, first
            time.sleep(0.3)
        primary = 0 if first[1]["member"] == "local/member-one" else 1
        other = 1 - primary

        status, answer = ask(urls[other], pki.ca, reader)
        assert status == 200, answer
        assert answer == {
            "shard": "count-000",
            "member": f"local/{PAIR[primary]}",
            "result": {"word": "x", "count": 0},
        }
        status, refused = ask(urls[other], pki.ca, None)
        assert status == 401, refused
        assert "missing or empty Authorization token" in str(refused["text"])
        assert ask(urls[other], pki.ca, elsewhere) == (404, {"error": "no shard count-000"})
