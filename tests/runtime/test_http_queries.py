"""The HTTP port's side of query routes (`runtime.http`).

`/query/...` answers JSON even where the application declares no routes
(404 saying so); a request body is read up to `MAX_BODY` bytes and a larger
one is refused with 413 before it is all read; only GET and POST reach a
query route.
"""

from __future__ import annotations

import json

import trio

from gazette_trio.runtime.http import MAX_BODY, StatusServer
from gazette_trio.runtime.status import MemberStatus, StatusSnapshot


class Source:
    async def snapshot(self) -> StatusSnapshot:
        return StatusSnapshot(group="g", member=MemberStatus("z", "m", "http://m:8080", 1))


class EchoRoutes:
    """Routes answering what they were asked: the HTTP layer's contract."""

    async def http(
        self, method: str, target: str, body: bytes, claims: object
    ) -> tuple[int, bytes]:
        return 200, json.dumps({"method": method, "target": target, "body": body.decode()}).encode()


async def test_a_member_without_routes_answers_json_404() -> None:
    response = await StatusServer(Source()).respond("GET", "/query/views?user=ann")
    assert response.status == 404
    assert response.content_type == "application/json"
    assert json.loads(response.body) == {
        "error": "this member's application declares no query routes"
    }


async def test_only_get_and_post_reach_a_route() -> None:
    server = StatusServer(Source(), queries=EchoRoutes())
    response = await server.respond("DELETE", "/query/views")
    assert (response.status, json.loads(response.body)) == (
        405,
        {"error": "queries take GET or POST"},
    )
    assert ("allow", "GET, POST") in response.headers


async def exchange(port: int, request: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        received = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                received += chunk
                if b"\r\n\r\n" in received and b"}" in received:
                    break
    return received


async def test_bodies_reach_the_route_and_oversized_ones_are_refused(
    nursery: trio.Nursery,
) -> None:
    server = StatusServer(Source(), queries=EchoRoutes())
    port = await nursery.start(server.serve, "127.0.0.1", 0)

    body = b'{"user": "ann"}'
    answer = await exchange(
        port,
        b"POST /query/views HTTP/1.1\r\nhost: m\r\ncontent-length: %d\r\n\r\n%s"
        % (len(body), body),
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {
        "method": "POST",
        "target": "/query/views",
        "body": '{"user": "ann"}',
    }

    size = MAX_BODY + 1
    head = b"POST /query/views HTTP/1.1\r\nhost: m\r\ncontent-length: %d\r\n\r\n" % size
    answer = await exchange(port, head + b"x" * size)
    assert answer.startswith(b"HTTP/1.1 413")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {
        "error": f"request body over {MAX_BODY} bytes"
    }
