"""The errors a store raises, shared by every store in this package.

A store fails in a few distinct ways that the consumer runtime and the
application may want to tell apart: the store was fenced off by a newer
instance, a future the commit had to wait for failed, the store was used out
of order, or a blocking call was interrupted and the connection can no longer
be trusted. Each gets its own class here; messages name the shard and what
was expected.

This module owns the exception classes only.
"""

from __future__ import annotations

from ...errors import GazetteTrioError


class StoreError(GazetteTrioError):
    """Base class of the errors raised by the stores in this package."""


class FencedError(StoreError):
    """A newer instance of the shard's store took over: this one may no
    longer commit (the SQL checkpoint fence moved, or the recovery log's
    author register names another recorder)."""


class CommitDependencyError(StoreError):
    """A future the commit had to wait for (`wait_for`) failed, so the
    commit was abandoned. The failed future's error is the `__cause__`."""


class StoreStateError(StoreError):
    """The store was used out of order: a commit before restore, a
    transaction handle after its transaction started to commit, a store
    after `destroy()`, or after an earlier failure that left it unusable."""


def fenced_or_same(error: BaseException, fqn: str, log: str) -> BaseException:
    """`FencedError` if `error` says another author took the shard's recovery
    log over (its journal register no longer names this recorder), else
    `error` itself. The original is kept as `__cause__`."""
    from ...broker.errors import JournalError
    from ...protocol import protocol as pb
    from ...recoverylog.recorder import RecorderFencedError

    if isinstance(error, RecorderFencedError) or (
        isinstance(error, JournalError) and error.status == pb.Status.REGISTER_MISMATCH
    ):
        fenced = FencedError(
            f"recovery log {log} of shard {fqn} was taken over by another recorder "
            f"(a new primary): this instance may no longer commit ({error})"
        )
        fenced.__cause__ = error
        return fenced
    return error
