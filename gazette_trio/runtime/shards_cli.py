"""`gazette-trio shards …`: operate a consumer group's shards, in the spirit of gazctl.

Commands talk to any member's Shard API (`-e/--endpoint`, `-c member.toml`, or the
`GAZETTE_CONSUMER_ENDPOINT` variable) and pick shards with Gazette label
selectors (`-l "app=wc, id in (count-000, count-001)"`; shards also carry the
meta-label `id`):

- `list`: shards with their status, primary and replicas, as a table or as
  JSON/YAML (the YAML is a shardspace file that `apply` reads back);
- `apply`: create, update or delete shards from a shardspace file, failing
  as a whole if any shard changed since its `revision` was read;
- `edit`: list, open `$EDITOR` on the YAML, apply what was saved (and reopen
  with the error if that fails);
- `unassign`: drop shards' assignments so the allocator re-places them, for
  instance to restart FAILED shards;
- `prune`: delete recovery-log fragments no hints still need.

Each command opens the asyncio island itself (`trio.run` +
`aio.asyncio_island()`), since it is a process of its own. Failures exit with
code 1 and a message on stderr; bad input (a selector, a spec file) exits
with code 2.

This module owns the command line: flags, output formats and error wording.
The Shard API calls are `ShardClient`'s; the file format is `shardspace`'s.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import betterproto2
import click
import trio
from rich import box
from rich.console import Console
from rich.table import Table

from .. import aio
from ..broker.grpc_client import GrpcJournalClient
from ..endpoints import ENV, endpoint_options, resolve
from ..protocol import consumer as pc
from ..protocol import labels as lbl
from ..protocol import protocol as pb
from ..protocol.validation import ValidationError
from ..recoverylog.segment import SegmentSet
from .prune import (
    PruneError,
    PruneStats,
    fold_hints,
    fragment_file,
    fragment_stats,
    oldest_backup_hints,
    summarize,
    unneeded_fragments,
)
from .shard_client import ShardClient
from .shardspace import ShardSpace, SpecError

__all__ = ["CommandError", "InputError", "shards"]

T = TypeVar("T")

ENDPOINT_ENV = ENV["consumer"]


class CommandError(click.ClickException):
    """The operation failed (unreachable member, refused Apply): exit code 1."""

    exit_code = 1


class InputError(click.ClickException):
    """What the operator gave cannot be used (selector, spec file): exit code 2."""

    exit_code = 2


# --------------------------------------------------------------------------
# Shared plumbing


def run_rpc(endpoint: str, call: Callable[[ShardClient], Awaitable[T]]) -> T:
    """Run `call` against the member at `endpoint` in a fresh Trio run.

    RPC failures become `CommandError`s naming the endpoint.
    """
    _check_endpoint("--endpoint", endpoint)

    async def main() -> T:
        async with aio.Channel(endpoint) as channel:
            return await call(ShardClient(channel))

    return run_in_island(main, endpoint)


def _check_endpoint(option: str, endpoint: str) -> None:
    try:
        aio.parse_endpoint(endpoint)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


def run_in_island(main: Callable[[], Awaitable[T]], endpoint: str) -> T:
    """`trio.run(main)` inside an asyncio island, as a command's whole life.

    Errors are raised after the run, unwrapped: click's own, and RPC
    failures as `CommandError`s naming `endpoint`.
    """
    outcome: list[T] = []
    failure: list[Exception] = []

    async def run() -> None:
        async with aio.asyncio_island():
            try:
                outcome.append(await main())
            except (aio.RpcError, click.ClickException) as exc:
                # Raised after the run, so that it is not wrapped in the nursery's group.
                failure.append(exc)

    trio.run(run)
    if failure:
        error = failure[0]
        if isinstance(error, aio.Unavailable):
            raise CommandError(f"cannot reach a member at {endpoint}: {error.message}")
        if isinstance(error, aio.RpcError):
            raise CommandError(f"{endpoint}: {error}")
        raise error
    return outcome[0]


def _check_status(what: str, status: pc.Status) -> None:
    if status == pc.Status.ETCD_TRANSACTION_FAILED:
        raise CommandError(
            f"{what}: a shard changed since its revision was read (ETCD_TRANSACTION_FAILED); "
            "list the shards again and re-apply, or give revision: -1 to overwrite regardless"
        )
    if status != pc.Status.OK:
        raise CommandError(f"{what}: {status.name}")


def _parse_selector(text: str) -> pc.ListRequest:
    try:
        return pc.ListRequest(selector=lbl.parse_selector(text))
    except ValidationError as exc:
        raise InputError(f"--selector: {exc}") from None


def _list(endpoint: str, selector: str) -> pc.ListResponse:
    request = _parse_selector(selector)
    response = run_rpc(endpoint, lambda client: client.list(request))
    _check_status("list", response.status)
    return response


def endpoint_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`-e`/`-c` (`gazette_trio.endpoints`), resolved into the command's
    `endpoint` argument: a Shard API endpoint of any member of the group."""

    @functools.wraps(fn)
    def command(
        *args: Any, endpoint: str | None = None, config: Path | None = None, **kwargs: Any
    ) -> Any:
        return fn(*args, endpoint=resolve("consumer", endpoint, config), **kwargs)

    return endpoint_options("consumer")(command)


