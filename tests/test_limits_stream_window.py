"""`stream_window`: the HTTP/2 window a server grants each call's request
data, set like every limit (`[limits]` in a member's config,
`GAZETTE_TRIO_LIMITS__STREAM_WINDOW` for either server), with the
connection's window derived from it and the bound on memory they make.
The windows a real server grants are checked in
tests/hostile/test_unread_streams.py.
"""

from __future__ import annotations

import pytest

from gazette_trio import limits
from gazette_trio.runtime.config import ConfigError, parse_config

MiB = 1 << 20
MINIMAL = '[application]\nmodule = "json:JSONDecoder"\n'


def test_defaults() -> None:
    bounds = limits.Limits()
    assert bounds.stream_window == MiB
    # Room for every call's window on a connection, and one more.
    assert bounds.connection_window() == 101 * MiB


def test_from_the_environment() -> None:
    bounds = limits.from_env(
        {
            "GAZETTE_TRIO_LIMITS__STREAM_WINDOW": "262_144",
            "GAZETTE_TRIO_LIMITS__MAX_CONCURRENT_STREAMS": "10",
        }
    )
    assert bounds.stream_window == 262_144
    assert bounds.connection_window() == 11 * 262_144


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"GAZETTE_TRIO_LIMITS__STREAM_WINDOW": "1000"},
            "GAZETTE_TRIO_LIMITS__*: limit stream_window must be from 65535 to 2147483647 "
            "bytes (HTTP/2's bounds), got 1000",
        ),
        (
            {"GAZETTE_TRIO_LIMITS__STREAM_WINDOW": "a lot"},
            "GAZETTE_TRIO_LIMITS__STREAM_WINDOW='a lot': invalid literal",
        ),
        (
            {
                "GAZETTE_TRIO_LIMITS__STREAM_WINDOW": str(64 * MiB),
                "GAZETTE_TRIO_LIMITS__MAX_CONCURRENT_STREAMS": "100",
            },
            "limits stream_window x (max_concurrent_streams + 1) must be at most 2147483647 "
            "bytes, HTTP/2's largest connection window, got 67108864 x 101; lower one of them",
        ),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        limits.from_env(env)
    assert message in str(info.value)


def test_from_a_members_config() -> None:
    config = parse_config(MINIMAL + "[limits]\nstream_window = 524288\n", env={})
    assert config.limits.to_limits().stream_window == 524_288
    assert config.limits.to_limits().connection_window() == 101 * 524_288


def test_the_environment_overrides_a_members_config() -> None:
    config = parse_config(
        MINIMAL + "[limits]\nstream_window = 524288\n",
        env={"GAZETTE_TRIO_LIMITS__STREAM_WINDOW": "131072"},
    )
    assert config.limits.to_limits().stream_window == 131_072


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("stream_window = 1000", "limits.stream_window = 1000: "),
        (
            "stream_window = 33554432\nmax_concurrent_streams = 100",
            "stream_window x (max_concurrent_streams + 1) must be at most 2147483647 bytes",
        ),
    ],
)
def test_a_bad_config_value_is_a_config_error(table: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + "[limits]\n" + table + "\n", env={})
    assert message in str(info.value)
