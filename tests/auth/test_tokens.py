"""Keys, tokens and per-call claims, as Gazette's `auth` package and its
authorizing clients define them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping

import pytest

from gazette_trio import aio
from gazette_trio.auth import capabilities as caps
from gazette_trio.auth import claims as claims_mod
from gazette_trio.auth import tokens
from gazette_trio.auth import verifier as verifier_mod
from gazette_trio.auth.authorizer import HOUR, MINUTE, KeyedAuthorizer, rpc_claims
from gazette_trio.auth.claims import Claims
from gazette_trio.auth.tokens import Keys, KeysError, TokenError
from gazette_trio.auth.verifier import Verifier
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import labels as lbl
from gazette_trio.protocol import protocol as pb


def test_the_first_key_signs_and_any_key_verifies() -> None:
    signer = Keys.parse("c2VjcmV0,b3RoZXI=")
    verifier = Keys.parse("b3RoZXI= c2VjcmV0")
    token = signer.sign(Claims(caps.APPEND | caps.LIST, lbl.parse_selector("hi=there")), 3600)
    claims = verifier.verify(token)
    assert claims.capability == caps.APPEND | caps.LIST
    assert lbl.format_selector(claims.selector) == "hi=there"
    assert claims.expires_at is not None and claims.issued_at is not None
    assert claims.expires_at - claims.issued_at == 3600
    with pytest.raises(TokenError, match="signature is invalid"):
        Keys.parse("b3RoZXI=").verify(token)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one key must be provided"),
        ("AA==", "at least one key must be provided"),
        ("c2VjcmV0 not-base64!", "failed to decode key at index 1"),
    ],
)
def test_unusable_key_lists_are_refused(text: str, message: str) -> None:
    with pytest.raises(KeysError, match=message):
        Keys.parse(text)


def test_the_zero_key_allows_calls_without_a_token_and_nothing_else() -> None:
    keys = Keys.parse("AA==,c2VjcmV0")
    assert keys.allow_missing and keys.keys == (b"secret",)
    verifier = Verifier(keys)
    claims = verifier.verify_metadata({}, caps.READ)
    assert claims.capability == caps.READ
    assert claims.expires_at is not None and claims.expires_at > time.time() + 3000
    with pytest.raises(aio.Unauthenticated, match="expected 'Bearer'"):
        verifier.verify_metadata({"authorization": "Basic x"}, caps.READ)
    assert Verifier(Keys.parse("c2VjcmV0")).enabled and not Verifier().enabled
    with pytest.raises(aio.Unauthenticated, match="missing or empty Authorization token"):
        Verifier(Keys.parse("c2VjcmV0")).verify_metadata({}, caps.READ)


def _forge(header: Mapping[str, object], payload: Mapping[str, object], key: bytes) -> str:
    import hashlib
    import hmac

    def enc(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = enc(json.dumps(header).encode()) + "." + enc(json.dumps(payload).encode())
    digest = hashlib.sha512 if header.get("alg") == "HS512" else hashlib.sha384
    return head + "." + enc(hmac.new(key, head.encode(), digest).digest())


def test_only_hs256_and_hs384_are_accepted() -> None:
    keys = Keys.parse("c2VjcmV0")
    now = int(time.time())
    payload = {"cap": caps.READ, "exp": now + 60, "iat": now}
    assert keys.verify(_forge({"alg": "HS384", "typ": "JWT"}, payload, b"secret")).capability == 8
    with pytest.raises(TokenError, match="signing method HS512 is invalid"):
        keys.verify(_forge({"alg": "HS512", "typ": "JWT"}, payload, b"secret"))
    with pytest.raises(TokenError, match="signing method none is invalid"):
        keys.verify(_forge({"alg": "none"}, payload, b"secret"))


def test_times_are_checked_with_five_seconds_of_leeway() -> None:
    keys = Keys.parse("c2VjcmV0")
    token = keys.sign(Claims(caps.READ), 10, now=1000)
    assert keys.verify(token, now=1014).capability == caps.READ
    with pytest.raises(TokenError, match="token is expired"):
        keys.verify(token, now=1016)
    with pytest.raises(TokenError, match="token used before issued"):
        keys.verify(token, now=994)
    no_exp = tokens.sign_with(b"secret", Claims(caps.READ, issued_at=1000))
    with pytest.raises(TokenError, match="exp claim is required"):
        keys.verify(no_exp, now=1000)
    with pytest.raises(TokenError, match="token contains an invalid number of segments"):
        keys.verify("abc.def")


def test_claims_json_is_gos() -> None:
    claims = Claims(
        caps.READ,
        pb.LabelSelector(include=lbl.label_set({"name": "a<b>&c"}), exclude=pb.LabelSet()),
        expires_at=20,
        issued_at=10,
    )
    assert claims_mod.to_json(claims) == (
        b'{"cap":8,"sel":{"include":{"labels":[{"name":"name","value":"a\\u003cb\\u003e\\u0026c"}]},'
        b'"exclude":{"labels":null}},"exp":20,"iat":10}'
    )
    assert claims_mod.from_json(claims_mod.to_json(claims)).selector == claims.selector


@pytest.mark.parametrize(
    ("path", "request_", "capability", "selector", "ttl"),
    [
        ("/protocol.Journal/List", pb.ListRequest(selector=lbl.parse_selector("ab=cd")), caps.LIST, "ab=cd", HOUR),
        ("/protocol.Journal/Apply", pb.ApplyRequest(), caps.APPLY, "", MINUTE),
        ("/protocol.Journal/Read", pb.ReadRequest(journal="a/b;meta"), caps.READ, "name=a/b", HOUR),
        ("/protocol.Journal/ListFragments", pb.FragmentsRequest(journal="a/b"), caps.READ, "name=a/b", HOUR),
        ("/protocol.Journal/Append", pb.AppendRequest(journal="a/b"), caps.APPEND, "name=a/b", HOUR),
        ("/protocol.Journal/FragmentStoreHealth", pb.FragmentStoreHealthRequest(), caps.READ, "", HOUR),
        ("/consumer.Shard/Stat", pc.StatRequest(shard="s-1"), caps.READ, "id=s-1", MINUTE),
        ("/consumer.Shard/GetHints", pc.GetHintsRequest(shard="s-1"), caps.READ, "id=s-1", MINUTE),
        ("/consumer.Shard/List", pc.ListRequest(selector=lbl.parse_selector("xy=zz")), caps.LIST, "xy=zz", MINUTE),
        ("/consumer.Shard/Apply", pc.ApplyRequest(), caps.APPLY, "", MINUTE),
        ("/consumer.Shard/Unassign", pc.UnassignRequest(shards=["s-2", "s-1"]), caps.APPLY, "id in (s-1,s-2)", MINUTE),
        ("/examples.WordCount/Query", None, caps.READ, "", MINUTE),
    ],
)  # fmt: skip
def test_each_rpc_asks_for_the_claims_gazettes_clients_ask_for(
    path: str, request_: object, capability: int, selector: str, ttl: float
) -> None:
    wanted = rpc_claims(path, request_)
    assert wanted is not None
    claims, lifetime = wanted
    assert (claims.capability, lbl.format_selector(claims.selector), lifetime) == (
        capability,
        selector,
        ttl,
    )


def test_etcd_calls_carry_no_gazette_token() -> None:
    assert rpc_claims("/etcdserverpb.KV/Range", None) is None


def test_a_token_is_reused_until_half_its_life_is_gone() -> None:
    now = [1000.0]
    authorizer = KeyedAuthorizer(Keys.parse("c2VjcmV0"), clock=lambda: now[0])
    first = authorizer.authorization(Claims(caps.READ), 60)
    now[0] += 29
    assert authorizer.authorization(Claims(caps.READ), 60) == first
    assert authorizer.authorization(Claims(caps.LIST), 60) != first
    now[0] += 2
    assert authorizer.authorization(Claims(caps.READ), 60) != first


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("READ,LIST", caps.READ | caps.LIST),
        ("append|65536", caps.APPEND | 65536),
        ("ALL", caps.ALL),
    ],
)
def test_capability_names_parse(text: str, mask: int) -> None:
    assert caps.parse(text) == mask


def test_missing_application_bits_show_both_masks() -> None:
    with pytest.raises(caps.MissingCapability, match=r"have 1000, but require 10000000000001000"):
        caps.check(caps.READ, caps.READ | (1 << 16))


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_verified_token_is_remembered_and_its_signature_not_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = Keys.parse("c2VjcmV0")
    verifier = Verifier(keys)
    checked: list[str] = []
    real = tokens.verify_signature

    def counting(keys_: object, token: str) -> tokens.Signed:
        checked.append(token)
        return real(keys_, token)  # type: ignore[arg-type]

    monkeypatch.setattr(verifier_mod, "verify_signature", counting)
    token = keys.sign(Claims(caps.READ, lbl.parse_selector("name=a/b")), 60, now=1000)
    for at in (1000, 1010, 1030):
        claims = verifier.verify_metadata(_bearer(token), caps.READ, now=at)
        assert claims.matches_name("a/b") and not claims.matches_name("a/c")
    assert checked == [token]
    # A token that differs in one character is another token, checked afresh.
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(aio.Unauthenticated, match="signature is invalid"):
        verifier.verify_metadata(_bearer(forged), caps.READ, now=1030)
    assert checked == [token, forged]


def test_a_remembered_token_still_expires() -> None:
    keys = Keys.parse("c2VjcmV0")
    verifier = Verifier(keys)
    token = keys.sign(Claims(caps.READ), 10, now=1000)
    verifier.verify_metadata(_bearer(token), caps.READ, now=1000)
    assert len(verifier._tokens) == 1
    verifier.verify_metadata(_bearer(token), caps.READ, now=1014)
    with pytest.raises(aio.Unauthenticated, match="token is expired"):
        verifier.verify_metadata(_bearer(token), caps.READ, now=1016)
    assert len(verifier._tokens) == 0
    with pytest.raises(aio.Unauthenticated, match="token is expired"):
        verifier.verify_metadata(_bearer(token), caps.READ, now=1016)


def test_a_remembered_token_grants_only_its_capability() -> None:
    keys = Keys.parse("c2VjcmV0")
    verifier = Verifier(keys)
    token = keys.sign(Claims(caps.READ), 60, now=1000)
    verifier.verify_metadata(_bearer(token), caps.READ, now=1000)
    with pytest.raises(aio.Unauthenticated, match="missing required APPEND capability"):
        verifier.verify_metadata(_bearer(token), caps.APPEND, now=1001)
    with pytest.raises(aio.Unauthenticated, match="missing required LIST capability"):
        verifier.verify_metadata(_bearer(token), caps.READ | caps.LIST, now=1001)
    assert verifier.verify_metadata(_bearer(token), caps.READ, now=1002).capability == caps.READ


def test_only_tokens_that_pass_are_remembered() -> None:
    keys = Keys.parse("c2VjcmV0")
    verifier = Verifier(keys)
    with pytest.raises(aio.Unauthenticated, match="signature is invalid"):
        verifier.verify_metadata(
            _bearer(Keys.parse("b3RoZXI=").sign(Claims(caps.READ), 60)), caps.READ
        )
    early = keys.sign(Claims(caps.READ), 60, now=1000)
    with pytest.raises(aio.Unauthenticated, match="token used before issued"):
        verifier.verify_metadata(_bearer(early), caps.READ, now=990)
    no_exp = tokens.sign_with(b"secret", Claims(caps.READ, issued_at=1000))
    with pytest.raises(aio.Unauthenticated, match="exp claim is required"):
        verifier.verify_metadata(_bearer(no_exp), caps.READ, now=1000)
    assert len(verifier._tokens) == 0
    # A token refused as early is accepted once its time has come.
    assert verifier.verify_metadata(_bearer(early), caps.READ, now=1000).capability == caps.READ


def test_a_token_not_valid_before_a_time_is_refused_until_then_even_if_remembered() -> None:
    keys = Keys.parse("c2VjcmV0")
    verifier = Verifier(keys)
    token = _forge(
        {"alg": "HS384", "typ": "JWT"}, {"cap": caps.READ, "exp": 2000, "nbf": 1500}, b"secret"
    )
    with pytest.raises(aio.Unauthenticated, match="token is not valid yet"):
        verifier.verify_metadata(_bearer(token), caps.READ, now=1000)
    verifier.verify_metadata(_bearer(token), caps.READ, now=1500)
    assert verifier._tokens.get(token) is not None
    with pytest.raises(aio.Unauthenticated, match="token is not valid yet"):
        verifier.verify_metadata(_bearer(token), caps.READ, now=1400)


def test_the_table_of_remembered_tokens_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verifier_mod, "VERIFIED_TOKENS", 3)
    keys = Keys.parse("c2VjcmV0")
    verifier = Verifier(keys)
    made = [
        keys.sign(Claims(caps.READ, lbl.parse_selector(f"name=a/{i}")), 60, now=1000)
        for i in range(5)
    ]
    for token in made:
        verifier.verify_metadata(_bearer(token), caps.READ, now=1000)
    assert len(verifier._tokens) == 3
    # The oldest went first; every token still verifies.
    assert [verifier._tokens.get(t) is not None for t in made] == [False, False, True, True, True]
    for token in made:
        assert verifier.verify_metadata(_bearer(token), caps.READ, now=1001).capability == caps.READ
    assert len(verifier._tokens) == 3