def selector_option(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    help_text = (
        'Label selector, e.g. "app=wc, env in (prod, qa), !disabled"; '
        'shards also match their id: "id=count-000".'
    )
    if required:
        # No `default` at all: click treats even default=None as a given value.
        return click.option("-l", "--selector", required=True, metavar="SELECTOR", help=help_text)
    return click.option(
        "-l", "--selector", default="", metavar="SELECTOR", help=help_text + " Default: all."
    )


def _echo_console(render: Callable[[Console], None]) -> None:
    width = shutil.get_terminal_size((200, 24)).columns if os.isatty(1) else 200
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, no_color=True, highlight=False)
    render(console)
    # Rich pads every cell; trailing blanks only get in the way of grep and diff.
    click.echo("\n".join(line.rstrip() for line in buffer.getvalue().splitlines()))


# --------------------------------------------------------------------------
# The group

EXAMPLES_HELP = """\b
Examples:
  gazette-trio shards list -e http://localhost:8080
  gazette-trio shards list -l "app=word-count" -o yaml > shards.yaml
  gazette-trio shards apply shards.yaml
  gazette-trio shards edit -l "id=count-000"
  gazette-trio shards unassign -l "app=word-count" --failed
  gazette-trio shards prune -l "app=word-count" --dry-run
"""


@click.group(
    "shards", context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES_HELP
)
def shards() -> None:
    """List, apply, edit, unassign and prune the shards of a consumer group.

    Commands talk to the Shard API of any member of the group. Shard specs
    are exchanged as shardspace YAML, gazctl's format: a `common` spec whose
    fields every shard inherits unless it sets its own, and the `shards`.
    """


# --------------------------------------------------------------------------
# list


def _reduce_status(shard: pc.ListResponseShard) -> tuple[pc.ReplicaStatusCode, list[str]]:
    code = pc.ReplicaStatusCode.IDLE
    errors: list[str] = []
    for status in shard.status:
        if status.code > code:
            code = status.code
        errors.extend(status.errors)
    return code, errors


def _replica_columns(shard: pc.ListResponseShard) -> tuple[str, str]:
    route = shard.route
    if route is None:
        return "<none>", ""
    primary = "<none>"
    replicas = []
    for i, member in enumerate(route.members):
        code = shard.status[i].code.name if i < len(shard.status) else "?"
        text = f"{member.suffix}:{code}"
        if i == route.primary:
            primary = text
        else:
            replicas.append(text)
    return primary, ",".join(replicas)


def shards_table(
    response: pc.ListResponse, rf: bool = False, label_columns: Sequence[str] = ()
) -> Table:
    """The `shards list` table: id, status, primary, replicas, and optional columns."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    headers = ["ID", "STATUS", "PRIMARY", "REPLICAS"]
    if rf:
        headers.append("RF")
    headers.extend(label.upper() for label in label_columns)
    any_errors = any(_reduce_status(shard)[1] for shard in response.shards)
    if any_errors:
        headers.append("ERRORS")
    for header in headers:
        # Ids and members fold onto more lines rather than being cut short.
        table.add_column(header, no_wrap=header in ("STATUS", "RF"), overflow="fold")
    for shard in response.shards:
        spec = shard.spec or pc.ShardSpec()
        code, errors = _reduce_status(shard)
        primary, replicas = _replica_columns(shard)
        row = [spec.id, code.name, primary, replicas]
        if rf:
            row.append("0" if spec.disable else str(spec.hot_standbys + 1))
        for name in label_columns:
            values = lbl.values_of(spec.labels, name)
            row.append(",".join(values) if values else "<none>")
        if any_errors:
            row.append("; ".join(errors))
        table.add_row(*row)
    return table


@shards.command(
    "list",
    epilog="""\b
