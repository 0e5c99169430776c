"""Shard allocation: who serves which shard, agreed through etcd as Gazette does.

- `model`: the key layout under a consumer root and the decoded entities
  (`Item`, `Member`, `Assignment`), `decoder`, `is_consistent`;
- `specs`: validation of ShardSpec, ConsumerSpec, ReplicaStatus;
- `state`: `State`, a snapshot of the group, and `StateView`, which keeps one
  current;
- `solver`: the pure flow-network solver;
- `converge`: one safe round of changes toward the solution;
- `allocate`: the leader's loop;
- `announce`: the member key under a lease;
- `member`: `open_member`, a live member for the consumer runtime;
- `apply`: ShardSpec changes guarded by expected revisions (the Apply RPC).
"""

from .allocate import MemberKeyMissing, Round, allocate, solve_state
from .announce import Announcement, AnnouncementLost, announce
from .apply import ApplyConflict, apply_shard_specs
from .converge import RoundStats
from .member import AssignmentChanged, MemberSession, NotAssigned, open_member
from .model import (
    Assignment,
    Item,
    MalformedKey,
    Member,
    assignment_key,
    decoder,
    is_consistent,
    item_assignments_prefix,
    item_key,
    keyspace,
    member_key,
)
from .solver import Solution, solve
from .specs import ValidationError, desired_replication, item_limit
from .state import LocalItem, State, StateView

__all__ = [
    "Announcement",
    "AnnouncementLost",
    "ApplyConflict",
    "Assignment",
    "AssignmentChanged",
    "Item",
    "LocalItem",
    "MalformedKey",
    "Member",
    "MemberKeyMissing",
    "MemberSession",
    "NotAssigned",
    "Round",
    "RoundStats",
    "Solution",
    "State",
    "StateView",
    "ValidationError",
    "allocate",
    "announce",
    "apply_shard_specs",
    "assignment_key",
    "decoder",
    "desired_replication",
    "is_consistent",
    "item_assignments_prefix",
    "item_key",
    "item_limit",
    "keyspace",
    "member_key",
    "open_member",
    "solve",
    "solve_state",
]
