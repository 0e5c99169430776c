"""The `gazette-trio` command line.

This module owns only the root group and the entry point; each sub-command
group lives beside what it operates (`runtime.shards_cli`, `broker.cli`,
`runtime.serve`, ...), and is imported only when it runs, so that a command
starts without loading the others (`serve` alone loads the whole runtime).
"""

from __future__ import annotations

import importlib

import click

from . import __version__
from .auth.settings import SecurityError, install_client_from_env

COMMANDS = {
    "serve": "gazette_trio.runtime.serve:serve",
    "broker": "gazette_trio.broker.cli:broker",
    "journals": "gazette_trio.broker.cli:journals",
    "shards": "gazette_trio.runtime.shards_cli:shards",
    "publish": "gazette_trio.publish_cli:publish",
    "auth": "gazette_trio.auth.cli:auth",
    "protoc": "gazette_trio.protoc_cli:protoc",
}
"""Name → `module:attribute` of each sub-command, in the order help lists them."""


class _LazyGroup(click.Group):
    """A group whose sub-commands are imported when used (or listed in help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gazette-trio")
def main() -> None:
    """Run and operate gazette-trio consumers and journals.

    \b
    Examples:
      gazette-trio serve examples/word_count/config.toml      run a consumer member
      gazette-trio broker serve --data-dir data --port 8081   run a journal server
      gazette-trio journals -e 127.0.0.1:8081 list            list its journals
      gazette-trio shards list -e 127.0.0.1:8080              list shards of a consumer group
      gazette-trio publish -l topic=clicks -k user events.jsonl   publish JSON lines
      gazette-trio protoc app.proto          generate an application's gRPC classes

    \b
    Against secured members and brokers (docs/security.md), the commands
    present a token and trust a CA named by the environment:
      GAZETTE_TRIO_AUTH_KEYS_FILE   keys to sign a token per call, or
      GAZETTE_TRIO_AUTH_TOKEN_FILE  one pre-shared token
      GAZETTE_TRIO_TRUSTED_CA_FILE  CA of https:// endpoints
      GAZETTE_TRIO_CERT_FILE, GAZETTE_TRIO_CERT_KEY_FILE  a client certificate
    """
    try:
        install_client_from_env()
    except SecurityError as exc:
        raise click.UsageError(str(exc)) from None
