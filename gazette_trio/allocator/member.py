"""A member of a consumer group: lease, announcement, KeySpace, allocator.

`open_member` is what the consumer runtime runs for its process. Inside its
`async with` block the member is live:

- a lease is granted and kept alive (losing it ends the block with
  `LeaseLost`: every assignment under it is gone too);
- the member key `{root}/members/{zone}#{suffix}` holds its ConsumerSpec;
- the consumer root's KeySpace is loaded at the announcement's revision and
  watched, and a `StateView` keeps the group's `State` current;
- the allocator runs (acting only while this member leads).

The session offers what the runtime needs: the current `state`, change
notification (`observers`, `wait_for_change`, `wait_for_revision`),
`update_status` for a local assignment's ReplicaStatus, and `exit`, the
graceful departure: the member marks its spec `exiting`, the group moves
its shards away where it has room (standbys promoted first), and `exit`
returns once it holds none. Leaving the block stops the tasks and revokes the lease, which deletes
the member key and any assignment left.

The tasks run in the block's nursery; their failure cancels the block and
surfaces as the task's own error (not an ExceptionGroup).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import trio

from ..errors import AllocatorError
from ..etcd import Compare, Etcd, EtcdError, LeaseLost, LeaseNotFound, Put
from ..keyspace import KeySpace
from ..protocol import consumer as pc
from . import solver
from .allocate import MemberKeyMissing, Round, allocate
from .announce import Announcement, announce
from .model import keyspace, member_key
from .specs import validate_consumer_spec, validate_shard_spec
from .state import State, StateView

log = logging.getLogger(__name__)


class AssignmentChanged(AllocatorError):
    """A local assignment changed (or went away) before a status update."""


class NotAssigned(AllocatorError):
    """The item is not assigned to this member."""


class MemberSession:
    """A live member: see `open_member`."""

    def __init__(
        self,
        etcd: Etcd,
        root: str,
        spec: pc.ConsumerSpec,
        lease_id: int,
        announcement: Announcement,
        view: StateView,
    ) -> None:
        self.etcd = etcd
        self.root = root
        self.spec = spec
        self.lease_id = lease_id
        self.announcement = announcement
        self.view = view
        self.exited = trio.Event()

    @property
    def key(self) -> str:
        """This member's key under the root."""
        return self.view.local_key

    @property
    def keyspace(self) -> KeySpace:
        return self.view.keyspace

    @property
    def state(self) -> State:
        """The group as of the last change applied."""
        return self.view.state

    @property
    def observers(self) -> list[Callable[[State], None]]:
        """Called with each new State (synchronously, after each change)."""
        return self.view.observers

    async def wait_for_change(self, after_revision: int | None = None) -> State:
        """A State newer than `after_revision` (see `StateView.wait_for_change`)."""
        return await self.view.wait_for_change(after_revision)

    async def wait_for_revision(self, revision: int) -> State:
        return await self.view.wait_for_revision(revision)

    async def update_status(self, item_id: str, status: pc.ReplicaStatus) -> int:
        """Write this member's ReplicaStatus of `item_id`.

        Guarded by the assignment's mod revision as this member last saw it:
        raises `AssignmentChanged` if it moved meanwhile, `NotAssigned` if the
        item is not assigned here. Returns once the KeySpace reflects the
        write (its revision is returned).
        """
        local = self.state.local_item(item_id)
        if local is None:
            raise NotAssigned(f"shard {item_id} is not assigned to {self.key}")
        a = local.assignment
        result = await self.etcd.txn(
            [Compare.mod_revision(a.key, "=", a.kv.mod_revision)],
            [Put(a.key, bytes(status), ignore_lease=True)],
        )
        if not result.succeeded:
            raise AssignmentChanged(
                f"assignment {a.key} changed since revision {a.kv.mod_revision}"
            )
        await self.view.wait_for_revision(result.revision)
        return result.revision

    async def update_spec(self, spec: pc.ConsumerSpec) -> int:
        """Announce a new ConsumerSpec for this member (same zone and suffix)."""
        validate_consumer_spec(spec)
        revision = await self.announcement.update(bytes(spec))
        self.spec = spec
        await self.view.wait_for_revision(revision)
        return revision

    async def mark_exiting(self) -> None:
        """Announce that this member is leaving (`ConsumerSpec.exiting`): the
        group sheds its capacity and takes no new shards here."""
        if not self.spec.exiting:
            spec = pc.ConsumerSpec.parse(bytes(self.spec))
            spec.exiting = True
            await self.update_spec(spec)

    async def exit(self) -> None:
        """Leave gracefully: mark exiting, then wait until no shard is
        assigned here (as Gazette's, this waits for as long as the group has
        no room for them)."""
        await self.mark_exiting()
        await self.exited.wait()


@contextlib.asynccontextmanager
async def open_member(
    etcd: Etcd,
    root: str,
    spec: pc.ConsumerSpec,
    *,
    lease_ttl: int = 20,
    apply_delay: float = 0.03,
    announce_retry: float = 10.0,
    solve: Callable[..., solver.Solution] = solver.solve,
    on_round: Callable[[Round], None] | None = None,
    validate_item: Callable[[pc.ShardSpec], None] = validate_shard_spec,
) -> AsyncIterator[MemberSession]:
    """Join the consumer group under `root` as the member `spec` describes."""
    validate_consumer_spec(spec)
    pid = spec.process_spec.id  # type: ignore[union-attr]
    assert pid is not None
    key = member_key(root, pid.zone, pid.suffix)
    lease = await etcd.grant(lease_ttl)
    failure: list[BaseException] = []
    block_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:

            def guarded(
                fn: Callable[..., Awaitable[Any]], *args: Any
            ) -> Callable[..., Awaitable[None]]:
                """Run a background task whose failure ends the member."""

                async def run(
                    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                ) -> None:
                    try:
                        await fn(*args, task_status=task_status)
                    except Exception as exc:
                        failure.append(exc)
                        nursery.cancel_scope.cancel()

                return run

            try:
                await nursery.start(guarded(etcd.keep_alive, lease.id))
                announcement = await announce(
                    etcd, key, bytes(spec), lease.id, retry_interval=announce_retry
                )
                ks = keyspace(root, apply_delay=apply_delay, validate_item=validate_item)
                await ks.load(etcd, announcement.revision)
                view = StateView(ks, key)
                session = MemberSession(etcd, root, spec, lease.id, announcement, view)
                await nursery.start(guarded(ks.watch, etcd))

                async def run_allocator(
                    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                ) -> None:
                    await allocate(
                        etcd, view, solve=solve, on_round=on_round, task_status=task_status
                    )
                    session.exited.set()

                await nursery.start(guarded(run_allocator))
            except BaseException as exc:
                block_error = exc
                nursery.cancel_scope.cancel()
            else:
                try:
                    yield session
                except BaseException as exc:
                    block_error = exc
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        lease_ended = False
        with trio.move_on_after(5) as cleanup:
            cleanup.shield = True
            try:
                await etcd.revoke(lease.id)
            except LeaseNotFound:
                lease_ended = True
            except EtcdError as exc:
                log.info("member %s: lease %#x not revoked (%s)", key, lease.id, exc)
    if failure:
        cause = block_error if not isinstance(block_error, trio.Cancelled) else None
        error = failure[0]
        if isinstance(error, MemberKeyMissing) and lease_ended:
            # The key went with the lease: report the root cause.
            raise LeaseLost(lease.id, "expired; the member key went with it") from error
        raise error from cause
    if block_error is not None:
        raise block_error


__all__: Sequence[str] = ["AssignmentChanged", "MemberSession", "NotAssigned", "open_member"]
