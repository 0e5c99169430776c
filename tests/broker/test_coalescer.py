"""How the gRPC client cuts append content into stream messages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gazette_trio.broker.grpc_client import MAX_CHUNK, MIN_MESSAGE, _Coalescer

sizes = st.lists(
    st.one_of(
        st.integers(0, 3000),
        st.sampled_from([MIN_MESSAGE - 1, MIN_MESSAGE, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1]),
        st.integers(MAX_CHUNK, 3 * MAX_CHUNK),
    ),
    max_size=40,
)


@given(sizes)
def test_messages_carry_the_content_in_order_within_the_size_bounds(chunk_sizes: list[int]) -> None:
    """Concatenated messages are exactly the chunks; none is empty or larger
    than MAX_CHUNK."""
    chunks = [bytes([i % 251]) * n for i, n in enumerate(chunk_sizes)]
    coalescer = _Coalescer()
    messages: list[bytes] = []
    for chunk in chunks:
        messages.extend(coalescer.add(chunk))
    messages.extend(coalescer.flush())
    assert b"".join(messages) == b"".join(chunks)
    assert all(0 < len(m) <= MAX_CHUNK for m in messages)
    assert coalescer.flush() == ()


def test_small_chunks_are_joined_into_messages_of_at_least_min_message() -> None:
    coalescer = _Coalescer()
    messages: list[bytes] = []
    for _ in range(1000):
        messages.extend(coalescer.add(b"x" * 1024))
    messages.extend(coalescer.flush())
    assert [len(m) for m in messages] == [MIN_MESSAGE] * (1000 * 1024 // MIN_MESSAGE) + [
        1000 * 1024 % MIN_MESSAGE
    ]


def test_a_reused_bytearray_is_copied_when_taken() -> None:
    coalescer = _Coalescer()
    buffer = bytearray(b"abc")
    assert coalescer.add(buffer) == ()
    buffer[:] = b"xyz"
    assert coalescer.flush() == (b"abc",)
