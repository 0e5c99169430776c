"""The root of gazette-trio's exceptions, and one base per layer.

Every exception gazette-trio raises on purpose derives from
`GazetteTrioError`, through the base of the layer that raised it, so a
caller can catch all of them, or one layer's, without listing classes:

- `EtcdError` (`gazette_trio.etcd`): a coordination request failed;
- `BrokerError` (`gazette_trio.broker`): a journal operation or append;
- `MessageError` (`gazette_trio.message`): framing, sequencing, mapping;
- `RecoveryLogError` (`gazette_trio.recoverylog`): recording or playing a log;
- `AllocatorError` (`gazette_trio.allocator`): assignments and their keys;
- `ConsumerError` (`gazette_trio.consumer`): shards and transactions;
- `AuthError` (`gazette_trio.auth`): tokens, keys, certificates and
  security settings that are refused or unusable;
- `EtcdError`, `ConfigError`, `SpecError`, `PruneError` and `StoreError`
  (`gazette_trio.consumer.stores`) derive from the root directly.

`aio.RpcError` (every gRPC status's error), `PlaybackError` (under
`RecoveryLogError`) and `DataDirLocked` (the root) are under it too;
tests/api/test_exports.py holds every error to it.

Classes that long derived from a builtin (`ValueError`, `LookupError`) still
do, beside their layer's base. This module owns the hierarchy's roots only;
each class lives with the code that raises it.
"""

from __future__ import annotations

__all__ = [
    "AllocatorError",
    "AuthError",
    "BrokerError",
    "ConsumerError",
    "GazetteTrioError",
    "MessageError",
    "RecoveryLogError",
]


class GazetteTrioError(Exception):
    """Raised by gazette-trio (any layer)."""


class BrokerError(GazetteTrioError):
    """A journal operation or an append failed."""


class MessageError(GazetteTrioError):
    """A message could not be framed, sequenced or mapped to a journal."""


class RecoveryLogError(GazetteTrioError):
    """A recovery log could not be recorded, read or played."""


class AllocatorError(GazetteTrioError):
    """An assignment or allocator key was not what it should be."""


class ConsumerError(GazetteTrioError):
    """A shard or one of its transactions failed, or could not be served."""


class AuthError(GazetteTrioError):
    """A token, key, certificate or security setting was refused or unusable."""
