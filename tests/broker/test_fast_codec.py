"""The fast content codecs are byte-for-byte the generated (and official) encoding."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gazette_trio.broker import fast_codec as F
from gazette_trio.protocol import codec
from gazette_trio.protocol import protocol as pb
from tests.official import official

offsets = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
contents = st.binary(max_size=2048)


@given(offsets, contents)
def test_content_read_responses_encode_as_betterproto2_and_the_official_runtime(
    offset: int, content: bytes
) -> None:
    message = pb.ReadResponse(offset=offset, content=content)
    data = F.encode_read_response(message)
    assert data == bytes(message)
    assert (
        data == official().protocol.ReadResponse(offset=offset, content=content).SerializeToString()
    )
    assert F.decode_read_response(data) == message


@given(contents)
def test_content_append_requests_encode_as_betterproto2_and_the_official_runtime(
    content: bytes,
) -> None:
    message = pb.AppendRequest(content=content)
    data = F.encode_append_request(message)
    assert data == bytes(message)
    assert data == official().protocol.AppendRequest(content=content).SerializeToString()
    assert F.decode_append_request(data) == message


@given(offsets, st.integers(min_value=0, max_value=1 << 40), st.sampled_from(list(pb.Status)))
def test_metadata_read_responses_fall_back_to_the_generated_codec(
    offset: int, head: int, status: pb.Status
) -> None:
    message = pb.ReadResponse(
        status=status,
        header=pb.Header(process_id=pb.ProcessSpecId(zone="z", suffix="s")),
        offset=offset,
        write_head=head,
        fragment=pb.Fragment(journal="a/journal", begin=1, end=2),
    )
    data = F.encode_read_response(message)
    assert data == bytes(message)
    assert F.decode_read_response(data) == message


def test_header_append_requests_fall_back_to_the_generated_codec() -> None:
    message = pb.AppendRequest(
        journal="a/journal",
        offset=7,
        check_registers=pb.LabelSelector(
            include=pb.LabelSet(labels=[pb.Label(name="aa", value="b")])
        ),
    )
    data = F.encode_append_request(message)
    assert data == bytes(message)
    assert F.decode_append_request(data) == message


@given(
    contents,
    st.sampled_from(list(pb.AppendRequestSuspend)),
    st.integers(min_value=0, max_value=1 << 40),
)
def test_every_field_of_an_append_request_survives_the_fast_path(
    content: bytes, suspend: pb.AppendRequestSuspend, revision: int
) -> None:
    # Fields added to the protocol since the fast path was written (suspend,
    # min_etcd_revision) must never be dropped for looking like a chunk.
    message = pb.AppendRequest(content=content, suspend=suspend, min_etcd_revision=revision)
    data = F.encode_append_request(message)
    assert data == bytes(message)
    assert F.decode_append_request(data) == message


def test_decoding_messages_from_other_encoders_accepts_any_field_order() -> None:
    # Fields in reverse order, and a repeated field (the last one wins), are
    # legal protobuf that the fast path hands to the generated parser.
    reordered = bytes(pb.ReadResponse(content=b"xy")) + bytes(pb.ReadResponse(offset=5))
    assert F.decode_read_response(reordered) == pb.ReadResponse(offset=5, content=b"xy")
    repeated = bytes(pb.AppendRequest(content=b"a")) + bytes(pb.AppendRequest(content=b"bc"))
    assert F.decode_append_request(repeated) == pb.AppendRequest(content=b"bc")


def test_the_codecs_are_registered_with_the_grpc_codec() -> None:
    message = pb.ReadResponse(offset=3, content=b"abc")
    assert codec.CODEC.encode(message, pb.ReadResponse) == bytes(message)
    assert codec.CODEC.decode(bytes(message), pb.ReadResponse) == message
    request = pb.AppendRequest(content=b"abc")
    assert (
        codec.CODEC.decode(codec.CODEC.encode(request, pb.AppendRequest), pb.AppendRequest)
        == request
    )
