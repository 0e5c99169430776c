"""`gazette-trio auth …`: tokens for operators and scripts.

`gazette-trio auth token --cap READ,LIST --selector 'name:prefix=examples/'
--ttl 1h --key-file KEYS` prints a token signed with the first key of KEYS
(Gazette's `--auth-keys` format; `GAZETTE_TRIO_AUTH_KEYS_FILE` by default).
Any Gazette broker or consumer, and any gazette-trio member, sharing that
key accepts it. Hand it to a tool as a file (`GAZETTE_TRIO_AUTH_TOKEN_FILE`,
gazctl's `--broker.auth-token`), never on a command line others can read.

`gazette-trio auth verify` checks a token from stdin against the keys and
prints its claims: what an operator runs when a call is refused.

This module owns the command line; tokens are `tokens`'.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..broker.durations import parse_duration
from ..protocol import labels as lbl
from ..protocol.validation import ValidationError
from . import capabilities as caps
from .claims import Claims, selector_json
from .settings import SecurityError, read_keys_file
from .tokens import Keys, TokenError

KEYS_ENV = "GAZETTE_TRIO_AUTH_KEYS_FILE"


@click.group()
def auth() -> None:
    """Mint and check authorization tokens (docs/security.md)."""


def _keys_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--key-file",
        "key_file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=KEYS_ENV,
        required=True,
        help="file of base64 keys (Gazette's --auth-keys format); the first signs "
        f"[env: {KEYS_ENV}]",
    )(fn)


def _load_keys(key_file: Path) -> Keys:
    try:
        return read_keys_file(key_file)
    except SecurityError as exc:
        raise click.BadParameter(str(exc), param_hint="--key-file") from None


@auth.command()
@click.option(
    "--cap",
    "cap_text",
    required=True,
    help="capabilities, comma-separated: LIST, APPLY, READ, APPEND, REPLICATE, ALL, "
    "or numbers (application bits start at 65536)",
)
@click.option(
    "--selector",
    "-l",
    default="",
    help="label selector of what the token reaches, e.g. 'name:prefix=examples/' "
    "(journals) or 'id=count-000' (shards); empty: everything",
)
@click.option("--ttl", default="1h", show_default=True, help="lifetime, e.g. 30m, 1h, 720h")
@_keys_option
def token(cap_text: str, selector: str, ttl: str, key_file: Path) -> None:
    """Print a token signed with the first key of --key-file.

    \b
    Examples:
      gazette-trio auth token --cap READ,LIST --selector 'name:prefix=examples/' --ttl 1h --key-file keys
      gazette-trio auth token --cap ALL --ttl 24h > operator.token
    """
    try:
        capability = caps.parse(cap_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cap") from None
    try:
        parsed = lbl.parse_selector(selector) if selector.strip() else None
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--selector") from None
    try:
        lifetime = parse_duration(ttl).total_seconds()
    except (ValueError, ValidationError) as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    if lifetime <= 0:
        raise click.BadParameter(f"{ttl!r}: expected a positive duration", param_hint="--ttl")
    keys = _load_keys(key_file)
    claims = Claims(capability, parsed) if parsed is not None else Claims(capability)
    click.echo(keys.sign(claims, lifetime))


@auth.command()
@_keys_option
def verify(key_file: Path) -> None:
    """Check the token on stdin against --key-file and print its claims.

    Exits 1 with the reason if a member with these keys would refuse it.
    """
    keys = _load_keys(key_file)
    text = sys.stdin.read().strip()
    if text.startswith("Bearer "):
        text = text[len("Bearer ") :]
    try:
        claims = keys.verify(text)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        json.dumps(
            {
                "cap": claims.capability,
                "capabilities": caps.describe(claims.capability),
                "sel": selector_json(claims.selector),
                "selector": lbl.format_selector(claims.selector),
                "iat": claims.issued_at,
                "exp": claims.expires_at,
            },
            indent=2,
        )
    )
