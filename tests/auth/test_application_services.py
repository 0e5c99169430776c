"""An application's own gRPC services behind the member's verification:
`serve` wraps each with `guard`, so a call needs a token with READ (or the
capability the application names), and the handler sees the verified
claims to scope its answer."""

from __future__ import annotations

import pytest
import trio
from grpclib.const import Cardinality

from gazette_trio import aio
from gazette_trio.auth import capabilities as caps
from gazette_trio.auth.claims import Claims
from gazette_trio.auth.tokens import Keys
from gazette_trio.auth.verifier import OPEN, Verifier, current_claims, guard
from gazette_trio.protocol import labels as lbl
from gazette_trio.protocol import protocol as pb

from .conftest import bearer, signed

PATH = "/example.Echo/Labels"


def echo_service() -> aio.Service:
    async def labels(request: pb.LabelSet) -> pb.LabelSet:
        claims = current_claims()
        scope = lbl.format_selector(claims.selector) if claims is not None else "unverified"
        return pb.LabelSet(labels=[*request.labels, pb.Label(name="scope", value=scope)])

    return aio.Service(
        [aio.Method(PATH, Cardinality.UNARY_UNARY, pb.LabelSet, pb.LabelSet, labels)]
    )


async def call(port: int, credentials: aio.DialCredentials) -> pb.LabelSet:
    async with aio.Channel(f"127.0.0.1:{port}", credentials=credentials) as channel:
        reply: pb.LabelSet = await aio.unary(channel, PATH, pb.LabelSet(), pb.LabelSet, timeout=10)
        return reply


async def test_a_guarded_service_needs_a_token_and_sees_its_claims(
    island: None, keys: Keys
) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            aio.serve, [guard(echo_service(), Verifier(keys))], "127.0.0.1", 0
        )
        with pytest.raises(aio.Unauthenticated, match="missing or empty Authorization token"):
            await call(port, aio.DialCredentials())
        scoped = keys.sign(Claims(caps.READ, lbl.parse_selector("id=count-000")), 60)
        reply = await call(port, bearer(scoped))
        assert [(x.name, x.value) for x in reply.labels] == [("scope", "id=count-000")]
        lister = keys.sign(Claims(caps.LIST), 60)
        with pytest.raises(aio.Unauthenticated, match="missing required READ capability"):
            await call(port, bearer(lister))
        # What a member's own clients send (READ, empty selector) is enough.
        assert (await call(port, signed(keys))).labels[0].name == "scope"
        nursery.cancel_scope.cancel()


async def test_a_member_without_keys_leaves_services_as_they_are(island: None) -> None:
    service = echo_service()
    assert guard(service, OPEN) is service
