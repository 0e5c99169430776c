"""Word count: Gazette's word-count example, on gazette-trio.

Text lines go in; running word counts come out, and can be queried. The
application has two kinds of shard, told apart by the message type of the
journal they read (its `app.gazette.dev/message-type` label):

- **split** shards read `TextLine` journals (`{"text": "..."}`), cut each
  line into words (lower case, runs of letters), and at the end of each
  transaction publish one `WordDelta` (`{"word": "fox", "delta": 3}`) per
  word they saw, *uncommitted*. The delta goes to the partition of the
  word: `modulo_mapping` (FNV-1a of the word, modulo the partitions
  labelled `WordDelta`). The deltas are acknowledged with the transaction
  that produced them, so each line is counted once even across crashes;
- **count** shards read `WordDelta` journals and add each delta into the
  table `counts(word, n)` of their `SQLiteStore`, an embedded SQLite
  database recorded into the shard's recovery log, with ordinary SQL. At
  the end of each transaction they publish, uncommitted again, the change
  and the new total of every word they touched (`WordCount` messages,
  `{"word": "fox", "delta": 3, "count": 17}`) to the output journal.

Since every word maps to one delta partition, and each delta partition is
read by one count shard, each word has exactly one owning shard. The Query
gRPC service (`word_count.proto`) answers `Count(word)` from that shard's
primary: it maps the word to its partition with the very mapping the split
shards publish with, finds the shard reading that partition, and resolves
it. If another member is the primary, the request is forwarded to that
member with the resolution's header (once: a forwarded request is never
forwarded again), as Gazette's `NGramServer` does.

The same answer is a JSON query route, for clients without gRPC: `GET
/query/count?word=fox` on a member's HTTP port (`WordCount.count_route`,
declared with `@query`; the runtime resolves and forwards it the same way,
see docs/consumer.md "Queries").

Bad input fails the shard that reads it, with an error naming the journal,
the offset and what was expected; nothing is skipped.

This module owns the application and its query service. `wordcountctl.py`
is the command-line client; `word_count_pb/` holds the generated classes of
`word_count.proto`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import re
from typing import Any

import grpclib.const
import trio
from word_count_pb.word_count import QueryRequest, QueryResponse

from gazette_trio import (
    BaseApplication,
    Consumer,
    Envelope,
    JournalClient,
    JSONMessage,
    Mapping,
    Partitions,
    PerTransaction,
    Publisher,
    QueryError,
    QueryParams,
    QueryShards,
    Recorder,
    ResolveError,
    Shard,
    ShardStopped,
    SQLiteStore,
    StoreError,
    aio,
    fixed_mapping,
    modulo_mapping,
    query,
)
from gazette_trio.protocol import consumer as pc
from gazette_trio.protocol import labels
from gazette_trio.protocol import protocol as pb

log = logging.getLogger("word_count")

TEXT_LINE = "TextLine"
WORD_DELTA = "WordDelta"
WORD_COUNT = "WordCount"
LINES_SELECTOR = f"{labels.MESSAGE_TYPE}={TEXT_LINE}"
DELTAS_SELECTOR = f"{labels.MESSAGE_TYPE}={WORD_DELTA}"
COUNTS_JOURNAL = "examples/word-count/counts"
QUERY_COUNT = "/word_count.Query/Count"

SCHEMA = "CREATE TABLE IF NOT EXISTS counts (word TEXT PRIMARY KEY, n INTEGER NOT NULL)"
_UPSERT = (
    "INSERT INTO counts (word, n) VALUES (?, ?) "
    "ON CONFLICT (word) DO UPDATE SET n = n + excluded.n RETURNING n"
)

# Letters only: digits, punctuation and underscores separate words.
_WORD = re.compile(r"[^\W\d_]+")


def words_of(text: str) -> list[str]:
    """The words of `text`: lower-cased runs of letters, in order."""
    return _WORD.findall(text.lower())


class BadMessage(ValueError):
    """A message of a source journal is not what its message type promises."""

    def __init__(self, envelope: Envelope, expected: str) -> None:
        super().__init__(
            f"journal {envelope.journal.name} offset {envelope.begin}: "
            f"expected {expected}, got {envelope.message!r}"
        )


JSON = dict[str, Any]
"""Every journal of the example holds JSON objects (read as `JSONMessage`s)."""


@dataclasses.dataclass
class Pending:
    """What the current transaction of a shard has gathered so far."""

    words: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Words read from text lines: published as deltas at the end."""
    deltas: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Deltas read from delta partitions: added to the counts at the end."""


class DeltaPartitions:
    """The partitions word deltas are published to, listed by label.

    Listed on first use and again once `refresh_interval` seconds passed,
    whenever a mapping is asked for (the app has no task of its own to
    refresh it in). A failed refresh keeps the last list.
    """

    def __init__(self, selector: str, refresh_interval: float) -> None:
        self.selector = selector
        self.refresh_interval = refresh_interval
        self._partitions: Partitions | None = None
        self._mapping: Mapping[JSON] | None = None
        self._next_refresh = 0.0

    async def mapping(self, client: JournalClient) -> Mapping[JSON]:
        """word delta → (its partition, content type)."""
        if self._partitions is None:
            self._partitions = Partitions(client, self.selector)
            self._mapping = modulo_mapping(self._partitions, key=_word_of_delta)
        now = trio.current_time()
        if now >= self._next_refresh:
            try:
                await self._partitions.refresh()
            except Exception as exc:
                if not self._partitions.journals:
                    raise
                log.warning("listing %s failed; keeping the last list: %s", self.selector, exc)
            self._next_refresh = now + self.refresh_interval
        assert self._mapping is not None
        return self._mapping

    async def partition_of(self, client: JournalClient, word: str) -> str:
        """The delta partition `word` maps to."""
        journal, _ = (await self.mapping(client))({"word": word})
        return journal


def _word_of_delta(delta: JSON) -> str:
    word: str = delta["word"]
    return word


def count_in(store: SQLiteStore, word: str) -> int:
    """`word`'s count in a count shard's store (0 if never seen)."""
    row = store.db.execute("SELECT n FROM counts WHERE word = ?", (word,)).fetchone()
    return row[0] if row else 0


def _one_word(value: object) -> str:
    """`value` as one lower-case word; a 400 naming the parameter otherwise."""
    if not isinstance(value, str) or words_of(value) != [value.lower()]:
        raise QueryError(400, f"parameter 'word': {value!r} is not one word (letters only)")
    return value.lower()


async def _shard_of_word(shards: QueryShards, params: QueryParams) -> str:
    """The count shard of the query's word: the reader of its delta partition."""
    app = shards.app
    assert isinstance(app, WordCount)
    word = _one_word(params["word"])
    return shards.reading(await app.deltas.partition_of(shards.journals, word))