Examples:
  gazette-trio shards list
  gazette-trio shards list -l "id in (count-000, count-001)" --rf
  gazette-trio shards list -l "app=word-count" -L app -L env
  gazette-trio shards list -o yaml > shards.yaml     # then edit and `apply`
  gazette-trio shards list -o json | jq '.shards[].spec.id'
""",
)
@endpoint_option
@selector_option(required=False)
@click.option(
    "-o",
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
    help="table: readable; json: the ListResponse; yaml: a shardspace file for `apply`.",
)
@click.option(
    "--rf", is_flag=True, help="Add the replication factor (1 + hot standbys; 0 if disabled)."
)
@click.option(
    "-L",
    "--label-columns",
    multiple=True,
    metavar="NAME",
    help="Add a column with the values of label NAME (repeatable).",
)
def list_command(
    endpoint: str, selector: str, fmt: str, rf: bool, label_columns: tuple[str, ...]
) -> None:
    """List shards with their status, primary and replicas.

    The status of a shard is the most advanced of its replicas' statuses
    (IDLE < BACKFILL < STANDBY < PRIMARY < FAILED); replicas show as
    `member-suffix:STATUS`.
    """
    response = _list(endpoint, selector)
    if fmt == "json":
        click.echo(response.to_json(casing=betterproto2.Casing.SNAKE, indent=2))
    elif fmt == "yaml":
        click.echo(ShardSpace.from_list_response(response).to_yaml(), nl=False)
    else:
        table = shards_table(response, rf, label_columns)
        _echo_console(lambda console: console.print(table))


# --------------------------------------------------------------------------
# apply


def _read_space(text: str, source: str) -> ShardSpace:
    space = ShardSpace.from_yaml(text, source=source)
    space.validate()
    return space


def _batches(changes: list[pc.ApplyRequestChange], size: int) -> list[list[pc.ApplyRequestChange]]:
    if size <= 0 or len(changes) <= size:
        return [changes]
    return [changes[i : i + size] for i in range(0, len(changes), size)]


def apply_space(endpoint: str, space: ShardSpace, max_txn_size: int = 0) -> int:
    """Apply a shardspace; returns the etcd revision of the (last) Apply."""
    request = space.apply_request()
    batches = _batches(list(request.changes), max_txn_size)

    async def call(client: ShardClient) -> int:
        revision = 0
        for i, batch in enumerate(batches):
            response = await client.apply(pc.ApplyRequest(changes=batch))
            where = f"apply (batch {i + 1} of {len(batches)})" if len(batches) > 1 else "apply"
            _check_status(where, response.status)
            if response.header and response.header.etcd:
                revision = response.header.etcd.revision
        return revision

    return run_rpc(endpoint, call)


def _describe_changes(request: pc.ApplyRequest) -> str:
    lines = []
    for change in request.changes:
        rev = change.expect_mod_revision
        expect = {0: "create", -1: "any revision"}.get(rev, f"at revision {rev}")
        if change.delete:
            lines.append(f"delete {change.delete} ({expect})")
        elif change.upsert is not None:
            lines.append(f"upsert {change.upsert.id} ({expect})")
    return "\n".join(lines)


@shards.command(
    "apply",
    epilog="""\b
Examples:
  gazette-trio shards apply shards.yaml
  gazette-trio shards apply --dry-run shards.yaml
  gazette-trio shards list -l app=wc -o yaml | sed s/1s/2s/ | gazette-trio shards apply -
\b
A shardspace file:
  common:
    max_txn_duration: 1s
    recovery_log_prefix: examples/recovery
    hint_prefix: /gazette/hints
  shards:
  - id: count-000
    sources:
    - journal: examples/lines/part-000
    revision: 12        # as listed; 0 (or absent) creates; -1 overwrites
  - id: count-001
    delete: true
