"""The `gazette-trio` command line.

Sub-commands are added by the modules that implement them (serve, broker,
shards, journals); this module owns only the root group and the entry point.
"""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gazette-trio")
def main() -> None:
    """Run and operate gazette-trio consumers and journals.

    \b
    Examples:
      gazette-trio serve config.toml         run a consumer member
      gazette-trio broker serve --data-dir d run the embedded journal server
      gazette-trio shards list -e HOST:PORT  list shards of a consumer group
    """
