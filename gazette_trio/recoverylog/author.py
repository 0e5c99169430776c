"""Authors: who wrote a recorded operation, and the register that fences them.

Every process that writes to a recovery log picks a random, non-zero 32-bit
Author and stamps it on each RecordedOp. Hints name the author of each run of
ops, so a player can tell the branch of history it must rebuild from ops a
deposed writer raced in.

Authors also fence writers through journal registers: a player taking over a
log appends its hand-off no-op with `union_registers = fence(author)`, and a
recorder appends every op with `check_registers = fence_selector(author)`.
Once a newer author has unioned its fence, the old recorder's appends fail
with REGISTER_MISMATCH. The register is the label `author` whose value is the
author in base 32 (`strconv.FormatUint(author, 32)`), as Gazette writes it.

This module owns author ids and their register encoding only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextvars import ContextVar

from ..protocol import protocol as pb

AUTHOR_LABEL = "author"
"""Name of the journal register label that fences recorders."""

_DIGITS = "0123456789abcdefghijklmnopqrstuv"


author_entropy: ContextVar[Callable[[int], int]] = ContextVar(
    "author_entropy", default=secrets.randbelow
)
"""Where `new_author` draws (`n -> an int in [0, n)`): the `secrets` module,
unless a deterministic simulation sets its seeded source in the context its
tasks inherit."""


def new_author() -> int:
    """A random Author in [1, 2**32 - 1]."""
    return author_entropy.get()(0xFFFFFFFF - 1) + 1


def _base32(value: int) -> str:
    if value == 0:
        return "0"
    out = []
    while value:
        value, digit = divmod(value, 32)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


def fence(author: int) -> pb.LabelSet:
    """The register value that marks `author` as the log's current writer."""
    if not 0 < author <= 0xFFFFFFFF:
        raise ValueError(f"author {author} is not a non-zero uint32")
    return pb.LabelSet(labels=[pb.Label(name=AUTHOR_LABEL, value=_base32(author))])


def fence_selector(author: int) -> pb.LabelSelector:
    """A register check that passes only while `author` holds the fence."""
    return pb.LabelSelector(include=fence(author))
