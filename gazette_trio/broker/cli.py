"""Command line for journals: `broker serve` and `journals list|apply|append|read|fragments`.

`broker` runs gazette-trio's single-node journal server. `journals` talks to
any Gazette-protocol broker (ours or Gazette's) at `--endpoint`, reading and
writing specs in gazctl's journalspace YAML and printing tables (rich) or
`--format json|yaml`. The root `gazette-trio` command registers both groups;
this module owns their options, help and output, and delegates the work to
the client helpers and the server.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import betterproto2
import click
import trio

from .. import aio
from ..endpoints import ENV, endpoint_options, resolve
from ..protocol import labels as L
from ..protocol import protocol as pb
from ..protocol.validation import ValidationError
from ..runtime.startup import exit_on_startup_error, journal_server_problem
from .appender import append
from .client import JournalClient
from .errors import RETRYABLE_STATUSES, JournalError
from .fragments import sha1_digest
from .grpc_client import GrpcJournalClient
from .journalspace import changes_from_yaml, dump_yaml, tree_from_journals
from .list_apply import apply_journals, list_journals
from .reader import open_reader
from .server.repair import repair

T = TypeVar("T")

CONTEXT = {"help_option_names": ["-h", "--help"]}
ENDPOINT_ENV = ENV["broker"]


# --------------------------------------------------------------------------
# broker


@click.group(context_settings=CONTEXT)
def broker() -> None:
    """Run gazette-trio's single-node journal server.

    It speaks Gazette's Journal gRPC API, so gazctl, Gazette clients and
    gazette-trio consumers can all use it. For development, tests and one
    machine; at scale run Gazette's replicated brokers instead.
    """


@broker.command(context_settings=CONTEXT)
@click.option(
    "--data-dir",
    # A file here is refused by serve's own one-line startup error.
    type=click.Path(path_type=Path),
    help="Directory for specs and fragments (created if missing).",
)
@click.option("--memory", is_flag=True, help="Keep everything in memory instead (lost on exit).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", "-p", default=8080, show_default=True, type=int, help="Port (0: any free port)."
)
@click.option(
    "--log-level", default="info", show_default=True, help="debug, info, warning or error."
)
@click.option(
    "--auth-keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of base64 keys (Gazette's --auth-keys): calls must carry a token one signed.",
)
@click.option(
    "--server-cert-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TLS certificate: the port speaks TLS only.",
)
@click.option(
    "--server-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key of --server-cert-file.",
)
@click.option(
    "--server-ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Require client certificates signed by this CA.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a non-loopback --host without auth keys and TLS.",
)
@click.option(
    "--scrub-interval",
    default="1h",
    show_default=True,
    help="How often stored fragments are re-verified against their SHA-1 (0s: never).",
)
@click.option(
    "--debug",
    is_flag=True,
    help="Show the traceback of a startup failure instead of its one-line message.",
)
def serve(
    data_dir: Path | None,
    memory: bool,
    host: str,
    port: int,
    log_level: str,
    auth_keys_file: Path | None,
    server_cert_file: Path | None,
    server_key_file: Path | None,
    server_ca_file: Path | None,
    insecure: bool,
    scrub_interval: str,
    debug: bool,
) -> None:
    """Serve journals from DATA-DIR until interrupted.

    Appends are fsynced before they are acknowledged; on restart the server
    recovers every acknowledged append and discards anything torn. A --host
    other than loopback needs --auth-keys-file and --server-cert-file (or
    --insecure): docs/security.md.

    \b
    Examples:
      gazette-trio broker serve --data-dir ./journals --port 8080
      gazette-trio broker serve --memory --port 0
    """
    from ..auth.settings import SecurityError, is_loopback, load
    from .durations import parse_duration
    from .server.serve import serve_journals

    try:
        scrub_seconds = parse_duration(scrub_interval.strip()).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scrub-interval") from None

    try:
        security = load(
            auth_keys_file=auth_keys_file,
            server_cert_file=server_cert_file,
            server_key_file=server_key_file,
            server_ca_file=server_ca_file,
            insecure=insecure,
        )
    except SecurityError as exc:
        raise click.UsageError(str(exc)) from None
    if not is_loopback(host) and not security.secured:
        if not insecure:
            raise click.UsageError(
                f"--host {host} without --auth-keys-file and --server-cert-file: anyone who "
                "can reach it could read, append and apply anything (--insecure accepts that)"
            )
        click.echo(f"WARNING: INSECURE: listening on {host} without auth keys and TLS", err=True)

    if data_dir is None and not memory:
        raise click.UsageError("give --data-dir DIR, or --memory for a throwaway server")
    if data_dir is not None and memory:
        raise click.UsageError("--data-dir and --memory exclude each other")
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def main() -> None:
        async with aio.asyncio_island(), trio.open_nursery() as nursery:
            try:
                core, _ = await nursery.start(
                    functools.partial(
                        serve_journals,
                        data_dir,
                        host,
                        port,
                        verifier=security.verifier,
                        tls=security.server_tls,
                        scrub_interval=scrub_seconds,
                    )
                )
            except Exception as exc:
                problem = journal_server_problem(exc, data_dir, host, port)
                if problem is None:
                    raise
                raise problem from exc
            click.echo(f"journal server listening on {core.endpoint}", err=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    click.echo(f"received {signal.Signals(signum).name}; stopping", err=True)
                    nursery.cancel_scope.cancel()
                    break

    # A port in use, an unusable DATA-DIR or one another process serves:
    # one line and exit 2 (a traceback with --debug).
    with exit_on_startup_error(debug):
        trio.run(main)


broker.add_command(repair)


# --------------------------------------------------------------------------
# journals


def _run(endpoint: str, body: Callable[[JournalClient], Awaitable[T]]) -> T:
    """Run `body` with a client of `endpoint`, turning errors into messages."""

    async def main() -> tuple[bool, Any]:
        async with aio.asyncio_island():
            try:
                async with aio.Channel(endpoint) as channel:
                    return True, await body(GrpcJournalClient(channel))
            except (aio.RpcError, JournalError, ValidationError, ValueError, OSError) as exc:
                return False, exc

    ok, value = trio.run(main)
    if not ok:
        raise click.ClickException(f"{endpoint}: {value}")
    return value  # type: ignore[no-any-return]


def _format_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--format",
        "-o",
        "fmt",
        type=click.Choice(["table", "json", "yaml"]),
        default="table",
        show_default=True,
        help="Output format.",
    )


@dataclass(frozen=True)
class _Target:
    """The group's `-e`/`-c`, which a command's own take precedence over."""

    endpoint: str | None
    config: Path | None


def _with_endpoint(fn: Callable[..., T]) -> Callable[..., T]:
    """Give a `journals` command `-e`/`-c` of its own, and call it with the
    resolved endpoint as its first argument."""

    @endpoint_options("broker")
    @click.pass_obj
    def command(
        group: _Target | None,
        /,
        *args: Any,
        endpoint: str | None = None,
        config: Path | None = None,
        **kwargs: Any,
    ) -> T:
        group = group or _Target(None, None)
        chosen = resolve("broker", endpoint or group.endpoint, config or group.config)
        return fn(chosen, *args, **kwargs)

    command.__doc__ = fn.__doc__
    command.__name__ = fn.__name__
    return command


@click.group(context_settings=CONTEXT)
@endpoint_options("broker")
@click.pass_context
def journals(ctx: click.Context, endpoint: str | None, config: Path | None) -> None:
    """List, apply, append to, read and inspect journals of a broker.

    Works against gazette-trio's journal server and Gazette's brokers alike.

    \b
    Examples:
      gazette-trio journals list -e localhost:8080 -l prefix=examples/
      gazette-trio journals list -c member.toml
      gazette-trio journals apply -f journals.yaml
      echo hello | gazette-trio journals append examples/greetings
      gazette-trio journals read examples/greetings --offset 0
    """
    ctx.obj = _Target(endpoint, config)


@journals.command("list", context_settings=CONTEXT)
@click.option(
    "--selector", "-l", default="", help="Label selector, e.g. 'prefix=a/, topic in (x,y)'."
)
@_format_option()
@_with_endpoint
def list_command(endpoint: str, selector: str, fmt: str) -> None:
    """List journals matching a label selector.

    `--format yaml` prints a journalspace tree (shared fields hoisted to
    parent nodes) that `journals apply` accepts back, revisions included.

    \b
    Examples:
      gazette-trio journals list
      gazette-trio journals list -l 'content-type=application/x-ndjson'
      gazette-trio journals list -l prefix=examples/ --format yaml > journals.yaml
    """
    try:
        parsed = L.parse_selector(selector) if selector.strip() else None
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--selector") from None
    found = _run(endpoint, lambda c: list_journals(c, parsed))
    if fmt == "yaml":
        if found:
            click.echo(dump_yaml(tree_from_journals(found).to_dict()), nl=False)
        return
    if fmt == "json":
        # The ListResponse in protobuf's JSON mapping, as `shards list -o json`
        # and gazctl print theirs (so 64-bit revisions are strings in both).
        response = pb.ListResponse(status=pb.Status.OK, journals=list(found))
        click.echo(response.to_json(casing=betterproto2.Casing.SNAKE, indent=2))
        return
    from rich.table import Table

    # Names are never cut: they wrap (fold) instead, and columns that say
    # nothing for any journal are left out.
    table = Table()
    table.add_column("Name", overflow="fold")
    table.add_column("Revision", justify="right")
    with_flags = any(j.spec is not None and j.spec.flags for j in found)
    with_suspend = any(j.spec is not None and j.spec.suspend is not None for j in found)
    if with_flags:
        table.add_column("Flags")
    if with_suspend:
        table.add_column("Suspended")
    table.add_column("Labels", overflow="fold")
    for j in found:
        spec = j.spec or pb.JournalSpec()
        labels = ", ".join(f"{n}={v}" if v else n for n, v in L.pairs_of(spec.labels))
        row = [spec.name, str(j.mod_revision)]
        if with_flags:
            row.append(_flags(spec.flags) if spec.flags else "")
        if with_suspend:
            suspend = spec.suspend
            level = suspend.level if suspend is not None else 0
            row.append(pb.JournalSpecSuspendLevel(level).name if level else "")
        table.add_row(*row, labels)
    _print_table(table)


def _print_table(table: Any) -> None:
    """Print a rich table at the terminal's width, or 200 columns into a
    pipe, without trailing blanks (grep and diff friendly)."""
    import io
    import os
    import shutil

    from rich.console import Console

    width = shutil.get_terminal_size((200, 24)).columns if os.isatty(1) else 200
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, highlight=False).print(table)
    click.echo("\n".join(line.rstrip() for line in buffer.getvalue().splitlines()))


def _flags(flags: int) -> str:
    try:
        return pb.JournalSpecFlag(flags).name
    except ValueError:
        return str(flags)


@journals.command("apply", context_settings=CONTEXT)
@click.option(
    "--specs",
    "-f",
    "specs_file",
    type=click.File("r"),
    default="-",
    show_default=True,
    help="Journalspace YAML file ('-' for stdin).",
)
@click.option("--dry-run", is_flag=True, help="Print the changes instead of applying them.")
@_with_endpoint
def apply_command(endpoint: str, specs_file: Any, dry_run: bool) -> None:
    """Create, update or delete journals from a journalspace YAML tree.

    A node whose name ends in '/' holds fields its children inherit; other
    nodes are journals. `revision` is the mod revision you expect (0 or
    absent: the journal must not exist yet); `delete: true` removes it. All
    changes apply together, or none do.

    \b
    Example journals.yaml:
      name: examples/
      replication: 1
      labels:
      - {name: content-type, value: application/x-ndjson}
      fragment: {length: 4194304, compression_codec: NONE, refresh_interval: 1m0s}
      children:
      - name: examples/clicks
      - name: examples/views

    \b
    Examples:
      gazette-trio journals apply -f journals.yaml
      gazette-trio journals list -l prefix=examples/ -o yaml | gazette-trio journals apply
    """
    try:
        changes = changes_from_yaml(specs_file.read())
    except (ValidationError, ValueError) as exc:
        raise click.ClickException(f"{specs_file.name}: {exc}") from None
    if dry_run:
        for change in changes:
            verb = "delete" if change.delete else "upsert"
            name = change.delete or (change.upsert.name if change.upsert else "")
            click.echo(f"{verb} {name} (expect revision {change.expect_mod_revision})")
        return
    revision = _run(endpoint, lambda c: apply_journals(c, changes))
    click.echo(f"applied {len(changes)} change(s) at revision {revision}", err=True)


@journals.command("append", context_settings=CONTEXT)
@click.argument("journal")
@click.option(
    "--file",
    "-f",
    "source",
    type=click.File("rb"),
    default="-",
    show_default=True,
    help="Content to append ('-' for stdin).",
)
@click.option("--data", "-d", default=None, help="Append this text instead of reading --file.")
@_format_option()
@_with_endpoint
def append_command(endpoint: str, journal: str, source: Any, data: str | None, fmt: str) -> None:
    """Append content to JOURNAL, atomically.

    \b
    Examples:
      echo '{"msg": "hello"}' | gazette-trio journals append examples/greetings
      gazette-trio journals append examples/greetings -d 'one line'
      gazette-trio journals append examples/blobs -f blob.bin --format json
    """
    content = data.encode() if data is not None else source.read()
    response = _run(endpoint, lambda c: append(c, journal, content))
    commit = response.commit or pb.Fragment()
    if fmt == "table":
        click.echo(f"appended [{commit.begin}, {commit.end}) to {journal}", err=True)
        return
    out = {
        "journal": journal,
        "begin": commit.begin,
        "end": commit.end,
        "sha1": sha1_digest(commit.sum).hex(),
        "registers": [{"name": n, "value": v} for n, v in L.pairs_of(response.registers)],
    }
    click.echo(json.dumps(out, indent=2) if fmt == "json" else dump_yaml(out), nl=fmt == "json")


@journals.command("read", context_settings=CONTEXT)
@click.argument("journal")
@click.option(
    "--offset", default=0, show_default=True, type=int, help="First offset (-1: the write head)."
)
@click.option("--end-offset", default=0, type=int, help="Stop before this offset (0: no bound).")
@click.option(
    "--block/--no-block",
    default=False,
    show_default=True,
    help="Wait for more content at the write head.",
)
@_with_endpoint
def read_command(endpoint: str, journal: str, offset: int, end_offset: int, block: bool) -> None:
    """Write JOURNAL's content from --offset to stdout.

    Without --block it stops at the write head; with it, it waits for new
    appends until interrupted. Offset jumps (removed content) are reported
    on stderr.

    \b
    Examples:
      gazette-trio journals read examples/greetings
      gazette-trio journals read examples/greetings --offset 1024 --end-offset 2048
      gazette-trio journals read examples/greetings --offset -1 --block
    """
    out = sys.stdout.buffer

    async def body(client: JournalClient) -> int:
        async with open_reader(
            client, journal, offset, block=block, end_offset=end_offset
        ) as reader:
            async for chunk in reader:
                if reader.jumps and reader.jumps[-1].to_offset == chunk.offset:
                    jump = reader.jumps[-1]
                    click.echo(f"offset jump: {jump.from_offset} -> {jump.to_offset}", err=True)
                out.write(chunk.content)
                out.flush()
            return reader.offset

    try:
        _run(endpoint, body)
    except KeyboardInterrupt:
        pass


@journals.command("fragments", context_settings=CONTEXT)
@click.argument("journal")
@_format_option()
@_with_endpoint
def fragments_command(endpoint: str, journal: str, fmt: str) -> None:
    """List the fragments of JOURNAL: offsets, sizes, SHA-1 sums.

    \b
    Examples:
      gazette-trio journals fragments examples/greetings
      gazette-trio journals fragments examples/greetings --format json
    """

    async def body(client: JournalClient) -> list[pb.Fragment]:
        out: list[pb.Fragment] = []
        token = 0
        while True:
            response = await client.list_fragments(
                pb.FragmentsRequest(journal=journal, next_page_token=token)
            )
            if response.status != pb.Status.OK:
                raise JournalError(journal, response.status, "list fragments")
            out.extend(f.spec for f in response.fragments if f.spec is not None)
            token = response.next_page_token
            if not token:
                return out

    found = _run(endpoint, body)
    rows = [
        {
            "begin": f.begin,
            "end": f.end,
            "size": f.end - f.begin,
            "sha1": sha1_digest(f.sum).hex(),
            "mod_time": f.mod_time,
        }
        for f in found
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if fmt == "yaml":
        click.echo(dump_yaml(rows), nl=False)
        return
    from rich.table import Table

    table = Table("Begin", "End", "Size", "SHA-1", "Persisted")
    for row in rows:
        table.add_row(
            str(row["begin"]),
            str(row["end"]),
            str(row["size"]),
            str(row["sha1"]),
            "yes" if row["mod_time"] else "no (spool)",
        )
    _print_table(table)


def _parse_selector_option(selector: str) -> pb.LabelSelector | None:
    try:
        return L.parse_selector(selector) if selector.strip() else None
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--selector") from None


def _fully_suspended(spec: pb.JournalSpec | None) -> bool:
    return (
        spec is not None
        and spec.suspend is not None
        and spec.suspend.level == pb.JournalSpecSuspendLevel.FULL
    )


@journals.command("suspend", context_settings=CONTEXT)
@click.option("--selector", "-l", required=True, help="Label selector of the journals to suspend.")
@click.option(
    "--force", "-f", is_flag=True, help="Suspend journals even if they have local fragments."
)
@_with_endpoint
def suspend_command(endpoint: str, selector: str, force: bool) -> None:
    """Suspend idle journals, so brokers give them fewer or no replicas.

    An empty journal is suspended fully; one with content only partially, and
    (without --force) only once its fragments are all in a fragment store. A
    suspended journal resumes on its next append, at its old write head.

    \b
    Examples:
      gazette-trio journals suspend -l prefix=examples/old/
      gazette-trio journals suspend -l name=examples/clicks --force
    """
    parsed = _parse_selector_option(selector)
    mode = pb.AppendRequestSuspend.NOW if force else pb.AppendRequestSuspend.IF_FLUSHED

    async def body(client: JournalClient) -> list[tuple[str, str]]:
        out = []
        for journal in await list_journals(client, parsed):
            name = journal.spec.name if journal.spec else ""
            if _fully_suspended(journal.spec):
                out.append((name, "already fully suspended"))
                continue
            response = await client.append(pb.AppendRequest(journal=name, suspend=mode), [])
            if response.status not in (pb.Status.OK, pb.Status.SUSPENDED):
                raise JournalError(name, response.status, "suspend")
            out.append((name, "suspended" if response.status == pb.Status.SUSPENDED else "busy"))
        return out

    for name, outcome in _run(endpoint, body):
        if outcome == "busy":
            outcome = "not suspended: it has fragments not yet in a store (--force suspends it)"
        click.echo(f"{name}: {outcome}")


async def _append_retrying(
    client: JournalClient, request: pb.AppendRequest, attempts: int = 20
) -> pb.AppendResponse:
    """An empty append, retried while the brokers answer a status that says
    their routing is converging (a resumed journal gaining its replicas)."""
    for attempt in range(attempts - 1):
        response = await client.append(request, [])
        if response.status not in RETRYABLE_STATUSES:
            return response
        await trio.sleep(min(2.0, 0.05 * 2**attempt))
    return await client.append(request, [])


@journals.command("reset-head", context_settings=CONTEXT)
@click.option("--selector", "-l", required=True, help="Label selector of the journals to reset.")
@_with_endpoint
def reset_head_command(endpoint: str, selector: str) -> None:
    """Reset each journal's write head to the largest offset its brokers know.

    After a loss of broker consistency (an etcd failure, say) appends can
    fail with INDEX_HAS_GREATER_OFFSET; an empty append at the indexed head
    moves the head there. Suspension is left as it is; fully suspended
    journals are skipped.

    \b
    Example:
      gazette-trio journals reset-head -l prefix=examples/
    """
    parsed = _parse_selector_option(selector)

    async def body(client: JournalClient) -> list[tuple[str, str]]:
        out = []
        for journal in await list_journals(client, parsed):
            name = journal.spec.name if journal.spec else ""
            if _fully_suspended(journal.spec):
                continue
            head = -1
            request = pb.ReadRequest(journal=name, offset=-1, metadata_only=True)
            async with client.read(request) as responses:
                async for response in responses:
                    if response.status not in (pb.Status.OK, pb.Status.OFFSET_NOT_YET_AVAILABLE):
                        raise JournalError(name, response.status, "read the write head")
                    head = response.offset
                    break
            if head < 0:
                raise JournalError(name, pb.Status.OK, "no write head in the read response")
            keep = pb.AppendRequest(journal=name, offset=head, suspend=pb.AppendRequestSuspend.KEEP)
            try:
                appended = await _append_retrying(client, keep)
            except aio.RpcError as exc:
                if "invalid Suspend variant" not in str(exc):
                    raise
                # A broker older than SUSPEND_KEEP (Gazette v0.103 and before)
                # refuses it; its own gazctl resets with a plain empty append,
                # which also resumes a partially suspended journal.
                plain = pb.AppendRequest(journal=name, offset=head)
                appended = await _append_retrying(client, plain)
            if appended.status == pb.Status.WRONG_APPEND_OFFSET:
                out.append((name, "not reset (raced writes)"))
            elif appended.status != pb.Status.OK:
                raise JournalError(name, appended.status, "reset the write head")
            else:
                out.append((name, f"write head reset at {head}"))
        return out

    for name, outcome in _run(endpoint, body):
        click.echo(f"{name}: {outcome}")
