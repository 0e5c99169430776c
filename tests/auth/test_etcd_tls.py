"""etcd over TLS: the member's etcd client dials an `https://` etcd with
etcd's own CA and, when etcd requires one, a client certificate
(`security.etcd_*`), apart from the Gazette services' settings. A client
trusting another CA is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio

from gazette_trio import aio
from gazette_trio.auth import tls
from gazette_trio.etcd import GrpcEtcd
from gazette_trio.etcd.types import EtcdError
from tests.services import _wait_port, etcd_binary, free_port

from .pki import Pki


@contextmanager
def tls_etcd(pki: Pki) -> Iterator[str]:
    """A single-member etcd serving clients over TLS only, requiring a
    client certificate from the test CA."""
    data = tempfile.mkdtemp(prefix="gazette-trio-etcd-tls-")
    client, peer = free_port(), free_port()
    with open(os.path.join(data, "etcd.log"), "wb") as log:
        proc = subprocess.Popen(
            [
                etcd_binary(),
                "--name=tls",
                f"--data-dir={data}/data",
                f"--listen-client-urls=https://127.0.0.1:{client}",
                f"--advertise-client-urls=https://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=tls=http://127.0.0.1:{peer}",
                f"--cert-file={pki.cert}",
                f"--key-file={pki.key}",
                f"--trusted-ca-file={pki.ca}",
                "--client-cert-auth",
                "--log-level=error",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_port(client, 30, proc)
        yield f"https://localhost:{client}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


async def test_the_etcd_client_speaks_etcds_tls(island: None, pki: Pki) -> None:
    with tls_etcd(pki) as endpoint:
        trusted = tls.client_context(pki.ca, pki.cert, pki.key)
        async with GrpcEtcd.open(endpoint, tls=trusted, timeout=10) as etcd:
            await etcd.put("/tls/key", b"sealed")
            kv = await etcd.get("/tls/key")
            assert kv is not None and kv.value == b"sealed"
        wrong = tls.client_context(pki.other_ca, pki.cert, pki.key)
        async with GrpcEtcd.open(endpoint, tls=wrong, timeout=5) as etcd:
            with pytest.raises(EtcdError, match="CERTIFICATE_VERIFY_FAILED"), trio.fail_after(20):
                await etcd.get("/tls/key")


def test_etcd_calls_never_carry_gazette_tokens() -> None:
    # The etcd client's channel has TLS settings only: no per-call metadata hook,
    # whatever the process's dial credentials are.
    async def main() -> None:
        async with aio.asyncio_island():
            previous = aio.set_dial_credentials(
                aio.DialCredentials(metadata=lambda path, request: {"authorization": "Bearer x"})
            )
            try:
                etcd = GrpcEtcd("http://127.0.0.1:1")
                assert etcd._channel.call_metadata("/etcdserverpb.KV/Range", None) is None
                await etcd.aclose()
            finally:
                aio.set_dial_credentials(previous)

    trio.run(main)
