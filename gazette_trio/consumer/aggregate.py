"""Keyed aggregation: the short form of an Application.

Most stateful consumers fold each message into the state of one or more
keys and publish what changed. `Aggregation` is that, written as three
methods, on the same runtime as any `Application` (it is one):

    class WordCount(Aggregation[JSONMessage, int]):
        message_type = JSONMessage
        output = fixed_mapping("counts", "application/x-ndjson")

        def keys(self, line: JSONMessage) -> Iterable[str]:
            return line["text"].split()

        def reduce(self, count: int | None, line: JSONMessage) -> int:
            return (count or 0) + 1

        def derive(self, word: str, count: int) -> JSONMessage:
            return JSONMessage(word=word, count=count)

- `keys(message)`: the keys (strings) a message updates, repeats allowed;
- `reduce(value, message)`: a key's new value, from its current one (None
  for a key never seen) and the message;
- `derive(key, value)`, optional: the message to publish, once per key
  changed by the transaction and with its value at the transaction's end,
  through `output` (a mapping), or None to publish nothing for that key.

Exactly-once, as for the full form: values change in the transaction's
scratch space (`PerTransaction`), are written to the store and derived
messages published uncommitted in `finalize_txn`, and both commit with the
transaction's checkpoint or not at all; the runtime drops the scratch of a
failed transaction.

The store is `new_store`'s, by default a `JSONFileStore` of key → value
(recorded into the shard's recovery log if it has one, else in the shard's
durable directory). Override `new_store` to use another: a store with a
`state` dict (`JSONFileStore`, `MemoryStore`) keeps values there; an
`SQLiteStore` or `SQLStore` keeps them, JSON-encoded, in the table
`gazette_trio_aggregate(key, value)` it creates.

When to use the full `Application` instead: state that is not a value per
key (a table with its own schema and queries, say), messages that need
their envelope (offsets, journal labels), several message types, or an
output that is not one message per changed key.

This module owns the short form; the runtime is `driver`'s.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, cast

from typing_extensions import TypeVar

from ..message.frames import Committed
from ..message.mapping import Mapping
from ..message.message import Envelope
from ..message.publisher import Publisher
from .contracts import BaseApplication, MessageT, Shard, Store
from .scratch import PerTransaction

if TYPE_CHECKING:
    from ..recoverylog.recorder import Recorder

__all__ = ["TABLE", "Aggregation"]

ValueT = TypeVar("ValueT", default=Any)

TABLE = "gazette_trio_aggregate"
_MISSING: Any = object()


class _KeyedState(Protocol):
    """Where an aggregation's values live in a store."""

    async def load(self, keys: Iterable[str]) -> dict[str, Any]:
        """The stored values of `keys` (absent keys left out)."""
        ...

    async def save(self, values: dict[str, Any]) -> None:
        """Write `values` into the store's open transaction."""
        ...


class _InState:
    """Values in a store's `state` dict (JSONFileStore, MemoryStore)."""

    def __init__(self, state: MutableMapping[str, Any]) -> None:
        self.state = state

    async def load(self, keys: Iterable[str]) -> dict[str, Any]:
        state = self.state
        return {k: state[k] for k in keys if k in state}

    async def save(self, values: dict[str, Any]) -> None:
        self.state.update(values)


_DDL = f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# Keys looked up per statement: well under SQLite's and PostgreSQL's limits
# on bound parameters.
_SELECT_BATCH = 500
# Values remembered between transactions, at most (then forgotten at once).
_CACHE_LIMIT = 200_000


