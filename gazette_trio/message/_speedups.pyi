"""Types of the optional C extension (see _speedups.c)."""

from collections.abc import Sequence
from typing import Any

def run_starts(
    producers: Sequence[bytes], clocks: Sequence[int], flags: Sequence[int]
) -> list[int]: ...
def fields_of_strings(
    texts: Sequence[str],
) -> tuple[tuple[bytes, ...], tuple[int, ...], bytes | tuple[int, ...]] | None: ...
def fields_at(
    docs: Sequence[Any], path: tuple[str, ...]
) -> tuple[tuple[bytes, ...], tuple[int, ...], bytes | tuple[int, ...]] | None: ...
