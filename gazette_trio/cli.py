"""The `gazette-trio` command line.

This module owns only the root group and the entry point; each sub-command
group lives beside what it operates (`runtime.shards_cli`, `broker.cli`,
`runtime.serve`).
"""

from __future__ import annotations

import click

from . import __version__
from .auth.cli import auth
from .auth.settings import SecurityError, install_client_from_env
from .broker.cli import broker, journals
from .publish_cli import publish
from .runtime.serve import serve
from .runtime.shards_cli import shards


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


main.add_command(serve)
main.add_command(broker)
main.add_command(journals)
main.add_command(shards)
main.add_command(publish)
main.add_command(auth)