def _upsert(mark: str) -> str:
    return (
        f"INSERT INTO {TABLE} (key, value) VALUES ({mark}, {mark}) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )


def _select(mark: str, n: int) -> str:
    return f"SELECT key, value FROM {TABLE} WHERE key IN ({', '.join([mark] * n)})"


class _InTable:
    """Values JSON-encoded in the table `TABLE` of a SQL store.

    What this aggregation last wrote is remembered (up to `_CACHE_LIMIT`
    keys): the shard is the table's only writer while its store lives, and a
    failed commit fails the shard and with it this store. Other keys are
    read `_SELECT_BATCH` at a time.
    """

    mark = "?"
    """The statement parameters' placeholder."""

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}

    async def _rows(self, sql: str, keys: list[str]) -> Iterable[tuple[Any, ...]]:
        raise NotImplementedError

    async def _write(self, rows: list[tuple[str, str]]) -> None:
        raise NotImplementedError

    async def load(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        cache = self.cache
        found = {k: cache[k] for k in keys if k in cache}
        missing = [k for k in keys if k not in found]
        for i in range(0, len(missing), _SELECT_BATCH):
            chunk = missing[i : i + _SELECT_BATCH]
            for key, value in await self._rows(_select(self.mark, len(chunk)), chunk):
                found[key] = json.loads(value)
        return found

    async def save(self, values: dict[str, Any]) -> None:
        await self._write([(k, json.dumps(v)) for k, v in values.items()])
        if len(self.cache) + len(values) > _CACHE_LIMIT:
            self.cache.clear()
        self.cache.update(values)


class _InSQLite(_InTable):
    """Values in a table of an SQLiteStore's database (in its open
    transaction, so they commit with the checkpoint)."""

    def __init__(self, store: Any) -> None:
        super().__init__()
        self.store = store
        store.db.execute(_DDL)

    async def _rows(self, sql: str, keys: list[str]) -> Iterable[tuple[Any, ...]]:
        return list(self.store.db.execute(sql, keys))

    async def _write(self, rows: list[tuple[str, str]]) -> None:
        self.store.db.executemany(_upsert("?"), rows)


class _InSQL(_InTable):
    """Values in a table of an SQLStore's database (in the consumer
    transaction's database transaction)."""

    def __init__(self, store: Any) -> None:
        super().__init__()
        self.store = store
        self.mark = "%s" if store.dialect == "postgresql" else "?"
        self.ready = False

    async def _txn(self) -> Any:
        txn = await self.store.transaction()
        if not self.ready:
            await txn.execute(_DDL)
            self.ready = True
        return txn

    async def _rows(self, sql: str, keys: list[str]) -> Iterable[tuple[Any, ...]]:
        txn = await self._txn()
        rows: list[tuple[Any, ...]] = await txn.execute(sql, keys)
        return rows

    async def _write(self, rows: list[tuple[str, str]]) -> None:
        txn = await self._txn()
        await txn.executemany(_upsert(self.mark), rows)


def _keyed_state(store: Store) -> _KeyedState:
    state = getattr(store, "state", None)
    if isinstance(state, MutableMapping):
        return _InState(state)
    from .stores.sql import SQLStore
    from .stores.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return _InSQLite(store)
    if isinstance(store, SQLStore):
        return _InSQL(store)
    raise TypeError(
        f"an Aggregation cannot keep values in a {type(store).__name__}: use a store with a "
        "state dict (JSONFileStore, MemoryStore), an SQLiteStore or an SQLStore"
    )


class Aggregation(BaseApplication[Store, MessageT], Generic[MessageT, ValueT]):
    """A keyed aggregation; see the module docstring."""

    output: Mapping[Any] | None = None
    """Where `derive`'s messages are published."""

    # Built on first use rather than in __init__, so that a subclass taking
    # settings in its own __init__ need not call this one.
    _changed_: PerTransaction[dict[str, ValueT]]
    _states_: weakref.WeakKeyDictionary[Store, _KeyedState]

    # -- what the user writes

    def keys(self, message: MessageT) -> Iterable[str]:
        raise NotImplementedError(f"{type(self).__name__} must define keys(message)")

    def reduce(self, value: ValueT | None, message: MessageT) -> ValueT:
        raise NotImplementedError(f"{type(self).__name__} must define reduce(value, message)")

    def derive(self, key: str, value: ValueT) -> object | None:
        """The message published for `key` changed to `value` (None: nothing)."""
        return None

    async def value(self, store: Store, key: str) -> ValueT | None:
        """`key`'s value in `store` (None for a key never seen), as the
        shard's transactions left it: what a query route answers from."""
        found = await self._state_of(store).load((key,))
        return cast("ValueT | None", found.get(key))

    # -- the Application

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> Store:
        from .stores.json_file import JSONFileStore

        return await JSONFileStore.open(recorder=recorder, shard=shard)

    def _changed(self) -> PerTransaction[dict[str, ValueT]]:
        try:
            return self._changed_
        except AttributeError:
            self._changed_ = PerTransaction(dict)
            return self._changed_

    def _state_of(self, store: Store) -> _KeyedState:
        """The store's keyed state, built once per store (an SQL one creates
        its table then)."""
        try:
            states = self._states_
        except AttributeError:
            states = self._states_ = weakref.WeakKeyDictionary()
        try:
            state = states.get(store)
            if state is None:
                state = states[store] = _keyed_state(store)
        except TypeError:  # a store that cannot be weakly referenced or hashed
            state = _keyed_state(store)
        return state

    async def consume_message(
        self, shard: Shard, store: Store, envelope: Envelope[MessageT], publisher: Publisher
    ) -> None:
        await self.consume_messages(shard, store, (envelope,), publisher)

    async def consume_messages(
        self,
        shard: Shard,
        store: Store,
        envelopes: Sequence[Envelope[MessageT]],
        publisher: Publisher,
    ) -> None:
        changed = self._changed().of(shard)
        messages: Sequence[MessageT] = (
            cast(Sequence[MessageT], envelopes.messages())
            if isinstance(envelopes, Committed)
            else [e.message for e in envelopes]
        )
        state = self._state_of(store)
        keys, reduce = self.keys, self.reduce
        if isinstance(state, _InState):
            # The common case, in one pass: values are read in memory.
            stored = state.state
            for message in messages:
                for key in keys(message):
                    value = changed.get(key, _MISSING)
                    if value is _MISSING:
                        value = stored.get(key)
                    changed[key] = reduce(value, message)
            return
        keyed = [(message, list(keys(message))) for message in messages]
        missing = {k for _, ks in keyed for k in ks if k not in changed}
        loaded = await state.load(missing) if missing else {}
        for message, ks in keyed:
            for key in ks:
                value = changed.get(key, _MISSING)
                if value is _MISSING:
                    value = loaded.get(key)
                changed[key] = reduce(value, message)

    async def finalize_txn(self, shard: Shard, store: Store, publisher: Publisher) -> None:
        changed = self._changed().peek(shard)
        if not changed:
            return
        await self._state_of(store).save(changed)
        output, derive = self.output, self.derive
        for key, value in changed.items():
            message = derive(key, value)
            if message is None:
                continue
            if output is None:
                raise TypeError(
                    f"{type(self).__name__}.derive returned a message for key {key!r} but "
                    "the aggregation has no output mapping to publish it through"
                )
            publisher.publish_uncommitted(output, message)
