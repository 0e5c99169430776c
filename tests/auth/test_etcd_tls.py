"""etcd over TLS: the member's etcd client dials an `https://` etcd with
etcd's own CA and, when etcd requires one, a client certificate
(`security.etcd_*`), apart from the Gazette services' settings. A client
trusting another CA is refused."""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest
import trio

from gazette_trio import aio
from gazette_trio.auth import tls
from gazette_trio.etcd import GrpcEtcd
from gazette_trio.etcd.types import EtcdError
from tests.services import etcd_binary, running_etcd

from .pki import Pki


def tls_etcd(pki: Pki) -> AbstractContextManager[str]:
    """A single-member etcd serving clients over TLS only, requiring a
    client certificate from the test CA."""
    return running_etcd(
        etcd_binary(),
        [
            f"--cert-file={pki.cert}",
            f"--key-file={pki.key}",
            f"--trusted-ca-file={pki.ca}",
            "--client-cert-auth",
        ],
    )


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
