"""gazette-trio's embedded journal server: Gazette's Journal API on one node.

For development, tests and single-machine deployments. At scale, run
Gazette's own replicated brokers; clients cannot tell the difference.

- `JournalServerCore` (`core`): the API's semantics over a `Storage`;
- `MemoryStorage` (`storage`) and `FileStorage` (`file_storage`): where state lives;
- `commit_log`: the record format of a spool's commit log, and its scan;
- `repair`: the `gazette-trio broker repair` command for damaged journals;
- `journal_service` (`service`): the core as a grpclib service via `gazette_trio.aio`;
- `serve_journals` (`serve`): all of the above, standalone, with the periodic
  scrub (`scrub_periodically`) that re-verifies stored fragments;
- `Faults` (`faults`): hooks through which a simulator injects errors and delays.

`python -m gazette_trio.broker.server --data-dir DIR --port P` runs it.
"""

from __future__ import annotations

from .core import JournalServerCore
from .faults import Faults
from .file_storage import FileStorage
from .serve import open_storage, serve_journals
from .service import journal_service
from .storage import FragmentFile, MemoryStorage, Storage

__all__ = [
    "Faults",
    "FileStorage",
    "FragmentFile",
    "JournalServerCore",
    "MemoryStorage",
    "Storage",
    "journal_service",
    "open_storage",
    "serve_journals",
]