class WordCount(BaseApplication[SQLiteStore, JSONMessage]):
    """The Application; see the module docstring.

    Settings (`[application.settings]` of config.toml): `deltas`, the label
    selector of the delta partitions; `counts`, the output journal;
    `partitions_refresh`, seconds between listings of the delta partitions.
    """

    def __init__(
        self,
        *,
        deltas: str = DELTAS_SELECTOR,
        counts: str = COUNTS_JOURNAL,
        partitions_refresh: float = 60.0,
    ) -> None:
        self.deltas = DeltaPartitions(deltas, partitions_refresh)
        self.counts = fixed_mapping(counts, labels.CONTENT_TYPE_JSON_LINES)
        # What each shard's open transaction gathered (dropped by the
        # runtime when the transaction ends or fails).
        self.pending = PerTransaction(Pending)

    message_type = JSONMessage

    async def new_store(self, shard: Shard, recorder: Recorder | None) -> SQLiteStore:
        return await SQLiteStore.open(recorder, bootstrap=SCHEMA)

    async def consume_message(
        self,
        shard: Shard,
        store: SQLiteStore,
        envelope: Envelope[JSONMessage],
        publisher: Publisher,
    ) -> None:
        message = envelope.message
        kind = labels.value_of(envelope.journal.labels, labels.MESSAGE_TYPE)
        pending = self.pending.of(shard)
        if kind == TEXT_LINE:
            text = message.get("text")
            if not isinstance(text, str):
                raise BadMessage(envelope, '{"text": <string>}')
            pending.words.update(words_of(text))
        elif kind == WORD_DELTA:
            word, delta = message.get("word"), message.get("delta")
            if (
                not isinstance(word, str)
                or words_of(word) != [word]
                or not isinstance(delta, int)
                or isinstance(delta, bool)
                or delta < 1
            ):
                raise BadMessage(
                    envelope, '{"word": <one lower-case word>, "delta": <integer ≥ 1>}'
                )
            pending.deltas[word] += delta
        else:
            raise ValueError(
                f"journal {envelope.journal.name}: label {labels.MESSAGE_TYPE}={kind!r}: "
                f"expected {TEXT_LINE} or {WORD_DELTA}"
            )

    async def finalize_txn(self, shard: Shard, store: SQLiteStore, publisher: Publisher) -> None:
        pending = self.pending.of(shard)
        if pending.words:
            mapping = await self.deltas.mapping(shard.journal_client)
            for word, n in sorted(pending.words.items()):
                publisher.publish_uncommitted(mapping, {"word": word, "delta": n})
        # No await from here to the commit: a query never sees half of it.
        db = store.db
        for word, delta in sorted(pending.deltas.items()):
            row = db.execute(_UPSERT, (word, delta)).fetchone()
            assert row is not None  # RETURNING always returns the upserted row.
            (count,) = row
            publisher.publish_uncommitted(
                self.counts, {"word": word, "delta": delta, "count": count}
            )

    @query("count", shard=_shard_of_word)
    async def count_route(self, shard: Shard, store: SQLiteStore, params: QueryParams) -> object:
        """`GET /query/count?word=fox`: the word's count, from its shard."""
        word = _one_word(params["word"])
        return {"word": word, "count": count_in(store, word)}

    def grpc_services(self, consumer: Consumer) -> list[aio.Service]:
        """The Query service, served on the member's gRPC port."""
        return [QueryService(self, consumer).grpc_service()]