""",
)
@click.argument("file", type=click.File("r"), default="-", metavar="FILE")
@endpoint_option
@click.option(
    "--dry-run", is_flag=True, help="Check the file and print the changes; apply nothing."
)
@click.option(
    "--max-txn-size",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Apply in batches of at most this many changes (0: one Apply). Batches are "
    "separate etcd transactions: a failure can leave earlier batches applied.",
)
def apply_command(file: io.TextIOBase, endpoint: str, dry_run: bool, max_txn_size: int) -> None:
    """Create, update or delete shards from a shardspace YAML FILE ("-": stdin).

    Each shard's `revision` is checked against etcd: if any shard changed
    since it was listed, the whole Apply fails and nothing changes. Use
    revision 0 (or none) to create a shard, -1 to overwrite whatever is
    there, and `delete: true` to delete it.
    """
    name = getattr(file, "name", "FILE")
    try:
        space = _read_space(file.read(), source=str(name))
    except SpecError as exc:
        raise InputError(f"{name}: {exc}") from None
    request = space.apply_request()
    if not request.changes:
        raise InputError(f"{name}: no shards to apply")
    if dry_run:
        click.echo(_describe_changes(request))
        click.echo(f"dry run: {len(request.changes)} changes checked, nothing applied")
        return
    revision = apply_space(endpoint, space, max_txn_size)
    click.echo(f"applied {len(request.changes)} changes (etcd revision {revision})")


# --------------------------------------------------------------------------
# edit

EDIT_HEADER = (
    "# Edit the shards below and save to apply; exit without saving to cancel.\n"
    "# `revision` guards against concurrent changes: leave it as listed.\n"
)


def _strip_comments(text: str) -> str:
    return "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    ).strip()


@shards.command(
    "edit",
    epilog="""\b
Examples:
  gazette-trio shards edit -l "id=count-000"
  EDITOR=nano gazette-trio shards edit -l "app=word-count"
""",
)
@endpoint_option
@selector_option(required=True)
@click.option("--max-txn-size", type=click.IntRange(min=0), default=0, help="As for `apply`.")
def edit_command(endpoint: str, selector: str, max_txn_size: int) -> None:
    """Edit the selected shards in $EDITOR, then apply what was saved.

    The shards are listed as shardspace YAML and opened in $EDITOR (or
    $VISUAL). Saving applies the file exactly as `apply` would. If it does
    not parse or the Apply fails, the editor reopens with the error at the
    top; exit without saving to give up.
    """
    response = _list(endpoint, selector)
    if not response.shards:
        raise InputError(f"no shards match selector {selector!r}")
    original = ShardSpace.from_list_response(response).to_yaml()
    text = EDIT_HEADER + original
    while True:
        edited = click.edit(text, extension=".yaml", require_save=True)
        if edited is None or _strip_comments(edited) == _strip_comments(original):
            click.echo("no changes; nothing applied", err=True)
            if edited is None and text.startswith("# error:"):
                raise CommandError("edit abandoned after an error; nothing applied")
            return
        body = "\n".join(line for line in edited.splitlines() if not line.startswith("# error:"))
        try:
            space = _read_space(body, source="edited shards")
            revision = apply_space(endpoint, space, max_txn_size)
        except (SpecError, CommandError) as exc:
            message = exc.message if isinstance(exc, click.ClickException) else str(exc)
            click.echo(f"error: {message}", err=True)
            error_lines = "".join(f"# error: {line}\n" for line in message.splitlines())
            text = error_lines + body.lstrip("\n") + "\n"
            continue
        count = len(space.apply_request().changes)
        click.echo(f"applied {count} changes (etcd revision {revision})")
        return


# --------------------------------------------------------------------------
# unassign


@shards.command(
    "unassign",
    epilog="""\b
Examples:
  gazette-trio shards unassign -l "id=count-000"
  gazette-trio shards unassign -l "app=word-count" --failed
  gazette-trio shards unassign -l "app=word-count" --failed --dry-run
