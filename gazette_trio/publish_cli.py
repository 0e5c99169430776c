"""`gazette-trio publish`: JSON lines from files or stdin into journals.

Each line is one JSON object, published as one message: stamped with a
UUID, mapped to a journal (`--journal`, or the journals matching
`--selector` by `--key-field` the way an application's publisher maps), and
appended in batches. Messages are committed transactionally, every
`--txn-size` messages and at the end, so a publish that fails or is
interrupted leaves nothing half-visible to read-committed readers; what was
committed before is said in the error. On a terminal a progress bar shows
the count; a summary ends the run.

This module owns the command; publishing is `gazette_trio.client`'s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import click
import orjson
import trio

from . import aio
from .broker.errors import JournalError
from .client import PublishProgress, PublishTimeout, open_publisher
from .errors import GazetteTrioError
from .message.mapping import NoPartitions

ENDPOINT_ENV = "GAZETTE_BROKER_ENDPOINT"


class BadLine(GazetteTrioError):
    """A line that is not a JSON object."""


def json_lines(files: tuple[IO[bytes], ...]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(file name, line number, object) for each non-blank line of `files`."""
    for file in files:
        name = getattr(file, "name", "-")
        name = "<stdin>" if name in ("<stdin>", "-") else name
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise BadLine(f"{name}:{number}: not JSON ({exc})") from None
            if not isinstance(value, dict):
                raise BadLine(f"{name}:{number}: expected a JSON object, not {type(value).__name__}")
            yield name, number, value


@click.command("publish", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, type=click.File("rb"))
@click.option(
    "--endpoint",
    "-e",
    default="localhost:8080",
    show_default=True,
    envvar=ENDPOINT_ENV,
    help=f"Broker endpoint (a member that embeds one, or a broker); env {ENDPOINT_ENV}.",
)
@click.option("--journal", "-j", default=None, help="Publish every message to this journal.")
@click.option(
    "--selector", "-l", default=None, help="Publish to the journals matching this selector."
)
@click.option(
    "--key-field",
    "-k",
    default=None,
    help="Map messages by this field (dotted for nested: user.id); default: spread at random.",
)
@click.option(
    "--mapping",
    type=click.Choice(["rendezvous", "modulo"]),
    default="rendezvous",
    show_default=True,
    help="How a key picks among the selected journals.",
)
@click.option(
    "--txn-size", default=10_000, show_default=True, help="Messages per committed transaction."
)
@click.option(
    "--give-up-after",
    default=300.0,
    show_default=True,
    help="Seconds without an acknowledgement before failing.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def publish(
    files: tuple[IO[bytes], ...],
    endpoint: str,
    journal: str | None,
    selector: str | None,
    key_field: str | None,
    mapping: str,
    txn_size: int,
    give_up_after: float,
    quiet: bool,
) -> None:
    """Publish JSON lines from FILES (default: stdin) as messages.

    Each message gets a UUID, so readers see it exactly once even if an
    append is retried. Messages are committed every --txn-size messages and
    at the end.

    \b
    Examples:
      gazette-trio publish -l topic=clicks -k user events.jsonl
      zcat big.jsonl.gz | gazette-trio publish -j examples/clicks/part-000
    """
    if (journal is None) == (selector is None):
        raise click.UsageError("name the destination with exactly one of --journal or --selector")
    sources: tuple[IO[bytes], ...] = files or (sys.stdin.buffer,)
    key = _key_of(key_field) if key_field else None
    show = not quiet and sys.stderr.isatty()
    started = time.monotonic()
    state = _State()
    try:
        progress = trio.run(
            _publish,
            endpoint,
            sources,
            state,
            show,
            _Options(journal, selector, key, mapping, txn_size, give_up_after),
        )
    except (BadLine, KeyError) as exc:
        raise click.ClickException(
            f"{exc}; {state.committed} earlier message(s) were committed, later ones not"
        ) from None
    except (PublishTimeout, NoPartitions, JournalError, aio.RpcError, OSError) as exc:
        raise click.ClickException(
            f"publishing to {endpoint}: {exc}; {state.committed} message(s) were committed"
        ) from None
    if not quiet:
        seconds = max(time.monotonic() - started, 1e-9)
        click.echo(
            f"published {progress.acknowledged} message(s) to {len(progress.journals)} "
            f"journal(s) in {seconds:.1f} s ({progress.acknowledged / seconds:,.0f}/s), "
            f"{progress.commits} transaction(s)",
            err=True,
        )


class _State:
    committed = 0


@dataclass(frozen=True)
class _Options:
    journal: str | None
    selector: str | None
    key: Any
    mapping: str
    txn_size: int
    give_up_after: float


def _key_of(field: str) -> Any:
    path = field.split(".")

    def key(message: dict[str, Any]) -> str:
        value: Any = message
        for part in path:
            if not isinstance(value, dict) or part not in value:
                raise KeyError(f"a message has no {field!r} field: {orjson.dumps(message)!r}")
            value = value[part]
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    return key


async def _publish(
    endpoint: str,
    sources: tuple[IO[bytes], ...],
    state: _State,
    show: bool,
    options: _Options,
) -> PublishProgress:
    bar = None
    if show:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        bar = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), transient=True, redirect_stdout=False
        )
        bar.start()
        task = bar.add_task("publishing")

    def on_progress(progress: PublishProgress) -> None:
        state.committed = progress.acknowledged
        if bar is not None:
            bar.update(
                task,
                description=f"published {progress.published:,}, committed {progress.acknowledged:,}",
            )

    try:
        async with open_publisher(
            endpoint,
            journal=options.journal,
            selector=options.selector,
            key=options.key,
            mapping="modulo" if options.mapping == "modulo" else "rendezvous",
            txn_size=options.txn_size,
            give_up_after=options.give_up_after,
            on_progress=on_progress,
        ) as publisher:
            for _, _, message in json_lines(sources):
                await publisher.publish(message)
        return publisher.progress
    finally:
        if bar is not None:
            bar.stop()
