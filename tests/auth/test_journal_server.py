"""The embedded journal server verifies every call as Gazette's brokers do:
a token signed with a shared key, the capability each RPC requires, and the
token's selector, which hides the journals it does not reach. Each refusal
is UNAUTHENTICATED with Gazette's message (or JOURNAL_NOT_FOUND for a hidden
journal), and nothing is written."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import pytest
import trio

from gazette_trio import aio
from gazette_trio.auth import capabilities as caps
from gazette_trio.auth import tokens
from gazette_trio.auth.authorizer import KeyedAuthorizer, channel_hook
from gazette_trio.auth.claims import Claims
from gazette_trio.auth.tokens import Keys
from gazette_trio.auth.verifier import Verifier
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, list_journals, upsert
from gazette_trio.broker.reader import open_reader
from gazette_trio.broker.server import JournalServerCore
from gazette_trio.protocol import labels as lbl
from gazette_trio.protocol import protocol as pb

from .conftest import OTHER_KEY_TEXT, bearer, client_of, served_core, signed


@pytest.fixture
async def endpoint(island: None, core: JournalServerCore, keys: Keys) -> AsyncIterator[str]:
    async with served_core(core, Verifier(keys)) as endpoint:
        async with client_of(endpoint, signed(keys)) as admin:
            await apply_journals(
                admin,
                [
                    upsert(new_journal_spec("allowed/one", labels={"team": "a"})),
                    upsert(new_journal_spec("secret/two", labels={"team": "b"})),
                ],
            )
        yield endpoint


def token(keys: Keys, cap: int, selector: str = "", ttl: float = 600) -> str:
    return keys.sign(Claims(cap, lbl.parse_selector(selector)), ttl)


async def append(client: GrpcJournalClient, journal: str, data: bytes) -> pb.AppendResponse:
    return await client.append(pb.AppendRequest(journal=journal), [data])


async def content(endpoint: str, keys: Keys, journal: str) -> bytes:
    async with (
        client_of(endpoint, signed(keys)) as client,
        open_reader(client, journal, block=False) as reader,
    ):
        return await reader.read_all()


async def test_a_signed_client_lists_appends_and_reads(endpoint: str, keys: Keys) -> None:
    async with client_of(endpoint, signed(keys)) as client:
        response = await append(client, "allowed/one", b"hello\n")
        assert response.status == pb.Status.OK
        names = [j.spec.name for j in await list_journals(client, pb.LabelSelector())]
    assert names == ["allowed/one", "secret/two"]
    assert await content(endpoint, keys, "allowed/one") == b"hello\n"


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (aio.DialCredentials(), "missing or empty Authorization token"),
        (
            aio.DialCredentials(metadata=lambda path, request: {"authorization": "Basic eA=="}),
            re.escape("invalid or unsupported Authorization header (expected 'Bearer')"),
        ),
        (signed(Keys.parse(OTHER_KEY_TEXT)), "token signature is invalid: signature is invalid"),
        (
            aio.DialCredentials(
                metadata=channel_hook(
                    KeyedAuthorizer(Keys.parse("Zm9v"), clock=lambda: time.time() - 7200)
                )
            ),
            "token signature is invalid",
        ),
    ],
    ids=["no-token", "not-bearer", "unknown-key", "unknown-key-expired"],
)
async def test_appends_without_a_valid_token_are_refused_and_write_nothing(
    endpoint: str, keys: Keys, credentials: aio.DialCredentials, message: str
) -> None:
    async with client_of(endpoint, credentials) as client:
        with pytest.raises(aio.Unauthenticated, match=message):
            await append(client, "allowed/one", b"intruder\n")
    assert await content(endpoint, keys, "allowed/one") == b""


async def test_an_expired_token_is_refused(endpoint: str, keys: Keys) -> None:
    expired = aio.DialCredentials(
        metadata=channel_hook(KeyedAuthorizer(keys, clock=lambda: time.time() - 7200))
    )
    async with client_of(endpoint, expired) as client:
        with pytest.raises(aio.Unauthenticated, match="token has invalid claims: token is expired"):
            await append(client, "allowed/one", b"late\n")
        with pytest.raises(aio.Unauthenticated, match="token is expired"):
            await list_journals(client, pb.LabelSelector())
    assert await content(endpoint, keys, "allowed/one") == b""


async def test_a_token_issued_in_the_future_is_refused(endpoint: str, keys: Keys) -> None:
    early = tokens.sign_with(
        keys.keys[0],
        Claims(caps.ALL, issued_at=int(time.time()) + 60, expires_at=int(time.time()) + 600),
    )
    async with client_of(endpoint, bearer(early)) as client:
        with pytest.raises(aio.Unauthenticated, match="token used before issued"):
            await append(client, "allowed/one", b"early\n")


async def test_a_missing_capability_is_named(endpoint: str, keys: Keys) -> None:
    async with client_of(endpoint, bearer(token(keys, caps.READ | caps.LIST))) as client:
        with pytest.raises(
            aio.Unauthenticated, match="authorization is missing required APPEND capability"
        ):
            await append(client, "allowed/one", b"no\n")
        with pytest.raises(aio.Unauthenticated, match="missing required APPLY capability"):
            await apply_journals(client, [upsert(new_journal_spec("allowed/new"))])
        # What it holds still works.
        assert [j.spec.name for j in await list_journals(client, pb.LabelSelector())]
    assert await content(endpoint, keys, "allowed/one") == b""


async def test_journals_outside_the_selector_do_not_exist_for_the_token(
    endpoint: str, keys: Keys
) -> None:
    scoped = bearer(token(keys, caps.ALL, "name:prefix=allowed/"))
    async with client_of(endpoint, scoped) as client:
        listed = [j.spec.name for j in await list_journals(client, pb.LabelSelector())]
        assert listed == ["allowed/one"]
        response = await append(client, "secret/two", b"sneak\n")
        assert response.status == pb.Status.JOURNAL_NOT_FOUND
        fragments = await client.list_fragments(pb.FragmentsRequest(journal="secret/two"))
        assert fragments.status == pb.Status.JOURNAL_NOT_FOUND
        async with client.read(pb.ReadRequest(journal="secret/two", offset=0)) as responses:
            first = await responses.__anext__()
        assert first.status == pb.Status.JOURNAL_NOT_FOUND
        with pytest.raises(aio.Unauthenticated, match="not authorized to secret/three"):
            await apply_journals(client, [upsert(new_journal_spec("secret/three"))])
        assert (await append(client, "allowed/one", b"fine\n")).status == pb.Status.OK
    assert await content(endpoint, keys, "secret/two") == b""
    assert await content(endpoint, keys, "allowed/one") == b"fine\n"


async def test_a_label_selector_scopes_by_the_journals_labels(endpoint: str, keys: Keys) -> None:
    async with client_of(endpoint, bearer(token(keys, caps.LIST, "team=b"))) as client:
        listed = [j.spec.name for j in await list_journals(client, pb.LabelSelector())]
    assert listed == ["secret/two"]


async def test_the_allow_missing_key_lets_tokenless_calls_through(
    island: None, core: JournalServerCore, keys: Keys
) -> None:
    rollout = Keys.parse(f"{tokens.ALLOW_MISSING_KEY} {OTHER_KEY_TEXT}")
    async with served_core(core, Verifier(rollout)) as endpoint:
        async with client_of(endpoint, aio.DialCredentials()) as client:
            await apply_journals(client, [upsert(new_journal_spec("open/one"))])
            assert (await append(client, "open/one", b"x\n")).status == pb.Status.OK
        # A token it cannot verify is still refused: only a missing one passes.
        async with client_of(endpoint, signed(keys)) as client:
            with pytest.raises(aio.Unauthenticated, match="signature is invalid"):
                await append(client, "open/one", b"y\n")


def first_token_expiring_in_2s(keys: Keys) -> tuple[aio.DialCredentials, list[float]]:
    """Credentials whose first token is minted as if an hour ago, so it
    expires in 2 s; later ones are current. The list records each minting."""
    minted: list[float] = []

    def clock() -> float:
        now = time.time()
        minted.append(now)
        return now - 3598 if len(minted) == 1 else now

    return aio.DialCredentials(metadata=channel_hook(KeyedAuthorizer(keys, clock=clock))), minted


async def test_a_read_outliving_its_token_resumes_with_a_fresh_one(
    endpoint: str, keys: Keys
) -> None:
    reader_credentials, minted = first_token_expiring_in_2s(keys)
    async with (
        client_of(endpoint, signed(keys)) as writer,
        client_of(endpoint, reader_credentials) as reading,
    ):
        await append(writer, "allowed/one", b"before\n")
        async with open_reader(reading, "allowed/one", block=True) as reader:
            chunks = aiter(reader)
            assert (await anext(chunks)).content == b"before\n"
            await trio.sleep(3)  # the first token has expired: the server ended that read
            await append(writer, "allowed/one", b"after\n")
            with trio.fail_after(10):
                assert (await anext(chunks)).content == b"after\n"
    assert len(minted) >= 2


async def test_a_watch_outliving_its_token_resumes_with_a_fresh_one(
    endpoint: str, keys: Keys
) -> None:
    from gazette_trio.broker.watch import open_watched_list

    watcher, minted = first_token_expiring_in_2s(keys)
    async with (
        client_of(endpoint, signed(keys)) as admin,
        client_of(endpoint, watcher) as watching,
        open_watched_list(watching, "name:prefix=allowed/") as watched,
    ):
        await watched.wait_ready()
        assert [j.spec.name for j in watched.journals] == ["allowed/one"]
        await trio.sleep(3)  # the first token has expired: the server ended that watch
        await apply_journals(admin, [upsert(new_journal_spec("allowed/two"))])
        with trio.fail_after(10):
            while [j.spec.name for j in watched.journals] != ["allowed/one", "allowed/two"]:
                await watched.wait_changed(watched.updates)
    assert len(minted) >= 2
