"""Upstream: broker/protocol/endpoint_test.go (go.gazette.dev/core v0.103.0).

Endpoint validation, against `gazette_trio.protocol.headers.validate_endpoint`.

Cases that cannot apply:
- TestURLConversion: `Endpoint.URL` is a Go helper returning a parsed
  `*url.URL` (panicking on a bad endpoint); there is no such type here.
- TestGRPCConversion: `Endpoint.GRPCAddr` maps an endpoint to a gRPC dial
  target for Go's grpc-go; our grpclib channels take a host and port (or a
  unix path) from the endpoint where they are opened.
"""

from __future__ import annotations

import re

import pytest

from gazette_trio.protocol.headers import validate_endpoint
from gazette_trio.protocol.validation import ValidationError

UPSTREAM = "broker/protocol/endpoint_test.go"
NOT_APPLICABLE = {
    "TestURLConversion": "Endpoint.URL returns Go's *url.URL; no such type here",
    "TestGRPCConversion": "Endpoint.GRPCAddr makes a grpc-go dial target; grpclib dials otherwise",
}


@pytest.mark.parametrize(
    ("endpoint", "expect"),
    [
        ("http://host:1234/path?query", None),
        (":garbage: :garbage:", r"parse .* missing protocol scheme"),
        ("/baz/bing", r"not absolute: .*"),
        ("http:///baz/bing", r"missing host: .*"),
    ],
)
def test_validation(endpoint: str, expect: str | None) -> None:
    if expect is None:
        validate_endpoint(endpoint)
        return
    with pytest.raises(ValidationError) as raised:
        validate_endpoint(endpoint)
    assert re.fullmatch(expect, str(raised.value)), str(raised.value)
