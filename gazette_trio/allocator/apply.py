"""Applying ShardSpec changes to etcd, guarded by expected revisions.

The consumer's Apply RPC (and `shards apply`) upserts and deletes ShardSpecs
under `{root}/items/`. Each change names the item's mod revision it expects
(0: the shard must not exist; -1: do not check), and every change of a
request commits in one transaction or none does, as Gazette's ShardApply.
Specs are validated first; an invalid one is rejected naming the change and
field.

This module owns that write. Checking that referenced journals exist is the
caller's (it needs a journal client).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..etcd import Compare, Delete, Etcd, Op, Put
from ..protocol import consumer as pc
from .model import item_key
from .specs import ValidationError, validate_shard_id, validate_shard_spec


class ApplyConflict(Exception):
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
            elif change.delete:
                try:
                    validate_shard_id(change.delete)
                except ValidationError as exc:
                    raise exc.within("Delete") from None
                shard = change.delete
            else:
                raise ValidationError("neither Upsert nor Delete are set")
            if change.expect_mod_revision < -1:
                raise ValidationError(
                    f"invalid ExpectModRevision ({change.expect_mod_revision}; expected >= -1)"
                )
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
        else:
            key = item_key(root, change.delete)
            ops.append(Delete(key))
        if change.expect_mod_revision != -1:
            compares.append(Compare.mod_revision(key, "=", change.expect_mod_revision))
    result = await etcd.txn(compares, ops)
    if not result.succeeded:
        raise ApplyConflict(result.revision)
    return result.revision
