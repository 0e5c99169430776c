"""How the command line names the endpoints it talks to.

Every command that talks to a member or a broker takes, after its own name
(`gazette-trio shards list -e ...`, `gazette-trio journals read -e ...`,
`gazette-trio publish -e ...`):

- `-e/--endpoint URL`: the endpoint itself;
- `-c/--config member.toml`: a member's config, whose `[member]` endpoint
  serves the Shard API and whose `[broker]` endpoint (or, without one, the
  member itself, which then embeds the broker) serves the Journal API.

Without either, the API's environment variable (`GAZETTE_CONSUMER_ENDPOINT`
for the Shard API, `GAZETTE_BROKER_ENDPOINT` for the Journal API) and then
`localhost:8080`, a member's default port, which serves both. An explicit
`-e` wins over `-c`, which wins over the variable.

A secured member's config (`[security]`, docs/security.md) also lends the
command its client settings, unless the environment gives some
(`GAZETTE_TRIO_AUTH_KEYS_FILE`, ...): its keys (or token) sign the calls,
its `trusted_ca_file` is trusted, and its own endpoint is dialed with TLS
(`https://`) when it serves TLS. An operator on the member's machine who
can read those files needs nothing more than `-c`.

This module owns those rules and the click options that carry them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import click

Api = Literal["consumer", "broker"]

ENV: dict[Api, str] = {
    "consumer": "GAZETTE_CONSUMER_ENDPOINT",
    "broker": "GAZETTE_BROKER_ENDPOINT",
}
DEFAULT_ENDPOINT = "localhost:8080"

_WHAT: dict[Api, str] = {"consumer": "Shard API", "broker": "Journal API"}


def from_config(path: Path, api: Api) -> str:
    """The endpoint of `api` that the member configured at `path` serves or uses."""
    from .runtime.config import ConfigError, load_config
    from .runtime.security import tls_endpoint

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None
    except OSError as exc:
        raise click.BadParameter(f"{path}: {exc.strerror}", param_hint="--config") from None
    _borrow_credentials(cfg, path)
    if api == "broker" and cfg.broker is not None:
        return cfg.broker.endpoint
    if not cfg.member.endpoint and cfg.member.port == 0:
        raise click.BadParameter(
            f"{path}: [member] port is 0 (picked when the member starts); pass -e/--endpoint",
            param_hint="--config",
        )
    endpoint = cfg.member.advertised_endpoint()
    return tls_endpoint(endpoint) if cfg.security.server_cert_file else endpoint


def _borrow_credentials(cfg: Any, path: Path) -> None:
    """Sign and trust as the member's config says, unless the environment
    names client settings of its own."""
    from . import aio
    from .auth.settings import CLIENT_ENV, SecurityError, load
    from .runtime.security import client_files

    if any(os.environ.get(var) for var in CLIENT_ENV.values()):
        return
    s = cfg.security
    if not (s.auth_keys_file or s.auth_token_file or s.trusted_ca_file or s.client_cert_file):
        return
    try:
        security = load(**client_files(s))
    except SecurityError as exc:
        raise click.BadParameter(f"{path}: security: {exc}", param_hint="--config") from None
    aio.set_dial_credentials(security.dial)


def resolve(api: Api, endpoint: str | None, config: Path | None) -> str:
    """The endpoint a command should use, by the module's rules."""
    if endpoint:
        return endpoint
    if config is not None:
        return from_config(config, api)
    return os.environ.get(ENV[api]) or DEFAULT_ENDPOINT


def endpoint_options(api: Api) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`-e/--endpoint` and `-c/--config` for a command talking to `api`;
    the command receives `endpoint: str | None` and `config: Path | None`
    (pass both to `resolve`)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "-c",
            "--config",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            default=None,
            metavar="TOML",
            help=f"Take the {_WHAT[api]} endpoint from this member config.",
        )(fn)
        fn = click.option(
            "-e",
            "--endpoint",
            default=None,
            metavar="URL",
            help=f"{_WHAT[api]} endpoint (env {ENV[api]}; default {DEFAULT_ENDPOINT}).",
        )(fn)
        return fn

    return decorate
