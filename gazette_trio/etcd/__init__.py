"""The Etcd seam: one async interface, two implementations.

- `Etcd` (in `interface`): the contract every user of etcd codes against;
- `MemoryEtcd` (in `memory`, store semantics in `mvcc`, durability in
  `persist`): in-process, pure Trio, optionally persisted to a file;
- `GrpcEtcd` (in `grpc`): a real etcd over gRPC;
- the plain dataclasses and errors they speak (in `types`).
"""

from typing import TYPE_CHECKING

from .grpc import GrpcEtcd
from .interface import Etcd, WatchStream
from .memory import EtcdHooks, MemoryEtcd
from .persist import CorruptLogError
from .types import (
    MEMORY_CLUSTER_ID,
    NO_HEADER,
    Compacted,
    Compare,
    CompareOp,
    CompareTarget,
    Delete,
    DeleteResult,
    EtcdError,
    EtcdUnavailable,
    Event,
    EventType,
    FutureRevision,
    Get,
    InvalidRequest,
    Key,
    KeyValue,
    Lease,
    LeaseExists,
    LeaseInfo,
    LeaseLost,
    LeaseNotFound,
    Op,
    OpResult,
    Put,
    PutResult,
    RangeResult,
    ResponseHeader,
    TxnResult,
    WatchBatch,
    prefix_end,
    to_bytes,
)
from .types import (
    Unavailable as Unavailable,  # the former name of EtcdUnavailable
)

__all__ = [
    "MEMORY_CLUSTER_ID",
    "NO_HEADER",
    "Compacted",
    "Compare",
    "CompareOp",
    "CompareTarget",
    "CorruptLogError",
    "Delete",
    "DeleteResult",
    "Etcd",
    "EtcdError",
    "EtcdHooks",
    "EtcdUnavailable",
    "Event",
    "EventType",
    "FutureRevision",
    "Get",
    "GrpcEtcd",
    "InvalidRequest",
    "Key",
    "KeyValue",
    "Lease",
    "LeaseExists",
    "LeaseInfo",
    "LeaseLost",
    "LeaseNotFound",
    "MemoryEtcd",
    "Op",
    "OpResult",
    "Put",
    "PutResult",
    "RangeResult",
    "ResponseHeader",
    "TxnResult",
    "WatchBatch",
    "WatchStream",
    "prefix_end",
    "to_bytes",
]

if TYPE_CHECKING:
    # Both implementations must meet the contract (checked by mypy).
    def _conform(memory: MemoryEtcd, grpc: GrpcEtcd) -> tuple[Etcd, Etcd]:
        return memory, grpc
