"""`gazette-trio serve config.toml`: one member process, assembled from its config.

The process, in order:

1. reads and validates the config (a bad one exits 2 naming the key), sets
   up logging, and imports the Application class (the config file's
   directory is put on `sys.path`, so `module:Class` may name a module that
   sits beside the config); the class is called with the
   `[application.settings]` table as keyword arguments;
2. opens the asyncio island grpclib needs, then etcd (a real one, or with no
   `[etcd]` an embedded MemoryEtcd persisted under `data_dir/etcd`) and the
   journals (a broker endpoint, or with no `[broker]` an embedded journal
   server over `data_dir/journals`);
3. binds the gRPC port and serves on it the Shard API, the Journal API when
   the journal server is embedded, and any services the application offers
   (`grpc_services(consumer)`, optional);
4. creates the journals and shards the config declares (and, on the
   embedded journal server, any missing recovery-log journals of declared
   shards), joins the consumer group and runs its shards;
5. serves /metrics, /status and /status.json over HTTP unless disabled.

Declared journals and shards are applied in batches that fit an etcd
transaction (128 operations), as Gazette's ApplyShardsInBatches.

SIGINT or SIGTERM shut down gracefully: the member marks itself exiting
(`ConsumerSpec.exiting`, as Gazette's members do), the group moves its
shards away where it has room (transactions in flight commit or are
replayed by the next primary), then the process exits 0. A second signal exits at
once with status 130.

This module owns the assembly and the process's signals; every part it
assembles lives in its own module.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import trio

from .. import aio, limits
from ..allocator import ApplyConflict, item_key
from ..allocator.apply import MAX_TXN_OPS, apply_in_batches
from ..allocator.state import State
from ..auth.verifier import guard
from ..broker import LocalJournalClient
from ..broker.client import JournalClient
from ..broker.errors import JournalError
from ..broker.list_apply import apply_journals, list_journals, upsert
from ..broker.routed import open_routed_client
from ..broker.server import FileStorage, JournalServerCore, journal_service
from ..broker.server.serve import scrub_periodically
from ..consumer import shard_spec
from ..consumer.contracts import Application
from ..consumer.driver import Progress
from ..consumer.member import Consumer, open_consumer
from ..consumer.queries import QueryRouter
from ..consumer.shard import LocalShard, ShardObserver, remove_playback_leftovers
from ..consumer.transaction import Timings, Transaction
from ..etcd import Etcd, EtcdError, GrpcEtcd, MemoryEtcd
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from .config import Config, ConfigError, load_config_or_exit
from .datadir import lock_data_dir
from .http import StatusServer
from .logs import configure_logging
from .metrics import REGISTRY, JournalServerCollector, ShardMetrics
from .security import member_security
from .startup import (
    StartupError,
    address_problem,
    exit_on_startup_error,
    find,
    is_address_problem,
    path_problem,
)
from .status import MemberStatus, ReplicaStatus, ShardStatus, SourceStatus, StatusSnapshot

log = logging.getLogger(__name__)

EXIT_ON_SECOND_SIGNAL = 130


@click.command("serve")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="The member's gRPC port: [member] port (0: any free port).",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="The /status and /metrics port: [http] port.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    help="[log] level.",
)
@click.option(
    "--debug",
    is_flag=True,
    help="Show the traceback of a startup failure instead of its one-line message.",
)
def serve(
    config: Path, port: int | None, http_port: int | None, log_level: str | None, debug: bool
) -> None:
    """Run a consumer member from CONFIG (a TOML file).

    \b
    With no [etcd] and no [broker] table in CONFIG, everything runs in this
    one process: an embedded journal server and etcd, persisted under
    data_dir. SIGINT/SIGTERM shut down gracefully; a second signal exits at
    once.

    \b
    Examples:
      gazette-trio serve examples/word_count/config.toml
      gazette-trio serve config.toml --port 9000 --http-port 9010 --log-level debug
      GAZETTE_TRIO_MEMBER__PORT=9000 gazette-trio serve config.toml

    \b
    An option overrides its config key, as its GAZETTE_TRIO_ variable does.
    A failure to start (a port in use, an unusable data_dir, etcd out of
    reach, data_dir held by another process) is one line naming the key,
    and exit status 2; --debug shows its traceback instead.
    """
    # Options are applied as the variables that name the same keys, so they
    # are validated, and named in errors, exactly as the config file's are.
    env = dict(os.environ)
    for variable, value in (
        ("GAZETTE_TRIO_MEMBER__PORT", port),
        ("GAZETTE_TRIO_HTTP__PORT", http_port),
        ("GAZETTE_TRIO_LOG__LEVEL", log_level.lower() if log_level else None),
    ):
        if value is not None:
            env[variable] = str(value)
    cfg = load_config_or_exit(config, env)
    configure_logging(cfg.log.level, cfg.log.format)
    app = load_application(cfg, config)
    member_security(cfg)  # an unusable or unsafe [security] exits 2 before anything starts
    with exit_on_startup_error(debug):
        trio.run(run_process, cfg, app)


def load_application(cfg: Config, config_path: Path) -> Application:
    """Import and build the Application; a problem exits 2 naming the key."""
    try:
        cls = cfg.application.load(config_path)
    except ConfigError as exc:
        raise click.exceptions.Exit(_config_exit(exc)) from None
    try:
        app = cls(**cfg.application.settings)
    except TypeError as exc:
        click.echo(
            f"Error: bad config: {config_path}: application.settings = "
            f"{cfg.application.settings!r}: {cfg.application.module} does not accept them: {exc}",
            err=True,
        )
        raise click.exceptions.Exit(2) from None
    for method in ("new_store", "new_message", "consume_message", "finalize_txn"):
        if not callable(getattr(app, method, None)):
            click.echo(
                f"Error: bad config: {config_path}: application.module = {cfg.application.module!r}: "
                f"expected an Application (it has no {method}())",
                err=True,
            )
            raise click.exceptions.Exit(2)
    return app  # type: ignore[no-any-return]


def _config_exit(exc: ConfigError) -> int:
    click.echo(f"Error: bad config: {exc}", err=True)
    return 2


async def run_process(cfg: Config, app: Application) -> None:
    """The whole process: serve until a signal, then leave gracefully."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            member_scope = trio.CancelScope()
            draining = trio.Event()
            joined = trio.Event()

            async def run() -> None:
                try:
                    with member_scope:
                        await run_member(cfg, app, draining=draining, joined=joined)
                except Exception as exc:
                    problem = None if joined.is_set() else _data_dir_problem(exc, cfg.data_dir)
                    if problem is None:
                        raise
                    raise problem from exc
                nursery.cancel_scope.cancel()

            nursery.start_soon(run)
            async for signum in signals:
                name = signal.Signals(signum).name
                if draining.is_set():
                    log.warning("second signal (%s): exiting now", name)
                    os._exit(EXIT_ON_SECOND_SIGNAL)
                draining.set()
                if not joined.is_set():
                    log.info("%s while starting: stopping", name)
                    member_scope.cancel()
                else:
                    log.info("%s: leaving the group gracefully (send it again to exit now)", name)


