"""Server side: verifying the token of an incoming call.

A `Verifier` is built from the shared keys (or is the open one, which
verifies nothing, when a member runs without keys). Each RPC names the
capability it requires, as Gazette's verified servers do: LIST for List,
APPLY for Apply and Unassign, READ for Read, ListFragments, Stat and
GetHints, APPEND for Append, REPLICATE for Replicate. `verify` reads the
call's `authorization` metadata and answers UNAUTHENTICATED with Gazette's
message when the token is missing, not `Bearer`, malformed, signed with a
key we do not hold, expired, or lacks the capability. Otherwise the token's
`Claims` come back, and the server scopes the request by their selector
(`Claims.matches_journal` / `matches_shard`): what a token's selector does
not reach is answered as if it did not exist.

With the `AA==` key a call without a token passes, granted exactly what it
requires over everything for an hour (Gazette's rollout mode).

A client presents the same token for many calls (for half its life), so a
verifier remembers the tokens whose signature it has checked, by their
exact text, in a bounded table: a call with one of them skips the HMAC and
the decoding, never the rest. Its times (`exp`, `iat`, `nbf`) and the
capability it holds are checked on every call, and the selector scopes
every request as before. An expired token's entry is dropped when it is
next presented, and the oldest entries make room for new ones.

`expiring` bounds a long call by its token: at expiry the call ends with
DEADLINE_EXCEEDED, and a client resumes with a fresh token. `guard` puts an
application's own gRPC service behind the same checks.

This module owns those checks; which selector applies to which resource is
each service's (broker `service`, `consumer.shard_api`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from .. import aio
from . import capabilities as caps
from .claims import Claims
from .tokens import Keys, Signed, TokenError, check_times, verify_signature

MISSING = "missing or empty Authorization token"
NOT_BEARER = "invalid or unsupported Authorization header (expected 'Bearer')"
ALLOW_MISSING_TTL = 3600


VERIFIED_TOKENS = 1024
"""How many signature-checked tokens a verifier remembers: a member's
clients hold a few tokens each (one per method and journal or shard), so
this covers many clients; past it the oldest entry goes first."""


class _VerifiedTokens:
    """Tokens whose signature checked out, by their exact text, at most
    `capacity` of them. Only a token that passed every check when it came
    is kept, so nothing a client without a key sends takes an entry."""

    def __init__(self, capacity: int | None = None) -> None:
        self._capacity = VERIFIED_TOKENS if capacity is None else capacity
        self._signed: dict[str, Signed] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._signed)

    def get(self, token: str) -> Signed | None:
        return self._signed.get(token)

    def add(self, token: str, signed: Signed) -> None:
        with self._lock:
            if token not in self._signed and len(self._signed) >= self._capacity:
                del self._signed[next(iter(self._signed))]
            self._signed[token] = signed

    def discard(self, token: str) -> None:
        with self._lock:
            self._signed.pop(token, None)


@dataclass(frozen=True)
class Verifier:
    """Verifies calls against `keys`; with no keys, every call is allowed.
    Build one per process and share it: its table of checked tokens is its
    own (module docstring)."""

    keys: Keys | None = None
    _tokens: _VerifiedTokens = field(
        default_factory=_VerifiedTokens, init=False, repr=False, compare=False
    )

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def verify_metadata(
        self, metadata: Mapping[str, str] | None, require: int, *, now: float | None = None
    ) -> Claims:
        """The claims of a call with `metadata` that requires `require`.
        Raises `aio.Unauthenticated` with Gazette's wording otherwise."""
        if self.keys is None:
            return Claims(capability=require)
        at = time.time() if now is None else now
        header = (metadata or {}).get("authorization", "")
        if not header:
            if self.keys.allow_missing:
                return Claims(capability=require, expires_at=int(at) + ALLOW_MISSING_TTL)
            raise aio.Unauthenticated(MISSING)
        if not header.startswith("Bearer "):
            raise aio.Unauthenticated(NOT_BEARER)
        token = header[len("Bearer ") :]
        try:
            signed = self._tokens.get(token)
            if signed is None:
                signed = verify_signature(self.keys.keys, token)
                check_times(signed, at)
                self._tokens.add(token, signed)
            else:
                try:
                    check_times(signed, at)
                except TokenError:
                    self._tokens.discard(token)
                    raise
            caps.check(signed.claims.capability, require)
        except (TokenError, caps.MissingCapability) as exc:
            raise aio.Unauthenticated(str(exc)) from None
        return signed.claims

    def verify(self, require: int) -> Claims:
        """The claims of the call this handler is serving (`aio.incoming_call`)."""
        call = aio.incoming_call()
        return self.verify_metadata(call.metadata if call else None, require)


OPEN = Verifier()
"""The verifier of a member without keys: every call is allowed."""


@contextlib.contextmanager
def expiring(claims: Claims) -> Iterator[None]:
    """Run the block no longer than `claims` are valid; past that, the call
    ends with DEADLINE_EXCEEDED ("authorization expired")."""
    if claims.expires_at is None:
        yield
        return
    remaining = claims.expires_at - time.time()
    with trio.move_on_after(max(0.0, remaining)) as scope:
        yield
    if scope.cancelled_caught:
        raise aio.DeadlineExceeded("authorization expired; retry with a fresh token")


_CLAIMS: contextvars.ContextVar[Claims | None] = contextvars.ContextVar(
    "gazette_trio_claims", default=None
)


def current_claims() -> Claims | None:
    """The verified claims of the call an application handler is serving
    (set by `guard`), to scope what it answers, e.g. by shard id."""
    return _CLAIMS.get()


def guard(service: aio.Service, verifier: Verifier, require: int = caps.READ) -> aio.Service:
    """`service` (an application's own) with every call verified first:
    `require` is the capability each of its methods needs (READ unless the
    application says otherwise). The claims are `current_claims()` inside."""
    if not verifier.enabled:
        return service

    def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def guarded(*args: Any) -> Any:
            claims = verifier.verify(require)
            _CLAIMS.set(claims)
            with expiring(claims):
                return await fn(*args)

        return guarded

    service.methods = [dataclasses.replace(m, fn=wrap(m.fn)) for m in service.methods]
    return service
