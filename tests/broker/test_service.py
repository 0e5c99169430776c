"""The gRPC service's handling of Gazette's Append stream protocol and of
requests a well-behaved client never sends: each is refused with
INVALID_ARGUMENT (or UNIMPLEMENTED) naming the problem, nothing is appended,
and the server goes on serving."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio_asyncio
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from gazette_trio import aio
from gazette_trio.broker.appender import append
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.reader import read_journal
from gazette_trio.broker.server import JournalServerCore, journal_service
from gazette_trio.protocol import protocol as pb
from gazette_trio.protocol.codec import CODEC

from .conftest import served

APPEND = "/protocol.Journal/Append"


@pytest.fixture
async def client(island: None, core: JournalServerCore) -> AsyncIterator[GrpcJournalClient]:
    async with served(core) as client:
        await apply_journals(client, [upsert(new_journal_spec("a/journal"))])
        yield client


async def raw_append(client: GrpcJournalClient, *requests: pb.AppendRequest) -> pb.AppendResponse:
    async with aio.client_stream(
        client.channel, APPEND, pb.AppendRequest, pb.AppendResponse
    ) as call:
        for request in requests:
            await call.send(request)
        response: pb.AppendResponse = await call.finish()
        return response


async def test_an_append_stream_without_its_commit_chunk_appends_nothing(
    client: GrpcJournalClient,
) -> None:
    with pytest.raises(aio.InvalidArgument, match="ended without the final empty Content chunk"):
        await raw_append(
            client, pb.AppendRequest(journal="a/journal"), pb.AppendRequest(content=b"x")
        )
    assert await read_journal(client, "a/journal") == b""


async def test_malformed_append_streams_are_invalid_argument(client: GrpcJournalClient) -> None:
    header = pb.AppendRequest(journal="a/journal")
    with pytest.raises(aio.InvalidArgument, match="expected Content chunk"):
        await raw_append(
            client, header, pb.AppendRequest(journal="a/journal", content=b"x"), pb.AppendRequest()
        )
    with pytest.raises(aio.InvalidArgument, match="unexpected Offset"):
        await raw_append(
            client, header, pb.AppendRequest(content=b"x", offset=3), pb.AppendRequest()
        )
    with pytest.raises(aio.InvalidArgument, match="expected EOF after empty Content chunk"):
        await raw_append(client, header, pb.AppendRequest(), pb.AppendRequest(content=b"late"))
    with pytest.raises(aio.InvalidArgument, match="unexpected Content"):
        await raw_append(
            client, pb.AppendRequest(journal="a/journal", content=b"x"), pb.AppendRequest()
        )
    with pytest.raises(aio.InvalidArgument, match=r"invalid Offset \(-1; expected >= 0\)"):
        await raw_append(
            client, pb.AppendRequest(journal="a/journal", offset=-1), pb.AppendRequest()
        )
    with pytest.raises(aio.InvalidArgument, match="expected Journal in the first AppendRequest"):
        await raw_append(client, pb.AppendRequest(content=b"x"), pb.AppendRequest())
    # Suspension controls belong to the first message, and must be known ones.
    with pytest.raises(
        aio.InvalidArgument, match=r"unexpected Suspend \(SUSPEND_NOW; expected SUSPEND_RESUMED\)"
    ):
        await raw_append(
            client,
            header,
            pb.AppendRequest(content=b"x", suspend=pb.AppendRequestSuspend.NOW),
            pb.AppendRequest(),
        )
    odd = pb.AppendRequest.parse(bytes(pb.AppendRequest(journal="a/journal")) + bytes([0x48, 9]))
    with pytest.raises(aio.InvalidArgument, match=r"Suspend: invalid Suspend variant \(9\)"):
        await raw_append(client, odd, pb.AppendRequest())
    # A header, when sent, is held to Gazette's rules (a proxying broker's).
    bad_header = pb.Header(etcd=pb.HeaderEtcd(cluster_id=0, member_id=1, revision=1, raft_term=1))
    with pytest.raises(aio.InvalidArgument, match="Header"):
        await raw_append(
            client, pb.AppendRequest(journal="a/journal", header=bad_header), pb.AppendRequest()
        )
    assert await read_journal(client, "a/journal") == b""
    await append(client, "a/journal", b"still serving")
    assert await read_journal(client, "a/journal") == b"still serving"


async def test_replicate_is_unimplemented_on_a_single_node(
    core: JournalServerCore, island: None
) -> None:
    # Through grpclib directly: what a Gazette broker peer would see.
    async def replicate(port: int) -> GRPCError:
        channel = Channel("127.0.0.1", port, codec=CODEC)
        try:
            async with channel.request(
                "/protocol.Journal/Replicate",
                Cardinality.STREAM_STREAM,
                pb.ReplicateRequest,
                pb.ReplicateResponse,
            ) as stream:
                await stream.send_message(
                    pb.ReplicateRequest(proposal=pb.Fragment(journal="a/journal"))
                )
                await stream.recv_message()
        except GRPCError as exc:
            return exc
        finally:
            channel.close()
        raise AssertionError("Replicate answered")

    async with trio.open_nursery() as nursery:
        port = await nursery.start(aio.serve, [journal_service(core)], "127.0.0.1", 0)
        error = await trio_asyncio.aio_as_trio(replicate)(port)
        nursery.cancel_scope.cancel()
    assert error.status is Status.UNIMPLEMENTED
    assert "single node" in (error.message or "")


async def test_invalid_apply_changes_name_the_change(client: GrpcJournalClient) -> None:
    with pytest.raises(
        aio.InvalidArgument, match=r"Changes\[1\]: neither Upsert nor Delete are set"
    ):
        await client.apply(
            pb.ApplyRequest(changes=[upsert(new_journal_spec("a/other")), pb.ApplyRequestChange()])
        )
    with pytest.raises(
        aio.InvalidArgument,
        match=r"Changes\[0\]: invalid ExpectModRevision \(0; expected > 0 or -1\)",
    ):
        await client.apply(pb.ApplyRequest(changes=[pb.ApplyRequestChange(delete="a/journal")]))
    with pytest.raises(
        aio.InvalidArgument, match=r"Changes\[1\]: journal a/xx appears in more than one change"
    ):
        await client.apply(
            pb.ApplyRequest(
                changes=[upsert(new_journal_spec("a/xx")), upsert(new_journal_spec("a/xx"))]
            )
        )
    with pytest.raises(aio.InvalidArgument, match=r"invalid PageLimit \(20000"):
        await client.list_fragments(pb.FragmentsRequest(journal="a/journal", page_limit=20000))