def _data_dir_problem(exc: BaseException, data_dir: Path) -> StartupError | None:
    """A file under `data_dir` that stopped the start (the embedded etcd's or
    journals' directory a file, a read-only part, ...), named by the key."""
    bad = find(exc, OSError)
    if bad is None or bad.filename is None:
        return None
    root = Path(data_dir).absolute()
    if not Path(os.fsdecode(bad.filename)).absolute().is_relative_to(root):
        return None
    return path_problem(bad, "data_dir", root)


async def run_member(
    cfg: Config,
    app: Application,
    *,
    draining: trio.Event | None = None,
    joined: trio.Event | None = None,
    task_status: trio.TaskStatus[Endpoints] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one member until `draining` is set (then leave gracefully) or cancelled."""
    # Before any server is built: each reads the process's limits as it starts.
    limits.configure(cfg.limits.to_limits())
    data_dir = Path(cfg.data_dir)
    # Tokens and TLS (docs/security.md): refused here, before anything
    # listens, if the member would be exposed without them.
    secured = member_security(cfg)
    for warning in secured.warnings:
        log.warning("%s", warning)
    security = secured.security
    verifier = security.verifier
    # Every channel this process opens (brokers, peers' Stat proxies, the
    # application's own clients) dials and signs with the member's settings.
    aio.set_dial_credentials(security.dial)
    async with aio.asyncio_island(), contextlib.AsyncExitStack() as stack:
        try:
            os.makedirs(data_dir, exist_ok=True)
            # One process per data directory: embedded etcd, journals and
            # shard state under it have a single writer (docs/cli.md).
            stack.enter_context(lock_data_dir(data_dir))
        except OSError as exc:
            raise path_problem(exc, "data_dir", data_dir) from exc
        etcd = await stack.enter_async_context(_open_etcd(cfg, data_dir, security.etcd_tls))
        # Bind the port first: the member's advertised endpoint names it,
        # and the member joins the group before its services are built.
        sock = stack.enter_context(_bind(cfg.member.host, cfg.member.port))
        if cfg.http.enabled and cfg.http.port:
            # The HTTP server starts after the member joined the group; a
            # port taken would make it join and leave at once, moving shards
            # around the group for nothing. A trial bind finds it first.
            with _bind(cfg.http.host, cfg.http.port, key="http.port", remedy="--http-port"):
                pass
        endpoint = secured.advertise(cfg.member.advertised_endpoint(sock.getsockname()[1]))
        grpc_services: list[aio.Service] = []

        core: JournalServerCore | None = None
        journals: JournalClient
        if cfg.embedded_broker:
            core = JournalServerCore(FileStorage(data_dir / "journals"), endpoint=endpoint)
            stack.callback(core.close)
            collector = JournalServerCollector(core)
            REGISTRY.register(collector)
            stack.callback(REGISTRY.unregister, collector)
            journals = LocalJournalClient(core)
            grpc_services.append(journal_service(core, verifier))
        else:
            assert cfg.broker is not None
            # Reads and appends go straight to each journal's broker, as
            # Gazette's clients dispatch them; the configured one proxies
            # until a route is known.
            journals = await stack.enter_async_context(
                open_routed_client(cfg.broker.endpoint, zone=cfg.member.zone)
            )

        try:
            await create_declared(cfg, etcd, journals, embedded=core is not None)
        except BaseException as exc:
            unreachable = find(exc, aio.Unavailable)
            if cfg.broker is None or unreachable is None:
                raise
            raise StartupError(
                f"broker.endpoint = {cfg.broker.endpoint}: cannot reach the broker "
                f"({unreachable}); start it, fix broker.endpoint, or leave [broker] out "
                "to run the embedded journal server"
            ) from exc

        # Under the data directory's lock, playback directories there are a
        # killed predecessor's: they would only take up disk.
        removed, size = await trio.to_thread.run_sync(
            remove_playback_leftovers, data_dir / "member"
        )
        if removed:
            log.info(
                "removed %d playback director%s (%.1f MB) left by a previous process",
                removed,
                "y" if removed == 1 else "ies",
                size / 1e6,
            )
        observer = MetricsObserver(core)
        consumer = await stack.enter_async_context(
            open_consumer(
                app,
                etcd=etcd,
                journals=journals,
                root=cfg.group_prefix,
                zone=cfg.member.zone,
                suffix=cfg.member.suffix,
                endpoint=endpoint,
                shard_limit=cfg.member.shard_limit,
                data_dir=data_dir / "member",
                lease_ttl=max(1, int(cfg.etcd.lease_ttl.total_seconds())) if cfg.etcd else 20,
                observer=observer,
                verifier=verifier,
            )
        )
        grpc_services.append(consumer.api.grpc_service())
        offer = getattr(app, "grpc_services", None)
        if callable(offer):
            grpc_services.extend(guard(service, verifier) for service in offer(consumer))
        # JSON query routes (consumer.queries): answered on the HTTP port,
        # forwarded between members over this gRPC port.
        queries = QueryRouter(app, consumer)
        if queries.routes:
            grpc_services.append(guard(queries.grpc_service(), verifier))
        nursery = await stack.enter_async_context(trio.open_nursery())
        await nursery.start(
            functools.partial(aio.serve, grpc_services, sock=sock, tls=security.server_tls)
        )
        if core is not None:
            nursery.start_soon(scrub_periodically, core)

        http_port = None
        if cfg.http.enabled:
            source = secured.noted(MemberStatusSource(cfg, consumer, observer, core))
            status_server = StatusServer(
                source,
                verifier=verifier,
                tls=security.http_tls,
                queries=queries if queries.routes else None,
            )
            try:
                http_port = await nursery.start(status_server.serve, cfg.http.host, cfg.http.port)
            except BaseException as exc:
                bad = find(exc, OSError)
                if bad is None or not is_address_problem(bad):
                    raise
                raise address_problem(
                    bad, "http.port", cfg.http.host, cfg.http.port, "--http-port"
                ) from exc

        # What is live now is long-lived: keep the collector off it.
        gc.collect()
        gc.freeze()
        # Messages of open transactions outlive gen0 in bulk; a larger gen0
        # threshold keeps full collections rare (measured: 0.6x throughput
        # of a word count without it; docs/benchmarks.md).
        gc.set_threshold(50_000, 20, 20)
        http_scheme = "https" if security.http_tls is not None else "http"
        endpoints = Endpoints(
            grpc=endpoint,
            http=f"{http_scheme}://{cfg.http.host}:{http_port}" if http_port else None,
        )
        log.info(
            "serving consumer group %s as %s/%s on %s%s",
            cfg.group_prefix,
            cfg.member.zone,
            cfg.member.suffix,
            endpoint,
            f"; status at {endpoints.http}/status" if endpoints.http else "",
        )
        if joined is not None:
            joined.set()
        task_status.started(endpoints)
        if draining is None:
            await trio.sleep_forever()
        await draining.wait()
        log.info("draining: waiting for the group to move this member's shards")
        await consumer.drain()
        log.info("drained; stopping")
        nursery.cancel_scope.cancel()


@dataclass(frozen=True)
class Endpoints:
    grpc: str
    http: str | None


@contextlib.contextmanager
def _bind(
    host: str, port: int, *, key: str = "member.port", remedy: str = "--port"
) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise address_problem(exc, key, host, port, remedy) from exc
    try:
        yield sock
    finally:
        sock.close()


@contextlib.asynccontextmanager
async def _open_etcd(
    cfg: Config, data_dir: Path, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Etcd]:
    if cfg.etcd is None:
        os.makedirs(data_dir / "etcd", exist_ok=True)
        async with MemoryEtcd.open(data_dir / "etcd" / "store") as etcd:
            # The embedded etcd is this process's alone: leases it holds are
            # a previous run's. Revoking them now frees the member key at
            # once, rather than after the old lease's TTL.
            for lease_id in sorted(etcd.store.leases):
                await etcd.revoke(lease_id)
            yield etcd
    else:
        # One endpoint is used; list several for documentation's sake, the
        # first is dialed (etcd's own proxying covers the rest).
        endpoint = cfg.etcd.endpoints[0]
        async with GrpcEtcd.open(endpoint, tls=tls) as etcd:
            await _reach_etcd(etcd, endpoint, cfg.group_prefix)
            yield etcd


ETCD_REACH_TIMEOUT = 10.0
"""Seconds a starting member waits for etcd's first answer before giving up."""


async def _reach_etcd(etcd: GrpcEtcd, endpoint: str, prefix: str) -> None:
    """One read before anything else, so that an etcd out of reach stops the
    start in bounded time with a line naming `etcd.endpoints`, rather than
    failing later inside whichever part asked first."""
    remedy = "start etcd there, fix etcd.endpoints, or leave [etcd] out to run an embedded one"
    with trio.move_on_after(ETCD_REACH_TIMEOUT) as scope:
        try:
            await etcd.get(prefix)
        except EtcdError as exc:
            raise StartupError(
                f"etcd.endpoints = {endpoint}: cannot reach etcd ({exc}); {remedy}"
            ) from exc
    if scope.cancelled_caught:
        raise StartupError(
            f"etcd.endpoints = {endpoint}: no answer from etcd within "
            f"{ETCD_REACH_TIMEOUT:.0f} s; {remedy}"
        )


# ----------------------------------------------------------------------------
# Declared journals and shards


async def create_declared(
    cfg: Config, etcd: Etcd, journals: JournalClient, *, embedded: bool
) -> None:
    """Create (or update) the journals and shards the config declares."""
    declared = cfg.declared_journals()
    shards = cfg.declared_shards()
    if embedded:
        declared += shard_spec.recovery_log_specs(declared, shards)
    for attempt in range(5):
        if not declared:
            break
        existing = {j.spec.name: j for j in await list_journals(journals) if j.spec is not None}
        changes = []
        for journal in declared:
            current = existing.get(journal.name)
            suspend = current.spec.suspend if current is not None and current.spec else None
            if suspend is not None:
                # Suspension belongs to the broker, not the config: keep it,
                # or its resume offset would be lost.
                journal = pb.JournalSpec.parse(bytes(journal))
                journal.suspend = suspend
            if current is None:
                changes.append(upsert(journal, expect_mod_revision=0))
                log.info("creating journal %s", journal.name)
            elif bytes(current.spec) != bytes(journal):  # type: ignore[arg-type]
                changes.append(upsert(journal, expect_mod_revision=current.mod_revision))
                log.info("updating journal %s to its declared spec", journal.name)
        if not changes:
            break
        try:
            # A real etcd takes at most 128 operations per transaction.
            await apply_journals(journals, changes, batch_size=MAX_TXN_OPS)
            break
        except JournalError as exc:
            # Another member of the group applied them at the same moment:
            # look again (theirs may already be what we declare).
            if exc.status != pb.Status.ETCD_TRANSACTION_FAILED or attempt == 4:
                raise
            log.info("declared journals changed concurrently; looking again")
    if shards:
        changes_: list[pc.ApplyRequestChange] = []
        for spec in shards:
            kv = await etcd.get(item_key(cfg.group_prefix, spec.id))
            if kv is None:
                changes_.append(pc.ApplyRequestChange(upsert=spec, expect_mod_revision=0))
                log.info("creating shard %s", spec.id)
            elif kv.value != bytes(spec):
                changes_.append(
                    pc.ApplyRequestChange(upsert=spec, expect_mod_revision=kv.mod_revision)
                )
                log.info("updating shard %s to its declared spec", spec.id)
        if changes_:
            try:
                await apply_in_batches(etcd, cfg.group_prefix, changes_)
            except ApplyConflict:
                # Another member applied them at the same moment: theirs stand.
                log.info("declared shards were changed concurrently by another member")


# ----------------------------------------------------------------------------
# Observability


class MetricsObserver(ShardObserver):
    """Feeds each shard's events into its Prometheus metrics."""

    def __init__(self, core: JournalServerCore | None) -> None:
        self.core = core
        self.shards: dict[str, ShardMetrics] = {}
        self._commit_started: dict[str, tuple[float, int]] = {}
        self._read: dict[str, int] = {}
        self.failed_progress: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        """Read-through offsets and write heads of shards that stopped FAILED
        here: their metrics are gone, but /status still shows their lag."""

    def metrics(self, shard: LocalShard) -> ShardMetrics:
        m = self.shards.get(shard.id)
        if m is None:
            m = self.shards[shard.id] = ShardMetrics(shard.id)
            self.failed_progress.pop(shard.id, None)
        return m

    def status_changed(self, shard: LocalShard, status: pc.ReplicaStatus) -> None:
        self.metrics(shard).set_status(status.code)

    def transaction_committed(
        self, shard: LocalShard, txn: Transaction, timings: Timings, checkpoint: pc.Checkpoint
    ) -> None:
        m = self.metrics(shard)
        m.phase_time("consume", max(0.0, timings.consuming))
        m.phase_time("stall", max(0.0, timings.stalled))
        self._commit_started[shard.id] = (trio.current_time(), txn.consumed)

    def transaction_completed(self, shard: LocalShard, progress: Progress) -> None:
        m = self.metrics(shard)
        started = self._commit_started.pop(shard.id, None)
        total = sum(progress.read_through.values())
        read = total - self._read.get(shard.id, total)
        self._read[shard.id] = total
        now = trio.current_time()
        if started is not None:
            m.transaction_committed(
                now=now,
                messages=started[1],
                bytes_read=max(0, read),
                commit_seconds=now - started[0],
            )
        for journal, offset in progress.read_through.items():
            head = self._write_head(journal)
            m.progress(journal, read_through=offset, write_head=head)

    def playback_started(self, shard: LocalShard, log: str) -> None:
        self.metrics(shard).playback_started()

    def playback_progress(self, shard: LocalShard, bytes_read: int) -> None:
        self.metrics(shard).playback_progress(bytes_read)

    def playback_caught_up(self, shard: LocalShard, bytes_read: int, seconds: float) -> None:
        self.metrics(shard).playback_caught_up(bytes_read, seconds)

    def stopped(self, shard: LocalShard) -> None:
        m = self.shards.pop(shard.id, None)
        if m is not None:
            if shard.status.code == pc.ReplicaStatusCode.FAILED:
                self.failed_progress[shard.id] = (dict(m.read_through), dict(m.write_heads))
            m.close()
        self._read.pop(shard.id, None)

    def _write_head(self, journal: str) -> int | None:
        if self.core is None:
            return None
        try:
            return self.core.write_head(journal)
        except Exception:
            return None


@dataclass
class MemberStatusSource:
    """The /status view of one member, from its allocator state and metrics."""

    cfg: Config
    consumer: Consumer
    observer: MetricsObserver
    core: JournalServerCore | None
    notes: list[str] = field(default_factory=list)

    async def snapshot(self) -> StatusSnapshot:
        state = self.consumer.session.state
        now = trio.current_time()
        members = []
        for m in state.members:
            process = m.spec.process_spec
            members.append(
                MemberStatus(
                    zone=m.zone,
                    suffix=m.suffix,
                    endpoint=process.endpoint if process else "",
                    shard_limit=m.spec.shard_limit,
                    assigned=state.member_total.get(m.key, 0),
                    exiting=m.exiting,
                )
            )
        local = state.local_member
        me = MemberStatus(
            zone=self.cfg.member.zone,
            suffix=self.cfg.member.suffix,
            endpoint=local.spec.process_spec.endpoint if local and local.spec.process_spec else "",
            shard_limit=local.spec.shard_limit if local else 0,
            assigned=state.member_total.get(state.local_key, 0),
            exiting=local is None or local.exiting,
        )
        shards = []
        for item in state.items:
            replicas = [
                ReplicaStatus(
                    zone=a.zone,
                    suffix=a.suffix,
                    code=a.status.code,
                    primary=a.slot == 0,
                    errors=tuple(a.status.errors),
                )
                for a in sorted(state.assignments_by_item.get(item.id, ()), key=lambda a: a.member)
            ]
            metrics = self.observer.shards.get(item.id)
            read_through: dict[str, int] = metrics.read_through if metrics else {}
            write_heads: dict[str, int] = metrics.write_heads if metrics else {}
            failed_here = any(
                r.code == pc.ReplicaStatusCode.FAILED
                and (r.zone, r.suffix) == (self.cfg.member.zone, self.cfg.member.suffix)
                for r in replicas
            )
            if metrics is None and failed_here:
                # Failed here: how far it got before, so its lag still shows.
                read_through, write_heads = self.observer.failed_progress.get(item.id, ({}, {}))
            sources = []
            for source in item.spec.sources:
                through = read_through.get(source.journal)
                head = self.observer._write_head(source.journal)
                if head is None:
                    head = write_heads.get(source.journal)
                sources.append(SourceStatus(source.journal, through, head))
            shards.append(
                ShardStatus(
                    id=item.id,
                    replicas=replicas,
                    sources=sources,
                    txn_rate=metrics.txn_rate.per_second(now) if metrics else None,
                    message_rate=metrics.message_rate.per_second(now) if metrics else None,
                    disabled=item.spec.disable,
                    labels=[
                        (label.name, label.value)
                        for label in (item.spec.labels.labels if item.spec.labels else [])
                    ],
                )
            )
        notes = list(self.notes)
        notes.extend(placement_warnings(state))
        if state.local_member is not None and state.local_member.exiting:
            notes.append("this member is exiting: its shards are moving to other members")
        return StatusSnapshot(
            group=self.cfg.group_prefix,
            member=me,
            members=members,
            shards=shards,
            taken_at=time.time(),  # wall time, for display (rates use the Trio clock)
            etcd_revision=state.revision,
            notes=notes,
        )


def placement_warnings(state: State) -> list[str]:
    """Shards whose replicas cannot all be placed: each replica (the primary
    and every hot standby) needs a member of its own, so a shard wanting
    more replicas than the group has members with room keeps some unplaced
    however long the allocator runs. One line per distinct replication."""
    room = sum(1 for m in state.members if not m.exiting and state.limit_of(m) > 0)
    short: dict[int, list[str]] = {}
    for item in state.items:
        if item.replication > room:
            short.setdefault(item.replication, []).append(item.id)
    warnings = []
    for wanted, ids in sorted(short.items()):
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        standbys = wanted - 1
        missing = wanted - room
        warnings.append(
            f"{'shard' if len(ids) == 1 else f'{len(ids)} shards'} {shown}: "
            f"{standbys} hot standb{'y' if standbys == 1 else 'ies'} wanted beside the "
            f"primary, but the group has {room} member{'' if room == 1 else 's'} with room "
            f"and each replica needs its own, so {missing} replica"
            f"{'' if missing == 1 else 's'} cannot be placed (start more members, or lower "
            "hot_standbys)"
        )
    return warnings


__all__ = [
    "Endpoints",
    "create_declared",
    "load_application",
    "placement_warnings",
    "run_member",
    "run_process",
    "serve",
]
