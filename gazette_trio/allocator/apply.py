"""Applying ShardSpec changes to etcd, guarded by expected revisions.

The consumer's Apply RPC (and `shards apply`) upserts and deletes ShardSpecs
under `{root}/items/`. Each change names the item's mod revision it expects
(0: the shard must not exist; -1: do not check), and every change of a
request commits in one transaction or none does, as Gazette's ShardApply.
An upsert may carry `primary_hints`: they are written, as Gazette's JSON,
under the shard's primary hints key (`{hint_prefix}/{id}.primary`) in the
same transaction, so a shard can be created with (or pointed at) a
recovery-log state. Changes are validated first (Gazette's
ApplyRequest_Change.Validate); an invalid one is rejected naming the change
and field.

A request that needs more operations than an etcd transaction allows (128
by default) is refused by etcd, as Gazette's is; `apply_in_batches` splits
changes into transactions that fit (Gazette's ApplyShardsInBatches), giving
up the all-or-nothing of one transaction.

This module owns that write. Checking that referenced journals exist is the
caller's (it needs a journal client).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import AllocatorError
from ..etcd import Compare, Delete, Etcd, Op, Put
from ..protocol import consumer as pc
from ..recoverylog.hint_store import hint_primary_key
from ..recoverylog.hints import HintsError, hints_to_json, validate_hints
from .model import item_key
from .specs import ValidationError, validate_shard_id, validate_shard_spec


class ApplyConflict(AllocatorError):
    """An expected revision did not match: someone else changed a shard."""

    def __init__(self, revision: int) -> None:
        super().__init__(
            f"etcd transaction failed: a shard's mod revision was not the expected one (store at {revision})"
        )
        self.revision = revision


def _validate(changes: Sequence[pc.ApplyRequestChange]) -> None:
    seen: set[str] = set()
    for i, change in enumerate(changes):
        try:
            if change.upsert is not None:
                if change.delete:
                    raise ValidationError("both Upsert and Delete are set")
                try:
                    validate_shard_spec(change.upsert)
                except ValidationError as exc:
                    raise exc.within("Upsert") from None
                shard = change.upsert.id
                if change.primary_hints is not None:
                    try:
                        validate_hints(change.primary_hints)
                    except HintsError as exc:
                        raise ValidationError(str(exc)).within("PrimaryHints") from None
            elif change.delete:
                try:
                    validate_shard_id(change.delete)
                except ValidationError as exc:
                    raise exc.within("Delete") from None
                shard = change.delete
                if change.primary_hints is not None:
                    raise ValidationError("hints may be set only with an upsert, not a delete")
            else:
                raise ValidationError("neither Upsert nor Delete are set")
            rev = change.expect_mod_revision
            if change.upsert is not None and rev < -1:
                raise ValidationError(f"invalid ExpectModRevision ({rev}; expected >= 0 or -1)")
            if change.upsert is None and rev <= 0 and rev != -1:
                raise ValidationError(f"invalid ExpectModRevision ({rev}; expected > 0 or -1)")
            if shard in seen:
                raise ValidationError(f"duplicate change of shard {shard}")
            seen.add(shard)
        except ValidationError as exc:
            raise exc.within(f"Changes[{i}]") from None


async def apply_shard_specs(etcd: Etcd, root: str, changes: Sequence[pc.ApplyRequestChange]) -> int:
    """Commit `changes` atomically; returns the revision they created.

    Raises `ValidationError` (nothing written) or `ApplyConflict`.
    """
    _validate(changes)
    compares: list[Compare] = []
    ops: list[Op] = []
    for change in changes:
        if change.upsert is not None:
            key = item_key(root, change.upsert.id)
            ops.append(Put(key, bytes(change.upsert)))
            if change.primary_hints is not None:
                ops.append(
                    Put(hint_primary_key(change.upsert), hints_to_json(change.primary_hints))
                )
        else:
            key = item_key(root, change.delete)
            ops.append(Delete(key))
        if change.expect_mod_revision != -1:
            compares.append(Compare.mod_revision(key, "=", change.expect_mod_revision))
    result = await etcd.txn(compares, ops)
    if not result.succeeded:
        raise ApplyConflict(result.revision)
    return result.revision


MAX_TXN_OPS = 128
"""etcd's default limit of operations per transaction (`--max-txn-ops`)."""


def ops_of(change: pc.ApplyRequestChange) -> int:
    """etcd operations one change takes (its spec, and its hints if any)."""
    return 1 + (change.upsert is not None and change.primary_hints is not None)


def batches(
    changes: Sequence[pc.ApplyRequestChange], max_ops: int = MAX_TXN_OPS
) -> list[list[pc.ApplyRequestChange]]:
    """Consecutive runs of `changes`, each within `max_ops` etcd operations."""
    out: list[list[pc.ApplyRequestChange]] = []
    current: list[pc.ApplyRequestChange] = []
    used = 0
    for change in changes:
        n = ops_of(change)
        if current and used + n > max_ops:
            out.append(current)
            current, used = [], 0
        current.append(change)
        used += n
    if current:
        out.append(current)
    return out


async def apply_in_batches(
    etcd: Etcd,
    root: str,
    changes: Sequence[pc.ApplyRequestChange],
    max_ops: int = MAX_TXN_OPS,
) -> int:
    """Commit `changes` in transactions of at most `max_ops` operations,
    in order; returns the revision of the last. Every change is validated
    before the first commits. A conflict (`ApplyConflict`) in a later batch
    leaves the earlier batches applied."""
    _validate(changes)
    revision = 0
    for batch in batches(changes, max_ops):
        revision = await apply_shard_specs(etcd, root, batch)
    return revision
