"""`gazette-trio broker repair`: inspect and repair damaged journals of a stopped server.

When restart verification finds acknowledged content that does not check
out (`file_storage.py`), the server refuses that journal past the damage
and leaves every file as it was. This command is the operator's way out:

- without `--truncate-at` it reports what is damaged (exit status 1 if
  anything is, 0 if nothing is);
- with `--journal J --truncate-at OFFSET` it keeps the damaged file's
  verified content before OFFSET and the appends after the damage that
  verify again, moves the damaged files to `DATA_DIR/quarantine/<time>/…`
  (nothing is deleted), and lets the journal resume at the highest offset it
  ever acknowledged. A crash part-way leaves the damage (run it again) or
  the repair.

It takes the data directory's lock, so it refuses to run beside a server.
This module owns the command's options and output; the work is
`FileStorage.repair`.
"""

from __future__ import annotations

from pathlib import Path

import click

EXIT_DAMAGED = 1


@click.command("repair", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The journal server's data directory (DATA_DIR/journals for `gazette-trio serve`).",
)
@click.option("--journal", help="The journal to inspect or repair (default: report all).")
@click.option(
    "--truncate-at",
    type=click.IntRange(min=0),
    help="Repair: keep the damaged file's content before this offset, set the rest aside.",
)
def repair(data_dir: Path, journal: str | None, truncate_at: int | None) -> None:
    """Report damaged journals in DATA-DIR, or repair one (the server must be stopped).

    \b
    Examples:
      gazette-trio broker repair --data-dir ./journals
      gazette-trio broker repair --data-dir ./journals --journal logs/app --truncate-at 4096
    """
    from ...runtime.datadir import exit_if_locked
    from .file_storage import FileStorage

    if truncate_at is not None and journal is None:
        raise click.UsageError("--truncate-at needs --journal")
    with exit_if_locked():
        storage = FileStorage(data_dir)
    try:
        recovered = storage.recover([journal] if journal is not None else None)
        if journal is not None and journal not in recovered.journals:
            raise click.ClickException(f"journal {journal}: no stored content in {data_dir}")
        damaged = storage.damaged_journals()
        if truncate_at is None:
            if not damaged:
                click.echo("no damage found")
                return
            for damage in damaged:
                click.echo(
                    f"journal {damage.journal}: damaged at offset {damage.offset}: "
                    f"{damage.file}: {damage.reason}"
                )
                click.echo(
                    f"  repair: gazette-trio broker repair --data-dir {data_dir} "
                    f"--journal {damage.journal} --truncate-at {damage.offset}"
                )
            raise click.exceptions.Exit(EXIT_DAMAGED)
        assert journal is not None
        try:
            done = storage.repair(journal, truncate_at)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        for line in done:
            click.echo(f"journal {journal}: {line}")
    finally:
        storage.close()
    # Verify afresh: a journal can be damaged in more than one file.
    storage = FileStorage(data_dir)
    try:
        storage.recover([journal])
        remaining = storage.damage(journal)
    finally:
        storage.close()
    if remaining is not None:
        click.echo(
            f"journal {journal}: still damaged at offset {remaining.offset}: "
            f"{remaining.file}: {remaining.reason}"
        )
        raise click.exceptions.Exit(EXIT_DAMAGED)
    click.echo(f"journal {journal}: repaired")
