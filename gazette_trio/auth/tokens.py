"""Signed bearer tokens: Gazette's HS256/HS384 JWTs over `Claims`.

A deployment shares a list of base64 keys (Gazette's `--auth-keys`:
separated by whitespace or commas). The first key signs; any key verifies,
so keys rotate by prepending the new one everywhere, then dropping the old.
The key `AA==` (one zero byte) is not a key: it lets requests without a
token through with the capability they need, for rolling authorization out
across a running group, as Gazette's `NewKeyedAuth` allows.

Tokens are compact JWS: `base64url(header).base64url(payload).base64url(mac)`
with the header `{"alg":"HS256","typ":"JWT"}` and `claims.to_json` as the
payload. Verification follows golang-jwt v5 as Gazette configures it: HS256
or HS384 only, `exp` required, `iat` and `nbf` checked if present, five
seconds of leeway; the refusal messages are Gazette's, since operators and
tests compare them.

This module owns keys, signing and verification. Which claims to sign, and
when a request may go without a token, are `authorizer`'s and `verifier`'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import AuthError
from . import claims as claims_mod
from .claims import Claims

ALLOW_MISSING_KEY = "AA=="
LEEWAY = 5
"""Seconds of clock skew tolerated on `exp`, `iat` and `nbf`, as Gazette's."""

_HEADER_HS256 = b'{"alg":"HS256","typ":"JWT"}'
_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}


class KeysError(AuthError, ValueError):
    """The configured keys cannot be used."""


class TokenError(AuthError):
    """A presented token is refused. The message is Gazette's wording."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if "=" in text:
        raise binascii.Error("padding is not allowed")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Keys:
    """A parsed key list: `keys[0]` signs, all verify."""

    keys: tuple[bytes, ...]
    allow_missing: bool = False

    @classmethod
    def parse(cls, text: str) -> Keys:
        """Keys from Gazette's `--auth-keys` text. A key that is not base64
        is an error naming its index; at least one real key is required."""
        keys: list[bytes] = []
        allow_missing = False
        for i, word in enumerate(text.replace(",", " ").split()):
            if word == ALLOW_MISSING_KEY:
                allow_missing = True
                continue
            try:
                keys.append(base64.b64decode(word, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise KeysError(f"failed to decode key at index {i}: {exc}") from None
        if not keys:
            raise KeysError("at least one key must be provided")
        return cls(tuple(keys), allow_missing)

    def sign(self, claims: Claims, ttl: float, *, now: float | None = None) -> str:
        """A token for `claims`, issued now and expiring after `ttl` seconds."""
        at = int(time.time() if now is None else now)
        stamped = replace(claims, issued_at=at, expires_at=int(at + ttl))
        return sign_with(self.keys[0], stamped)

    def verify(self, token: str, *, now: float | None = None) -> Claims:
        """The claims of `token` if a key of ours signed it and it is current;
        otherwise `TokenError` with Gazette's message."""
        return verify_with(self.keys, token, now=now)


def sign_with(key: bytes, claims: Claims, algorithm: str = "HS256") -> str:
    """Sign `claims` as they are (their `iat`/`exp` included) with `key`."""
    header = (
        _HEADER_HS256
        if algorithm == "HS256"
        else claims_mod.go_json({"alg": algorithm, "typ": "JWT"})
    )
    signing_input = f"{_b64url(header)}.{_b64url(claims_mod.to_json(claims))}"
    digest = _DIGESTS[algorithm]
    mac = hmac.new(key, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{_b64url(mac)}"


def verify_with(keys: Sequence[bytes], token: str, *, now: float | None = None) -> Claims:
    """Verify `token` against any of `keys`, then its times."""
    signed = verify_signature(keys, token)
    check_times(signed, time.time() if now is None else now)
    return signed.claims


@dataclass(frozen=True)
class Signed:
    """A token whose signature one of our keys made: its claims, and its
    `nbf` (not before), which `Claims` does not carry. Its times are not
    checked yet (`check_times`)."""

    claims: Claims
    not_before: float | None = None


def verify_signature(keys: Sequence[bytes], token: str) -> Signed:
    """The claims of `token` if a key of ours signed it; otherwise
    `TokenError` with Gazette's message. Its times are `check_times`'."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError(
            "verifying Authorization: token is malformed: token contains an invalid number of segments"
        )
    try:
        header = json.loads(_unb64url(parts[0]))
    except (ValueError, binascii.Error) as exc:
        raise TokenError(
            f"verifying Authorization: token is malformed: could not base64 decode header: {exc}"
        ) from None
    if not isinstance(header, dict):
        raise TokenError("verifying Authorization: token is malformed: header is not a JSON object")
    alg = header.get("alg")
    if alg not in _DIGESTS:
        raise TokenError(
            f"verifying Authorization: token signature is invalid: signing method {alg} is invalid"
        )
    try:
        payload = _unb64url(parts[1])
        signature = _unb64url(parts[2])
    except (ValueError, binascii.Error) as exc:
        raise TokenError(f"verifying Authorization: token is malformed: {exc}") from None
    try:
        doc = claims_mod.payload_doc(payload)
        claims = claims_mod.from_doc(doc)
    except claims_mod.ClaimsError as exc:
        raise TokenError(f"verifying Authorization: token is malformed: {exc}") from None
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    digest = _DIGESTS[alg]
    if not any(
        hmac.compare_digest(hmac.new(key, signing_input, digest).digest(), signature)
        for key in keys
    ):
        raise TokenError(
            "verifying Authorization: token signature is invalid: signature is invalid"
        )
    nbf = doc.get("nbf")
    if isinstance(nbf, bool) or not isinstance(nbf, (int, float)):
        nbf = None
    return Signed(claims, nbf)


def check_times(signed: Signed, at: float) -> None:
    """Refuse `signed` at time `at` unless it has an `exp` and is between its
    `iat`/`nbf` and its `exp`, give or take `LEEWAY` (golang-jwt's checks and
    wording)."""
    claims = signed.claims
    if claims.expires_at is None:
        raise TokenError(
            "verifying Authorization: token has invalid claims: token is missing required claim: exp claim is required"
        )
    if at > claims.expires_at + LEEWAY:
        raise TokenError("verifying Authorization: token has invalid claims: token is expired")
    if claims.issued_at is not None and at + LEEWAY < claims.issued_at:
        raise TokenError(
            "verifying Authorization: token has invalid claims: token used before issued"
        )
    if signed.not_before is not None and at + LEEWAY < signed.not_before:
        raise TokenError(
            "verifying Authorization: token has invalid claims: token is not valid yet"
        )