class QueryService:
    """`word_count.Query`: counts read from the primary of the owning shard."""

    def __init__(self, app: WordCount, consumer: Consumer) -> None:
        self.app = app
        self.consumer = consumer

    def grpc_service(self) -> aio.Service:
        return aio.Service(
            [
                aio.Method(
                    QUERY_COUNT,
                    grpclib.const.Cardinality.UNARY_UNARY,
                    QueryRequest,
                    QueryResponse,
                    self.count,
                )
            ]
        )

    async def shard_of(self, word: str) -> str:
        """The shard that counts `word`: the reader of its delta partition."""
        journal = await self.app.deltas.partition_of(self.consumer.api.journals, word)
        readers = self.consumer.service.resolver.shards_with_source(journal)
        if not readers:
            raise aio.NotFound(f"no shard reads {journal}, the delta partition of {word!r}")
        return readers[0].id

    async def count(self, request: QueryRequest) -> QueryResponse:
        words = words_of(request.word)
        if words != [request.word.lower()]:
            raise aio.InvalidArgument(
                f"word: {request.word!r} is not one word (expected letters only)"
            )
        word = words[0]
        shard_id = request.shard or await self.shard_of(word)
        proxy_header = _parse_header(request.header)
        try:
            res = await self.consumer.service.resolver.resolve(
                shard_id, may_proxy=proxy_header is None, proxy_header=proxy_header
            )
        except ResolveError as exc:
            raise aio.FailedPrecondition(str(exc)) from None
        except ShardStopped as exc:
            raise aio.Unavailable(str(exc)) from None
        if res.status == pc.Status.SHARD_NOT_FOUND:
            raise aio.NotFound(f"shard {shard_id}: SHARD_NOT_FOUND")
        if res.status != pc.Status.OK:
            raise aio.Unavailable(f"shard {shard_id}: {res.status.name}")
        if res.shard is None:
            return await self._forward(res.header, word, shard_id)
        store = res.shard.store
        if not isinstance(store, SQLiteStore):
            raise aio.Unavailable(f"shard {shard_id}: its store is not open")
        try:
            count = count_in(store, word)
        except StoreError as exc:
            raise aio.Unavailable(f"shard {shard_id}: {exc}") from None
        return QueryResponse(header=bytes(res.header), word=word, count=count, shard=shard_id)

    async def _forward(self, header: pb.Header, word: str, shard_id: str) -> QueryResponse:
        """Ask the primary, carrying our resolution so it is not forwarded again."""
        route = header.route
        assert route is not None and route.primary >= 0
        endpoint = route.endpoints[route.primary] if route.endpoints else ""
        if not endpoint:
            raise aio.Unavailable(f"shard {shard_id}: its primary has no endpoint")
        forwarded = QueryRequest(header=bytes(header), word=word, shard=shard_id)
        # A channel per forwarded query: the service has no lifetime of its
        # own to close a pool of channels in, and forwarding is the rare path.
        async with aio.Channel(endpoint) as channel:
            return await aio.unary(channel, QUERY_COUNT, forwarded, QueryResponse, timeout=30)


def _parse_header(data: bytes) -> pb.Header | None:
    if not data:
        return None
    try:
        return pb.Header.parse(data)
    except Exception as exc:
        raise aio.InvalidArgument(f"header: not an encoded protocol.Header: {exc}") from None
