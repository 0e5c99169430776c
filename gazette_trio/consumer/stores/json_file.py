"""JSONFileStore: a shard's state as one JSON document, rewritten at each commit.

The application keeps its state in `store.state`, any value JSON represents
exactly (dicts with string keys, lists, strings, numbers, booleans, None) and
mutates it freely while consuming. Each commit writes the whole state and the
transaction's `Checkpoint` into one file, `state.json`, in the store's
directory, laid out as Gazette's `consumer.JSONFileStore` lays it out (three
JSON documents: read-through offsets, state, checkpoint; see
`json_file_format.py`), so state and checkpoint can never disagree and a Go
member can take the shard over from its recovery log, and the reverse. It
is for small states: every commit costs O(state).

Commit. `start_commit` encodes the state right away, so the application may
go on mutating `store.state` for the next transaction while the commit runs
(pipelining costs nothing here). A background task in the shard's nursery
then waits for every `wait_for` future (failing with
`CommitDependencyError`, writing nothing, if one fails) and replaces the
file atomically: the document goes to `next.json`, which is renamed over
`state.json`. A crash at any point leaves either the old or the new file; a
stale `next.json` is simply overwritten by the next commit.

Where the file goes depends on the shard:

- with a recovery log (the shard's spec has a `recovery_log_prefix` and the
  runtime passes its `Recorder`), the file lives in the recorder's
  directory and is written *through the recorder*, so every byte and the
  rename are appended to the log; the commit resolves once the recorder's
  barrier (everything recorded so far) is durable in the log. Another member
  rebuilds the directory with a `Player` and opens the store there. The
  recorder's journal registers fence a deposed primary's commits.
- without one, the directory is durable local storage: the one the
  application passes, or else the shard's `store_directory` (under the
  member's data directory, see `directories.py`). The rewrite is the classic
  one: write `next.json`, fsync it, rename it over `state.json`, fsync the
  directory. There is no fencing: only one instance may use a directory at
  a time.

On open, the store reads `state.json` if present (a file that does not
decode is an error naming the file; one in this project's earlier
single-object layout loads and is rewritten in Gazette's at the next
commit), else starts from the application's initial state and an empty
checkpoint.

Values are checked before they are written: the encoded state must decode
back to exactly the state (`NaN`, tuples, sets, non-string keys and other
values JSON would silently change are refused with the path of the first
one), so what a later instance restores is exactly what was committed.

This module owns the store. The file's bytes are `json_file_format.py`'s;
file recording is the recovery log's (`gazette_trio.recoverylog`).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic

import trio
from typing_extensions import TypeVar

from ...opfuture import OpFuture, OpFutures
from ...protocol import consumer as pc
from ...recoverylog.recorder import Recorder
from ..contracts import Shard
from .commit import run_commit, wait_dependencies
from .errors import CommitDependencyError, StoreError, StoreStateError, fenced_or_same
from .json_file_format import decode_document, encode_document

__all__ = ["NEXT_FILE", "STATE_FILE", "JSONFileStore", "decode_document", "encode_document"]

STATE_FILE = "state.json"
NEXT_FILE = "next.json"

StateT = TypeVar("StateT", default=dict[str, Any])


class JSONFileStore(Generic[StateT]):
    """A `Store` holding `state` and its checkpoint in one JSON file.

    Generic in the state's type: `JSONFileStore[dict[str, int]]` (a bare
    `JSONFileStore` holds a `dict[str, Any]`). The type is the
    application's promise; what is restored is whatever JSON was committed.
    """

    def __init__(
        self, directory: Path, state: StateT, checkpoint: pc.Checkpoint, recorder: Recorder | None
    ) -> None:
        self.directory = directory
        self.state: StateT = state
        self._checkpoint = checkpoint
        self._recorder = recorder
        self._commit: OpFuture[None] | None = None
        self._destroyed = False
        self._failed: BaseException | None = None

    @classmethod
    async def open(
        cls,
        directory: str | os.PathLike[str] | None = None,
        *,
        initial: Callable[[], StateT] = dict,  # type: ignore[assignment]  # StateT's default
        recorder: Recorder | None = None,
        shard: Shard | None = None,
    ) -> JSONFileStore[StateT]:
        """Open the store in `directory`, or in the recorder's directory.

        `initial()` builds the state of a shard that has never committed.
        Pass the shard's `recorder` (from `Application.new_store`) to record
        the file into its recovery log; `directory` is then the recorder's and
        must be omitted. Without a recorder or a `directory`, the `shard`'s
        durable `store_directory` is used (`JSONFileStore.open(recorder=recorder,
        shard=shard)` thus works for a shard with or without a recovery log).
        """
        if recorder is not None:
            if directory is not None:
                raise ValueError(
                    f"JSONFileStore given directory {directory} and a recorder: a recorded "
                    f"store lives in the recorder's directory ({recorder.directory})"
                )
            path = Path(recorder.directory)
        elif directory is not None:
            path = Path(directory)
        else:
            path = _shard_directory(shard)
        document = await trio.to_thread.run_sync(_read_document, path / STATE_FILE)
        if document is None:
            return cls(path, initial(), pc.Checkpoint(), recorder)
        state, checkpoint = document
        return cls(path, state, checkpoint, recorder)

    @property
    def path(self) -> Path:
        """The state file."""
        return self.directory / STATE_FILE

    async def restore_checkpoint(self, shard: Shard) -> pc.Checkpoint:
        """The checkpoint read from the state file when the store opened."""
        self._check_usable()
        await trio.lowlevel.checkpoint()
        return copy.deepcopy(self._checkpoint)

    def start_commit(
        self, shard: Shard, checkpoint: pc.Checkpoint, wait_for: OpFutures
    ) -> OpFuture[None]:
        """Write `state` and `checkpoint` once every `wait_for` future resolved."""
        try:
            self._check_usable()
            if self._commit is not None and not self._commit.done():
                raise StoreStateError(
                    f"start_commit of shard {shard.fqn} while the previous commit is running"
                )
            document = encode_document(self.state, checkpoint, shard.fqn)
        except StoreError as exc:
            return OpFuture.failed(exc)
        future: OpFuture[None] = OpFuture()
        try:
            shard.nursery.start_soon(self._run_commit, shard.fqn, document, set(wait_for), future)
        except RuntimeError as exc:  # the shard's nursery is closed: the shard ended
            return OpFuture.failed(
                StoreStateError(f"shard {shard.fqn} is no longer running: {exc}")
            )
        self._checkpoint = checkpoint
        self._commit = future
        return future

    async def _run_commit(
        self, fqn: str, document: bytes, wait_for: OpFutures, future: OpFuture[None]
    ) -> None:
        async def write() -> None:
            await wait_dependencies(
                wait_for,
                lambda exc: CommitDependencyError(
                    f"commit of shard {fqn} abandoned: a future it waited for failed: {exc!r}"
                ),
            )
            if self._destroyed:
                raise StoreStateError(
                    f"commit of shard {fqn} was never written: the store was destroyed while "
                    "it waited"
                )
            if self._recorder is None:
                await trio.to_thread.run_sync(_replace_durably, self.directory, document)
            else:
                await _write_recorded(self._recorder, fqn, document)

        await run_commit(
            future,
            write,
            cancelled=lambda: self._fail(StoreStateError(f"commit of shard {fqn} was cancelled")),
            failed=self._fail,
        )

    def _fail(self, error: BaseException) -> BaseException:
        """The store is unusable after a failed commit: record why."""
        self._failed = error
        return error

    def destroy(self) -> None:
        """Forget the store. In a plain directory the file stays (it is the
        durable state); a recorded store deletes its local replica (only
        locally: the log keeps every commit)."""
        self._destroyed = True
        if self._recorder is not None:
            for name in (STATE_FILE, NEXT_FILE):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.directory / name)

    def _check_usable(self) -> None:
        if self._destroyed:
            raise StoreStateError(f"JSONFileStore in {self.directory} was destroyed")
        if self._failed is not None:
            raise StoreStateError(
                f"JSONFileStore in {self.directory} is unusable after a failed commit: "
                f"{self._failed}"
            ) from self._failed


async def _write_recorded(recorder: Recorder, fqn: str, document: bytes) -> None:
    try:
        # A small file: written inline, through the recorder, which
        # records the bytes and the rename as it makes them on disk.
        with recorder.create(NEXT_FILE) as file:
            file.write(document)
        recorder.rename(NEXT_FILE, STATE_FILE)
        await recorder.barrier()
    except trio.Cancelled:
        raise
    except BaseException as exc:
        translated = fenced_or_same(exc, fqn, recorder.log)
        if translated is exc:
            raise
        raise translated from exc


def _shard_directory(shard: Shard | None) -> Path:
    # The runtime's shards know their member's data directory; other Shard
    # implementations (tests, embedders) may not.
    found = getattr(shard, "store_directory", None)
    if isinstance(found, Path):
        return found
    raise ValueError(
        "JSONFileStore needs a directory when the shard has no recorder: pass `directory`, "
        "pass `shard` (the runtime's shards have a durable store_directory), or give the "
        "ShardSpec a recovery_log_prefix"
    )


def _read_document(path: Path) -> tuple[Any, pc.Checkpoint] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode_document(data, path)


def _replace_durably(directory: Path, document: bytes) -> None:
    """Atomically replace `state.json` with `document`, durably."""
    directory.mkdir(parents=True, exist_ok=True)
    next_path = directory / NEXT_FILE
    fd = os.open(next_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(document)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(next_path, directory / STATE_FILE)
    # The rename is durable only once the directory entry is.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