""",
)
@endpoint_option
@selector_option(required=True)
@click.option("--failed", is_flag=True, help="Only shards whose status is FAILED.")
@click.option(
    "--dry-run", is_flag=True, help="Print the shards that would be unassigned; change nothing."
)
def unassign_command(endpoint: str, selector: str, failed: bool, dry_run: bool) -> None:
    """Remove the assignments of the selected shards.

    The allocator then assigns them afresh, shortly: use it to restart a
    FAILED shard or to move a shard off a busy member.
    """
    listed = _list(endpoint, selector)
    ids = [shard.spec.id for shard in listed.shards if shard.spec is not None]
    if not ids:
        click.echo(f"no shards match selector {selector!r}; nothing unassigned", err=True)
        return
    request = pc.UnassignRequest(shards=ids, only_failed=failed, dry_run=dry_run)
    response = run_rpc(endpoint, lambda client: client.unassign(request))
    _check_status("unassign", response.status)
    done = list(response.shards)
    verb = "would unassign" if dry_run else "unassigned"
    if done:
        click.echo(f"{verb} {len(done)} shards: {', '.join(done)}")
    else:
        qualifier = " FAILED" if failed else " assigned"
        click.echo(f"{verb} 0 shards: none of the {len(ids)} selected shards is{qualifier}")


# --------------------------------------------------------------------------
# prune


async def _all_fragments(journals: GrpcJournalClient, log: str) -> list[pb.Fragment]:
    out: list[pb.Fragment] = []
    token = 0
    while True:
        response = await journals.list_fragments(
            pb.FragmentsRequest(journal=log, next_page_token=token, page_limit=1000)
        )
        if response.status != pb.Status.OK:
            raise CommandError(f"listing fragments of {log}: {response.status.name}")
        out.extend(f.spec for f in response.fragments if f.spec is not None)
        token = response.next_page_token
        if not token:
            return out


@shards.command(
    "prune",
    epilog="""\b
Examples:
  gazette-trio shards prune -l "app=word-count" --dry-run
  gazette-trio shards prune -l "app=word-count" --broker http://broker:8080
\b
CAUTION: when recovery logs were forked from other logs, select *all* the
shards that share that log history: a log's fragments are pruned by the
hints of the selected shards only.
""",
)
@endpoint_option
@selector_option(required=True)
@click.option(
    "--broker",
    "broker_endpoint",
    envvar=ENV["broker"],
    default=None,
    metavar="URL",
    help=f"Journal API endpoint (env {ENV['broker']}); default: the --endpoint, "
    "which serves both APIs on an embedded member.",
)
@click.option(
    "--file-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Directory that file:// fragment store paths are relative to.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
def prune_command(
    endpoint: str, selector: str, broker_endpoint: str | None, file_root: Path, dry_run: bool
) -> None:
    """Remove recovery-log fragments that no selected shard's hints still need.

    Every selected shard must have written backup hints: its oldest backup
    hints bound what its store can still need, and fragments of its
    recovery log outside every hinted segment (and before the log's open
    tail) are removed from their file:// fragment store. A shard without
    usable hints stops the prune before anything is removed.
    """
    broker = broker_endpoint or endpoint
    _check_endpoint("--endpoint", endpoint)
    _check_endpoint("--broker", broker)
    request = _parse_selector(selector)

    async def main() -> list[str]:
        lines: list[str] = []
        total = PruneStats()
        async with aio.Channel(endpoint) as shard_channel, aio.Channel(broker) as journal_channel:
            client = ShardClient(shard_channel)
            journals = GrpcJournalClient(journal_channel)
            listed = await client.list(request)
            _check_status("list", listed.status)
            if not listed.shards:
                raise InputError(f"no shards match selector {selector!r}; nothing pruned")
            sets: dict[str, SegmentSet] = {}
            try:
                for shard in listed.shards:
                    shard_id = shard.spec.id if shard.spec else ""
                    hints = await client.get_hints(pc.GetHintsRequest(shard=shard_id))
                    fold_hints(shard_id, oldest_backup_hints(shard_id, hints), sets)
                    total.shards += 1
                plans = []
                for log in sorted(sets):
                    fragments = await _all_fragments(journals, log)
                    for fragment in fragments:
                        if fragment.journal != log:
                            raise PruneError(
                                f"listing fragments of {log}, the broker returned one of "
                                f"{fragment.journal!r}"
                            )
                    doomed = unneeded_fragments(log, sets[log], fragments)
                    plans.append(
                        (log, fragments, doomed, [fragment_file(f, file_root) for f in doomed])
                    )
            except PruneError as exc:
                raise CommandError(f"prune: {exc}; nothing removed") from None
            for log, fragments, doomed, paths in plans:
                for fragment, path in zip(doomed, paths, strict=True):
                    verb = "would remove" if dry_run else "removing"
                    lines.append(f"{verb} {path} ({fragment.end - fragment.begin} bytes)")
                    if not dry_run:
                        try:
                            await trio.Path(path).unlink()
                        except FileNotFoundError:
                            lines.append(f"  already gone: {path}")
                stats = fragment_stats(fragments, doomed)
                total.add(stats)
                lines.append(f"log {log}: {summarize(stats)}")
        lines.append(("dry run: " if dry_run else "pruned: ") + summarize(total))
        return lines

    for line in run_in_island(main, endpoint):
        click.echo(line)
