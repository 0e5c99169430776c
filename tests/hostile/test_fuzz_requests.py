"""500 random request bodies per RPC: each gets a proper status, and the
member lives on with what it acknowledged.

Against one `gazette-trio serve` member (embedded journal server, so both the
Journal and the Shard APIs are on its port). For every RPC the bodies are: an
empty message (every field unset, the classic `None` where a handler expects
a sub-message), random bytes, and mutations (flipped bytes, truncations,
repeated fields) of realistic requests. A body that does not decode is
INVALID_ARGUMENT with the decoder's reason; one that decodes gets whatever
status its content deserves. Never UNKNOWN or INTERNAL, never a Python
traceback in the answer or the log, never a server path.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

import pytest

from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import protocol as pb

from .hostile_support import (
    RawGrpc,
    Server,
    append,
    create_journals,
    frame,
    read_back,
    start_member,
)

BODIES = 500
UNKNOWN, INTERNAL = 2, 13


def _seeds() -> dict[str, tuple[bool, list[bytes]]]:
    """Per RPC path: whether its requests stream, and realistic requests."""
    spec = new_journal_spec("hostile/fuzz", content_type="text/plain")
    journal = "hostile/a"
    return {
        "/protocol.Journal/List": (
            False,
            [bytes(pb.ListRequest(selector=pb.LabelSelector(include=pb.LabelSet())))],
        ),
        "/protocol.Journal/Apply": (
            False,
            [
                bytes(pb.ApplyRequest(changes=[pb.ApplyRequestChange(upsert=spec)])),
                bytes(pb.ApplyRequest(changes=[pb.ApplyRequestChange(delete="hostile/none")])),
            ],
        ),
        "/protocol.Journal/Read": (
            False,
            [bytes(pb.ReadRequest(journal=journal, offset=0, block=False))],
        ),
        "/protocol.Journal/ListFragments": (False, [bytes(pb.FragmentsRequest(journal=journal))]),
        "/protocol.Journal/FragmentStoreHealth": (
            False,
            [bytes(pb.FragmentStoreHealthRequest(fragment_store="file:///tmp/x/"))],
        ),
        "/protocol.Journal/Append": (
            True,
            [bytes(pb.AppendRequest(journal=journal)), bytes(pb.AppendRequest(content=b"x\n"))],
        ),
        "/protocol.Journal/Replicate": (True, [bytes(pb.ReplicateRequest())]),
        "/consumer.Shard/Stat": (False, [bytes(pc.StatRequest(shard="shard-000"))]),
        "/consumer.Shard/List": (False, [bytes(pc.ListRequest())]),
        "/consumer.Shard/Apply": (
            False,
            [
                bytes(pc.ApplyRequest(changes=[pc.ApplyRequestChange(delete="no-such-shard")])),
                bytes(pc.ApplyRequest(changes=[pc.ApplyRequestChange()])),
            ],
        ),
        "/consumer.Shard/GetHints": (False, [bytes(pc.GetHintsRequest(shard="shard-000"))]),
        "/consumer.Shard/Unassign": (
            False,
            [bytes(pc.UnassignRequest(shards=["no-such-shard"], only_failed=True))],
        ),
    }


def _mutate(rng: random.Random, data: bytes) -> bytes:
    body = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(5)
        if kind == 0 and body:
            body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        elif kind == 1 and body:
            del body[rng.randrange(len(body)) :]
        elif kind == 2:
            body += body[: rng.randint(0, len(body))]
        elif kind == 3:
            at = rng.randint(0, len(body))
            body[at:at] = rng.randbytes(rng.randint(1, 12))
        else:
            body[rng.randrange(len(body) or 1) :] = bytes([rng.randrange(256)]) * rng.randint(1, 8)
    return bytes(body)


def _bodies(rng: random.Random, seeds: list[bytes]) -> Iterator[bytes]:
    yield b""
    for n in range(BODIES - 1):
        if n % 3 == 0:
            yield rng.randbytes(rng.randint(1, 200))
        else:
            yield _mutate(rng, rng.choice(seeds))


def _calls(path: str, streaming: bool, seeds: list[bytes], rng: random.Random) -> list[bytes]:
    """Whole request bodies (framed messages) for `path`."""
    calls = []
    for body in _bodies(rng, seeds):
        if streaming:
            # A random message among the stream's (header, content, commit).
            messages = [seeds[0], body, b""] if rng.random() < 0.5 else [body, b""]
            calls.append(b"".join(frame(m) for m in messages))
        else:
            calls.append(frame(body))
    return calls


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server, _ = start_member(tmp_path_factory.mktemp("fuzz"))
    try:
        create_journals(server)
        yield server
    finally:
        server.stop()


def _run_batch(
    member: Server, path: str, bodies: list[bytes], check: Callable[[int | None, str], None]
) -> None:
    """Send `bodies` as concurrent calls, 100 per connection (the stream
    cap); calls still streaming after a few seconds (a valid blocking read
    or a List watch) are reset and pass."""
    calls: list[tuple[RawGrpc, int]] = []
    connections: list[RawGrpc] = []
    try:
        for start in range(0, len(bodies), 100):
            raw = RawGrpc(member.port)
            connections.append(raw)
            for body in bodies[start : start + 100]:
                sid = raw.open(path)
                raw.send(sid, body, end=True)
                calls.append((raw, sid))
        deadline = time.monotonic() + 3
        while not all(raw.done(sid) for raw, sid in calls) and time.monotonic() < deadline:
            for raw in connections:
                raw.pump(timeout=0.05)
        for raw, sid in calls:
            assert not raw.closed, "the member closed the connection"
            if raw.done(sid):
                out = raw.outcomes[sid]
                check(out.status, out.message)
    finally:
        for raw in connections:
            raw.close()


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(_seeds()))
def test_random_bodies_get_a_proper_status(member: Server, path: str) -> None:
    acknowledged = append(member, "hostile/a", f"before {path}\n".encode())
    rng = random.Random(f"fuzz {path}")
    streaming, seeds = _seeds()[path]
    seen: dict[int | None, int] = {}

    def check(status: int | None, message: str) -> None:
        seen[status] = seen.get(status, 0) + 1
        assert status is not None, "a call ended without a gRPC status"
        assert status not in (UNKNOWN, INTERNAL), message
        assert "Traceback" not in message and str(member.data_dir) not in message, message

    _run_batch(member, path, _calls(path, streaming, seeds, rng), check)
    member.assert_alive()
    if path.endswith("/Replicate"):
        # A single node: refused before any request is read.
        assert seen == {12: BODIES}  # UNIMPLEMENTED
    else:
        # The undecodable bodies were told so.
        assert seen.get(3, 0) > 0, seen
    log = member.text()
    assert "Traceback" not in log, log[-5000:]
    content = read_back(member.endpoint, "hostile/a")
    assert f"before {path}\n".encode() in content
    assert acknowledged.commit is not None and len(content) >= acknowledged.commit.end


def test_an_undecodable_request_is_named_invalid_argument(member: Server) -> None:
    raw = RawGrpc(member.port)
    try:
        # Field 1 (changes, a message) sent as a varint.
        out = raw.call("/protocol.Journal/Apply", [frame(b"\x08\x05")])
    finally:
        raw.close()
    assert out.status == 3  # INVALID_ARGUMENT
    assert out.message == (
        "request is not a valid ApplyRequest message (ValueError: field changes (number 1) "
        "has wire type 0, which a message cannot have)"
    )


def test_an_apply_change_with_neither_upsert_nor_delete_is_invalid(member: Server) -> None:
    raw = RawGrpc(member.port)
    try:
        journal = raw.call(
            "/protocol.Journal/Apply", [frame(pb.ApplyRequest(changes=[pb.ApplyRequestChange()]))]
        )
        shard = raw.call(
            "/consumer.Shard/Apply", [frame(pc.ApplyRequest(changes=[pc.ApplyRequestChange()]))]
        )
    finally:
        raw.close()
    for out in (journal, shard):
        assert out.status in (0, 3), out
        if out.status == 0:
            # Answered in the reply's own status field, as upstream does.
            assert list(out.messages())
