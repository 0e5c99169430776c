"""Capability bits: what a token lets its bearer do.

The values are Gazette's (`pb.Capability_*` of broker/protocol/auth.go), so a
token's `cap` claim means the same to gazette-trio and to Gazette's brokers
and consumers. Applications may define their own bits from `1 << 16`; the
bits below that are Gazette's.

This module owns the numbers, their names, and the check that a token holds
what an RPC requires (with Gazette's wording of a refusal). It does not know
about tokens or RPCs.
"""

from __future__ import annotations

from ..errors import AuthError

LIST = 1 << 1
APPLY = 1 << 2
READ = 1 << 3
APPEND = 1 << 4
REPLICATE = 1 << 5
ALL = 0xFFFFFFFF
"""Every capability, including every application bit (Gazette's math.MaxUint32)."""

APPLICATION_BASE = 1 << 16
"""The first bit applications may assign to capabilities of their own."""

NAMES: dict[str, int] = {
    "LIST": LIST,
    "APPLY": APPLY,
    "READ": READ,
    "APPEND": APPEND,
    "REPLICATE": REPLICATE,
    "ALL": ALL,
}


class MissingCapability(AuthError):
    """A token lacks a capability its request requires."""


def check(have: int, require: int) -> None:
    """Raise `MissingCapability` unless `have` holds every bit of `require`.

    The message names the first missing Gazette capability, or shows both
    masks in binary when only application bits are missing, as Gazette's
    verifier words it (clients match on these messages).
    """
    if have & require == require:
        return
    for name in ("LIST", "APPLY", "READ", "APPEND", "REPLICATE"):
        bit = NAMES[name]
        if require & bit and not have & bit:
            raise MissingCapability(f"authorization is missing required {name} capability")
    raise MissingCapability(
        f"authorization is missing required capability (have {have:b}, but require {require:b})"
    )


def parse(text: str) -> int:
    """A mask from names and numbers separated by commas or `|`, such as
    `READ,LIST` or `APPEND|65536`. Unknown names are an error naming them."""
    mask = 0
    for part in text.replace("|", ",").split(","):
        word = part.strip()
        if not word:
            continue
        upper = word.upper()
        if upper in NAMES:
            mask |= NAMES[upper]
            continue
        try:
            value = int(word, 0)
        except ValueError:
            known = ", ".join(NAMES)
            raise ValueError(
                f"unknown capability {word!r}: expected one of {known}, or a number"
            ) from None
        if not 0 < value <= ALL:
            raise ValueError(f"capability {word!r} is out of range (1 to {ALL})")
        mask |= value
    if not mask:
        raise ValueError("expected at least one capability, such as READ or LIST")
    return mask


def describe(mask: int) -> str:
    """Names of the Gazette bits in `mask`, then any other bits as numbers."""
    if mask == ALL:
        return "ALL"
    parts = [n for n in ("LIST", "APPLY", "READ", "APPEND", "REPLICATE") if mask & NAMES[n]]
    rest = mask & ~(LIST | APPLY | READ | APPEND | REPLICATE)
    bit = 1
    while rest:
        if rest & bit:
            parts.append(str(bit))
            rest &= ~bit
        bit <<= 1
    return ",".join(parts) or "0"
