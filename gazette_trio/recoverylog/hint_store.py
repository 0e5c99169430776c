"""Where a shard's FSMHints live in etcd, and how they are read and rotated.

A shard with a recovery log keeps its hints under its spec's `hint_prefix`,
as Gazette's `consumer/recovery.go` does:

- `{hint_prefix}/{shard_id}.primary`: hints the current primary's recorder
  builds, written periodically while it runs;
- `{hint_prefix}/{shard_id}.backup.0` ... `.backup.{hint_backups-1}`: hints
  a new primary recovered and verified, rotated at each recovery (the newest
  in `.backup.0`), so a bad primary hint can be rolled back from.

Playback starts from the first hints present in that order (primary, then
backups), or from empty hints of the recovery log if none are. Each write is
guarded by comparisons the caller passes (typically: the shard's assignment
key still has the create revision it had when this member became primary),
so a deposed primary cannot overwrite its successor's hints.

Values are written as Gazette writes them today (Go JSON); JSON and
protobuf values are both read. This module owns keys and the etcd
transactions; the hint data itself is `hints.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import RecoveryLogError
from ..etcd.interface import Etcd
from ..etcd.types import Compare, Get, KeyValue, Put, RangeResult
from ..protocol import consumer as pc
from ..protocol.recoverylog import FsmHints
from .fsm import FSM
from .hints import HintsError, decode_hints, hints_to_json


def recovery_log(spec: pc.ShardSpec) -> str:
    """The shard's recovery-log journal `{recovery_log_prefix}/{id}`, or ""
    if the spec has none."""
    if not spec.recovery_log_prefix:
        return ""
    return f"{spec.recovery_log_prefix}/{spec.id}"


def hint_primary_key(spec: pc.ShardSpec) -> str:
    """The etcd key of the hints the primary records."""
    return f"{spec.hint_prefix}/{spec.id}.primary"


def hint_backup_keys(spec: pc.ShardSpec) -> list[str]:
    """The etcd keys of verified backup hints, newest first."""
    return [f"{spec.hint_prefix}/{spec.id}.backup.{i}" for i in range(spec.hint_backups)]


def assignment_guard(assignment_key: str | bytes, create_revision: int) -> Compare:
    """A comparison that holds while the shard's assignment key is the one
    this member was given (raced status updates keep its create revision)."""
    return Compare.create_revision(assignment_key, "=", create_revision)


class HintsStoreError(RecoveryLogError):
    """Hints could not be written: the guard failed or a value changed."""


@dataclass(frozen=True, slots=True)
class FetchedHints:
    """Hints of a shard as read in one etcd transaction.

    `hints[0]` is the primary hints and `hints[1:]` the backups in key order;
    None where a key holds nothing. `kvs` are the raw key/values, for
    guarded rewrites.
    """

    log: str
    hints: list[FsmHints | None]
    kvs: list[KeyValue | None]

    def first(self) -> FsmHints:
        """The first hints present, or empty hints of the recovery log."""
        for hints in self.hints:
            if hints is not None:
                return hints
        return FsmHints(log=self.log)


async def fetch_hints(etcd: Etcd, spec: pc.ShardSpec) -> FetchedHints:
    """Read and check the primary and backup hints of `spec`.

    Raises HintsError naming the key if a value does not decode, describes
    an impossible history, or names a log other than the shard's recovery
    log.
    """
    log = recovery_log(spec)
    keys = [hint_primary_key(spec), *hint_backup_keys(spec)]
    result = await etcd.txn([], [Get(k) for k in keys])
    hints: list[FsmHints | None] = []
    kvs: list[KeyValue | None] = []
    for key, res in zip(keys, result.results, strict=True):
        assert isinstance(res, RangeResult)
        kv = res.kvs[0] if res.kvs else None
        kvs.append(kv)
        if kv is None:
            hints.append(None)
            continue
        try:
            decoded = decode_hints(kv.value)
            FSM(decoded)  # Checks the hints describe a consistent history.
        except HintsError as exc:
            raise HintsError(f"hints at {key}: {exc}") from None
        if decoded.log != log:
            raise HintsError(
                f"hints at {key}: hints.Log {decoded.log} != ShardSpec.RecoveryLog {log}"
            )
        hints.append(decoded)
    return FetchedHints(log=log, hints=hints, kvs=kvs)


async def store_recorded_hints(
    etcd: Etcd, spec: pc.ShardSpec, hints: FsmHints, *, guard: Sequence[Compare] = ()
) -> bool:
    """Write a recorder's hints to the primary key if `guard` holds.

    Returns whether the write happened. A failed guard means this member no
    longer holds the assignment; hints are advisory, so that is not an error
    here (the shard is being torn down anyway). etcd errors propagate.
    """
    result = await etcd.txn(list(guard), [Put(hint_primary_key(spec), hints_to_json(hints))])
    return result.succeeded


async def store_recovered_hints(
    etcd: Etcd, spec: pc.ShardSpec, hints: FsmHints, *, guard: Sequence[Compare] = ()
) -> None:
    """Write hints a new primary recovered to `.backup.0`, shifting each
    present backup one slot down (the oldest falls off), in one transaction
    guarded by `guard` and by every backup slot being unchanged since read.

    Raises HintsStoreError if the transaction's comparisons fail (a raced
    assignment or hints update): the caller retries after re-reading.
    """
    backups = hint_backup_keys(spec)
    fetched = await fetch_hints(etcd, spec)
    compares = list(guard)
    puts: list[Put] = []
    value: bytes | None = hints_to_json(hints)
    for key, kv in zip(backups, fetched.kvs[1:], strict=True):
        if value is None:
            break
        puts.append(Put(key, value))
        if kv is None:
            compares.append(Compare.mod_revision(key, "=", 0))
            value = None
        else:
            compares.append(Compare.mod_revision(key, "=", kv.mod_revision))
            value = kv.value
    if not puts:
        return
    result = await etcd.txn(compares, puts)
    if not result.succeeded:
        raise HintsStoreError(
            f"storing recovered hints of shard {spec.id}: the assignment or a backup "
            "hint changed concurrently"
        )
