"""An independent client: grpclib with the official protobuf runtime's classes.

Nothing of gazette-trio's client side is used here: messages are compiled
from `proto/` by protoc (`tests.official`), encoded by Google's runtime and
sent by grpclib's own `ProtoCodec`, exactly as a third-party Gazette client
would. The server must understand them and answer in kind, with headers that
Gazette's Go clients accept (non-zero etcd cluster, member, revision, term).
"""

from __future__ import annotations

import hashlib
from typing import Any

import trio
import trio_asyncio
from google.protobuf.duration_pb2 import Duration
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.encoding.proto import ProtoCodec

from gazette_trio import aio
from gazette_trio.broker.server import JournalServerCore, journal_service
from tests.official import official

JOURNAL = "/protocol.Journal/"


async def unary(channel: Channel, method: str, request: Any, reply_type: type) -> Any:
    async with channel.request(
        JOURNAL + method, Cardinality.UNARY_UNARY, type(request), reply_type
    ) as stream:
        await stream.send_message(request, end=True)
        return await stream.recv_message()


async def official_session(port: int) -> dict[str, Any]:
    """Runs on the asyncio island: apply, append (two chunks), read back."""
    pb = official().protocol
    channel = Channel("127.0.0.1", port, codec=ProtoCodec())
    out: dict[str, Any] = {}
    try:
        spec = pb.JournalSpec(
            name="official/journal",
            replication=1,
            labels=pb.LabelSet(labels=[pb.Label(name="content-type", value="text/plain")]),
            fragment=pb.JournalSpec.Fragment(
                length=1 << 20,
                compression_codec=pb.CompressionCodec.Value("NONE"),
                refresh_interval=Duration(seconds=60),
            ),
        )
        out["apply"] = await unary(
            channel,
            "Apply",
            pb.ApplyRequest(changes=[pb.ApplyRequest.Change(upsert=spec, expect_mod_revision=0)]),
            pb.ApplyResponse,
        )
        out["list"] = await unary(channel, "List", pb.ListRequest(), pb.ListResponse)

        async with channel.request(
            JOURNAL + "Append", Cardinality.STREAM_UNARY, pb.AppendRequest, pb.AppendResponse
        ) as stream:
            await stream.send_message(pb.AppendRequest(journal="official/journal"))
            await stream.send_message(pb.AppendRequest(content=b"written by "))
            await stream.send_message(pb.AppendRequest(content=b"protobuf"))
            await stream.send_message(pb.AppendRequest(), end=True)  # commit
            out["append"] = await stream.recv_message()

        async with channel.request(
            JOURNAL + "Read", Cardinality.UNARY_STREAM, pb.ReadRequest, pb.ReadResponse
        ) as stream:
            await stream.send_message(
                pb.ReadRequest(journal="official/journal", offset=0, block=False), end=True
            )
            out["read"] = [response async for response in stream]

        out["fragments"] = await unary(
            channel,
            "ListFragments",
            pb.FragmentsRequest(journal="official/journal"),
            pb.FragmentsResponse,
        )
        out["missing"] = await unary(
            channel,
            "Apply",
            pb.ApplyRequest(changes=[pb.ApplyRequest.Change(upsert=spec, expect_mod_revision=0)]),
            pb.ApplyResponse,
        )
    finally:
        channel.close()
    return out


def digest_of(sum: Any) -> bytes:
    return (
        sum.part1.to_bytes(8, "big") + sum.part2.to_bytes(8, "big") + sum.part3.to_bytes(4, "big")
    )


async def test_a_client_built_on_the_official_runtime_appends_and_reads(
    island: None, core: JournalServerCore
) -> None:
    pb = official().protocol
    async with trio.open_nursery() as nursery:
        port = await nursery.start(aio.serve, [journal_service(core)], "127.0.0.1", 0)
        out = await trio_asyncio.aio_as_trio(official_session)(port)
        nursery.cancel_scope.cancel()

    assert out["apply"].status == pb.Status.Value("OK")
    etcd = out["apply"].header.etcd
    assert etcd.cluster_id and etcd.member_id and etcd.revision > 0 and etcd.raft_term
    [journal] = out["list"].journals
    assert journal.spec.name == "official/journal" and journal.mod_revision == etcd.revision
    assert journal.spec.fragment.refresh_interval.seconds == 60

    append = out["append"]
    assert append.status == pb.Status.Value("OK")
    assert (append.commit.begin, append.commit.end) == (0, 19)
    assert digest_of(append.commit.sum) == hashlib.sha1(b"written by protobuf").digest()
    assert append.commit.compression_codec == pb.CompressionCodec.Value("NONE")

    meta, content, end = out["read"]
    assert meta.status == pb.Status.Value("OK") and meta.write_head == 19
    assert meta.HasField("header") and meta.HasField("fragment")
    assert (content.offset, content.content) == (0, b"written by protobuf")
    assert not content.HasField("header") and not content.HasField("fragment")
    assert end.status == pb.Status.Value("OFFSET_NOT_YET_AVAILABLE")

    [fragment] = out["fragments"].fragments
    assert (fragment.spec.begin, fragment.spec.end) == (0, 19)
    assert out["missing"].status == pb.Status.Value("ETCD_TRANSACTION_FAILED")
