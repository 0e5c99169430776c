"""What the examples work around in the framework, as failing expectations.

Each test states what the examples would like to rely on and is marked
`xfail(strict=True)`: it starts passing (and so fails the suite, asking for
the workaround to go) once the framework is fixed.
"""

from __future__ import annotations

import pytest

from gazette_trio import aio
from gazette_trio.runtime.config import load_config

from .conftest import EXAMPLES


@pytest.mark.xfail(
    strict=True,
    reason="aio.asyncio_island lets an error of its block out wrapped in the ExceptionGroups "
    "of trio_asyncio.open_loop's nurseries, so a command cannot `except aio.RpcError` around "
    "it; wordcountctl and chunker.py unwrap the group themselves",
)
async def test_an_error_inside_the_asyncio_island_reaches_the_caller_as_itself() -> None:
    with pytest.raises(aio.Unavailable):
        async with aio.asyncio_island():
            raise aio.Unavailable("the broker is down")


@pytest.mark.xfail(
    strict=True,
    reason="`gazette-trio shards` reads its endpoint from $GAZETTE_TRIO_ENDPOINT, but the config "
    "loader takes every GAZETTE_TRIO_ variable for a config key, so a shell that exported it "
    "for the shards CLI cannot start `gazette-trio serve` (exit 2: endpoint: unknown key)",
)
def test_the_shards_cli_endpoint_variable_does_not_break_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GAZETTE_TRIO_ENDPOINT", "http://127.0.0.1:8080")
    config = load_config(EXAMPLES / "word_count" / "config.toml")
    assert config.member.port == 8080
