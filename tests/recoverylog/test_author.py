"""Authors and the journal register that fences them, as Gazette encodes it."""

from __future__ import annotations

import pytest

from gazette_trio.protocol import protocol as pb
from gazette_trio.recoverylog.author import fence, fence_selector, new_author


def test_the_fence_register_is_the_author_in_base_32() -> None:
    """`strconv.FormatUint(author, 32)`: digits 0-9 then a-v."""
    assert fence(1234) == pb.LabelSet(labels=[pb.Label(name="author", value="16i")])
    assert fence(0xFFFFFFFF).labels[0].value == "3vvvvvv"
    assert fence(31).labels[0].value == "v"
    assert fence_selector(1234) == pb.LabelSelector(include=fence(1234))


def test_random_authors_are_nonzero_uint32s_and_differ() -> None:
    authors = {new_author() for _ in range(100)}
    assert len(authors) > 95
    assert all(0 < a <= 0xFFFFFFFF for a in authors)


@pytest.mark.parametrize("author", [0, -1, 1 << 32])
def test_an_invalid_author_has_no_fence(author: int) -> None:
    with pytest.raises(ValueError, match="not a non-zero uint32"):
        fence(author)
