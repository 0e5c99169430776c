"""Fixtures of the authorization and TLS tests: keys, certificates, and a
journal server core served with verification (and TLS when asked)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from gazette_trio import aio
from gazette_trio.auth import settings, tls
from gazette_trio.auth.authorizer import BearerAuthorizer, KeyedAuthorizer, channel_hook
from gazette_trio.auth.tokens import Keys
from gazette_trio.auth.verifier import Verifier
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.broker.server import JournalServerCore, MemoryStorage, journal_service

from .pki import Pki, make_pki

KEY_TEXT = base64.b64encode(b"gazette-trio test key, not a secret").decode()
OTHER_KEY_TEXT = base64.b64encode(b"a key nobody else holds").decode()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def keys() -> Keys:
    return Keys.parse(KEY_TEXT)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "auth-keys"
    path.write_text(KEY_TEXT + "\n")
    return path


@contextlib.contextmanager
def dialing(credentials: aio.DialCredentials) -> Iterator[None]:
    """`credentials` as the default of channels made in the block."""
    previous = aio.set_dial_credentials(credentials)
    try:
        yield
    finally:
        aio.set_dial_credentials(previous)


def signed(keys: Keys, ca: Path | None = None) -> aio.DialCredentials:
    return aio.DialCredentials(
        ssl=tls.client_context(ca) if ca else None, metadata=channel_hook(KeyedAuthorizer(keys))
    )


def bearer(token: str) -> aio.DialCredentials:
    return aio.DialCredentials(metadata=channel_hook(BearerAuthorizer(token)))


@contextlib.asynccontextmanager
async def served_core(
    core: JournalServerCore, verifier: Verifier, *, tls_context: object = None
) -> AsyncIterator[str]:
    """`core` served on loopback with `verifier`; yields its endpoint."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: aio.serve(
                [journal_service(core, verifier)],
                "127.0.0.1",
                0,
                tls=tls_context,  # type: ignore[arg-type]
                task_status=task_status,
            )
        )
        # The test certificate names localhost and 127.0.0.1.
        yield f"https://localhost:{port}" if tls_context is not None else f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


@pytest.fixture
def core() -> JournalServerCore:
    return JournalServerCore(MemoryStorage())


@contextlib.asynccontextmanager
async def client_of(
    endpoint: str, credentials: aio.DialCredentials
) -> AsyncIterator[GrpcJournalClient]:
    async with aio.Channel(endpoint, credentials=credentials) as channel:
        yield GrpcJournalClient(channel, timeout=10)


__all__ = ["bearer", "client_of", "dialing", "served_core", "settings", "signed"]
