"""The gRPC port over TLS, as Gazette serves it: a client that trusts the
server's CA talks to it, and each of these is refused before any request is
served, so nothing is written: a plaintext client, a client trusting another
CA, and (when the server requires client certificates) a client without
one or with one from another CA."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gazette_trio import aio
from gazette_trio.auth import tls
from gazette_trio.auth.authorizer import KeyedAuthorizer, channel_hook
from gazette_trio.auth.tokens import Keys
from gazette_trio.auth.verifier import Verifier
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.reader import open_reader
from gazette_trio.broker.server import JournalServerCore
from gazette_trio.protocol import protocol as pb

from .conftest import client_of, served_core
from .pki import Pki


def credentials(keys: Keys, context: object | None) -> aio.DialCredentials:
    return aio.DialCredentials(ssl=context, metadata=channel_hook(KeyedAuthorizer(keys)))  # type: ignore[arg-type]


async def written(endpoint: str, keys: Keys, pki: Pki, journal: str) -> bytes:
    trusted = credentials(keys, tls.client_context(pki.ca, pki.cert, pki.key))
    async with (
        client_of(endpoint, trusted) as client,
        open_reader(client, journal, block=False) as reader,
    ):
        return await reader.read_all()


@pytest.fixture
async def endpoint(
    island: None, core: JournalServerCore, keys: Keys, pki: Pki
) -> AsyncIterator[str]:
    server = tls.server_context(pki.cert, pki.key)
    async with served_core(core, Verifier(keys), tls_context=server) as endpoint:
        async with client_of(endpoint, credentials(keys, tls.client_context(pki.ca))) as client:
            await apply_journals(client, [upsert(new_journal_spec("tls/one"))])
        yield endpoint


async def test_a_client_trusting_the_ca_appends_and_reads(
    endpoint: str, keys: Keys, pki: Pki
) -> None:
    assert endpoint.startswith("https://")
    async with client_of(endpoint, credentials(keys, tls.client_context(pki.ca))) as client:
        response = await client.append(pb.AppendRequest(journal="tls/one"), [b"sealed\n"])
    assert response.status == pb.Status.OK
    assert await written(endpoint, keys, pki, "tls/one") == b"sealed\n"


async def test_plaintext_to_the_tls_port_is_refused(endpoint: str, keys: Keys, pki: Pki) -> None:
    plaintext = endpoint.replace("https://", "http://")
    async with client_of(plaintext, credentials(keys, None)) as client:
        with pytest.raises(aio.Unavailable):
            await client.append(pb.AppendRequest(journal="tls/one"), [b"clear\n"])
    assert await written(endpoint, keys, pki, "tls/one") == b""


async def test_a_server_certificate_from_another_ca_is_refused(
    endpoint: str, keys: Keys, pki: Pki
) -> None:
    wrong = credentials(keys, tls.client_context(pki.other_ca))
    async with client_of(endpoint, wrong) as client:
        with pytest.raises(aio.Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await client.append(pb.AppendRequest(journal="tls/one"), [b"mitm\n"])
    assert await written(endpoint, keys, pki, "tls/one") == b""


async def test_required_client_certificates_must_come_from_the_servers_ca(
    island: None, core: JournalServerCore, keys: Keys, pki: Pki
) -> None:
    server = tls.server_context(pki.cert, pki.key, client_ca_file=pki.ca)
    async with served_core(core, Verifier(keys), tls_context=server) as endpoint:
        good = credentials(keys, tls.client_context(pki.ca, pki.cert, pki.key))
        async with client_of(endpoint, good) as client:
            await apply_journals(client, [upsert(new_journal_spec("tls/two"))])
        for context in (
            tls.client_context(pki.ca),  # no client certificate
            tls.client_context(pki.ca, pki.other_cert, pki.other_key),  # another CA's
        ):
            async with client_of(endpoint, credentials(keys, context)) as client:
                with pytest.raises(aio.Unavailable):
                    await client.append(pb.AppendRequest(journal="tls/two"), [b"who\n"])
        assert await written(endpoint, keys, pki, "tls/two") == b""


def test_unusable_tls_files_are_named(pki: Pki, tmp_path: object) -> None:
    with pytest.raises(tls.TLSConfigError, match=r"server key '/nonexistent\.key': no such file"):
        tls.server_context(pki.cert, "/nonexistent.key")
    with pytest.raises(tls.TLSConfigError, match=r"trusted CA file .*: not a PEM CA bundle"):
        tls.client_context(pki.key)
    with pytest.raises(tls.TLSConfigError, match="cannot be loaded"):
        tls.server_context(pki.cert, pki.other_key)


async def test_a_read_of_many_tls_records_arrives_whole_and_in_order(
    endpoint: str, keys: Keys, pki: Pki
) -> None:
    # Every line differs, so bytes reordered, dropped or overwritten between
    # reads (the client decrypts each read into one buffer it reuses) show.
    content = b"".join(b"%08d\n" % i for i in range(240_000))
    async with client_of(endpoint, credentials(keys, tls.client_context(pki.ca))) as client:
        for start in range(0, len(content), 500_000):
            response = await client.append(
                pb.AppendRequest(journal="tls/one"), [content[start : start + 500_000]]
            )
            assert response.status == pb.Status.OK
        # The connection the appends used is the in-place reading one, and
        # its server agreed to send frames as large as a read's response.
        protocol = client.channel.grpclib_channel._protocol
        assert isinstance(protocol, aio._TLSClientProtocol)
        h2_connection = protocol.connection._connection
        assert h2_connection.max_inbound_frame_size == aio._CLIENT_MAX_FRAME
    assert await written(endpoint, keys, pki, "tls/one") == content
