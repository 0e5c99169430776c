"""Client side: the token each outgoing RPC carries.

Gazette's authorizing clients (`AuthJournalClient`, `AuthShardClient`) give
every RPC the narrowest claims that serve it, with a lifetime fitting how
long the call may run. `rpc_claims` is that table, for the same paths:

| RPC | capability | selector | lifetime |
|---|---|---|---|
| Journal/List | LIST | the request's selector | 1 h (a watch blocks) |
| Journal/Apply | APPLY | empty | 1 min |
| Journal/Read, ListFragments | READ | `name=<journal>` | 1 h |
| Journal/Append | APPEND | `name=<journal>` | 1 h |
| Journal/Replicate | REPLICATE | `name=<journal>` | 1 h |
| Journal/FragmentStoreHealth | READ | empty | 1 h |
| Shard/Stat, GetHints | READ | `id=<shard>` | 1 min |
| Shard/List | LIST | the request's selector | 1 min |
| Shard/Apply | APPLY | empty | 1 min |
| Shard/Unassign | APPLY | `id=` each shard | 1 min |

(journal names lose their `;metadata` suffix first). An application's own
services ask for READ over an empty selector for one minute; etcd's RPCs
carry no Gazette token at all (etcd has its own authentication).

Two authorizers sign those claims: `KeyedAuthorizer` mints tokens from the
shared keys (reusing a token while more than half its life remains, since
minting costs microseconds on every call otherwise), and `BearerAuthorizer`
presents one pre-shared opaque token for every call, as Gazette's
`--auth-token` does. `channel_hook` adapts either to `aio.Channel`'s
per-call metadata hook.

A long read outlives its token: the server ends the stream at the token's
expiry, and the reader's next attempt (at the offset it reached) is a new
call with a fresh token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..protocol import consumer as pc
from ..protocol import labels as lbl
from ..protocol import protocol as pb
from . import capabilities as caps
from . import claims as claims_mod
from .claims import Claims
from .tokens import Keys

HOUR = 3600.0
MINUTE = 60.0


class Authorizer(Protocol):
    """Produces the `authorization` header value for claims."""

    def authorization(self, claims: Claims, ttl: float) -> str: ...


def strip_meta(journal: str) -> str:
    """A journal's name without its `;metadata` path segment."""
    index = journal.find(";")
    return journal if index == -1 else journal[:index]


def _selector(name: str, *values: str) -> pb.LabelSelector:
    return pb.LabelSelector(
        include=lbl.label_set([(name, v) for v in values]), exclude=pb.LabelSet()
    )


def _empty() -> pb.LabelSelector:
    return pb.LabelSelector(include=pb.LabelSet(), exclude=pb.LabelSet())


def _named(request: Any, attr: str) -> pb.LabelSelector:
    return _selector("name", strip_meta(getattr(request, attr, "") or ""))


JOURNAL = "/protocol.Journal/"
SHARD = "/consumer.Shard/"
ETCD = "/etcdserverpb."


def rpc_claims(path: str, request: Any) -> tuple[Claims, float] | None:
    """Claims and lifetime for calling `path` with `request` (for a client
    stream: its first message), or None for a call that carries no token."""
    if path.startswith(ETCD):
        return None
    if path.startswith(JOURNAL):
        method = path[len(JOURNAL) :]
        if method == "List":
            return Claims(caps.LIST, _copy(getattr(request, "selector", None))), HOUR
        if method == "Apply":
            return Claims(caps.APPLY, _empty()), MINUTE
        if method in ("Read", "ListFragments"):
            return Claims(caps.READ, _named(request, "journal")), HOUR
        if method == "Append":
            return Claims(caps.APPEND, _named(request, "journal")), HOUR
        if method == "Replicate":
            proposal = getattr(request, "proposal", None)
            return Claims(caps.REPLICATE, _named(proposal, "journal")), HOUR
        if method == "FragmentStoreHealth":
            return Claims(caps.READ, _empty()), HOUR
    if path.startswith(SHARD):
        method = path[len(SHARD) :]
        if method in ("Stat", "GetHints"):
            return Claims(caps.READ, _selector("id", getattr(request, "shard", ""))), MINUTE
        if method == "List":
            return Claims(caps.LIST, _copy(getattr(request, "selector", None))), MINUTE
        if method == "Apply":
            return Claims(caps.APPLY, _empty()), MINUTE
        if method == "Unassign":
            shards = list(getattr(request, "shards", ()) or ())
            selector = _selector("id", *shards) if shards else _empty()
            return Claims(caps.APPLY, selector), MINUTE
    return Claims(caps.READ, _empty()), MINUTE


def _copy(selector: pb.LabelSelector | None) -> pb.LabelSelector:
    if selector is None:
        return _empty()
    return pb.LabelSelector(
        include=selector.include or pb.LabelSet(), exclude=selector.exclude or pb.LabelSet()
    )


class KeyedAuthorizer:
    """Mints HS256 tokens with the first of the shared keys."""

    def __init__(self, keys: Keys, *, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self._clock = clock
        self._cache: dict[tuple[bytes, float], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def authorization(self, claims: Claims, ttl: float) -> str:
        now = self._clock()
        key = (claims_mod.to_json(claims), ttl)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[1] - now > ttl / 2:
                return cached[0]
        token = self.keys.sign(claims, ttl, now=now)
        header = f"Bearer {token}"
        with self._lock:
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[key] = (header, int(now) + ttl)
        return header


class BearerAuthorizer:
    """Presents one pre-shared token for every call."""

    def __init__(self, token: str) -> None:
        token = token.strip()
        if not token:
            raise ValueError("the bearer token is empty")
        self._header = f"Bearer {token}"

    def authorization(self, claims: Claims, ttl: float) -> str:
        return self._header


MetadataHook = Callable[[str, Any], Mapping[str, str] | None]


def channel_hook(authorizer: Authorizer) -> MetadataHook:
    """`aio.Channel`'s per-call hook: the `authorization` metadata of a call."""

    def hook(path: str, request: Any) -> Mapping[str, str] | None:
        wanted = rpc_claims(path, request)
        if wanted is None:
            return None
        claims, ttl = wanted
        return {"authorization": authorizer.authorization(claims, ttl)}

    return hook


__all__ = [
    "HOUR",
    "MINUTE",
    "Authorizer",
    "BearerAuthorizer",
    "KeyedAuthorizer",
    "channel_hook",
    "pc",
    "rpc_claims",
    "strip_meta",
]
