"""wordcountctl: the command-line client of the word-count example.

    python examples/word_count/wordcountctl.py publish < some.txt
    python examples/word_count/wordcountctl.py query fox dog

`publish` sends each non-empty line of its input as a `{"text": line}`
message to the TextLine partitions (spread at random), through the Journal
API of the broker (by default the member itself, which embeds one). `query`
asks a member's Query API for the count of each word; whichever member it
asks, the answer comes from the primary of the shard that owns the word.

Against a secured member (docs/security.md) it presents a token and trusts
a CA named by the same variables as the `gazette-trio` commands:
`GAZETTE_TRIO_AUTH_KEYS_FILE` or `GAZETTE_TRIO_AUTH_TOKEN_FILE`, and
`GAZETTE_TRIO_TRUSTED_CA_FILE` for an `https://` endpoint.

This module owns the client only; the application and the Query service are
in `word_count.py`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import IO

import click
import trio
from word_count import LINES_SELECTOR, QUERY_COUNT, words_of
from word_count_pb.word_count import QueryRequest, QueryResponse

from gazette_trio import aio, wait_all
from gazette_trio.auth.settings import SecurityError, install_client_from_env
from gazette_trio.broker import GrpcJournalClient, open_append_service
from gazette_trio.endpoints import endpoint_options, resolve
from gazette_trio.message import NoPartitions, Partitions, Publisher, random_mapping
from gazette_trio.protocol import protocol as pb


@click.group()
def main() -> None:
    """Publish text to the word-count example, and query word counts.

    \b
    Examples:
      echo "the quick brown fox" | python examples/word_count/wordcountctl.py publish
      python examples/word_count/wordcountctl.py query fox the
    """
    try:
        install_client_from_env()
    except SecurityError as exc:
        raise click.UsageError(str(exc)) from None


@main.command()
@click.argument("file", type=click.File("r"), default="-")
@endpoint_options("broker")
@click.option("--broker", "-b", "broker", default=None, hidden=True, help="Old name of -e.")
@click.option(
    "--selector",
    default=LINES_SELECTOR,
    show_default=True,
    help="Label selector of the text-line partitions.",
)
def publish(
    file: IO[str],
    endpoint: str | None,
    config: Path | None,
    broker: str | None,
    selector: str,
) -> None:
    """Publish each non-empty line of FILE (default: stdin) as a text line.

    Blank lines carry no words and are not sent.
    """
    broker = resolve("broker", endpoint or broker, config)
    lines = [line.rstrip("\n") for line in file]
    texts = [line for line in lines if line.strip()]
    try:
        journals = trio.run(functools.partial(publish_lines, broker, selector, texts))
    except (NoPartitions, aio.RpcError) as exc:
        raise click.ClickException(f"publishing to {broker}: {exc}") from None
    click.echo(
        f"published {_plural(len(texts), 'line')} to {_plural(len(journals), 'partition')}"
        + (f" ({', '.join(sorted(journals))})" if journals else "")
    )


async def publish_lines(endpoint: str, selector: str, texts: list[str]) -> set[str]:
    """Publish `texts` as committed TextLine messages; returns the journals
    written to, once every append is acknowledged."""
    async with aio.asyncio_island(), aio.Channel(endpoint) as channel:
        client = GrpcJournalClient(channel, timeout=30)
        partitions = Partitions(client, selector)
        await partitions.refresh()
        mapping = random_mapping(partitions)
        async with open_append_service(client) as appends:
            publisher = Publisher(appends)
            futures = [publisher.publish_committed(mapping, {"text": t}) for t in texts]
            await wait_all(futures)
    return {commit.journal for f in futures if (commit := f.result().commit) is not None}


@main.command()
@click.argument("words", nargs=-1, required=True)
@endpoint_options("consumer")
@click.option("--shard", default="", help="Ask this shard instead of the word's own.")
def query(
    words: tuple[str, ...], endpoint: str | None, config: Path | None, shard: str
) -> None:
    """Print the count of each of WORDS, with the shard and member that answered."""
    endpoint = resolve("consumer", endpoint, config)
    for word in words:
        if len(words_of(word)) != 1:
            raise click.BadParameter(f"{word!r} is not one word (letters only)", param_hint="WORDS")
    try:
        replies = trio.run(functools.partial(query_words, endpoint, list(words), shard))
    except aio.RpcError as exc:
        raise click.ClickException(f"querying {endpoint}: {exc}") from None
    width = max(len(r.word) for r in replies)
    for reply in replies:
        header = pb.Header.parse(reply.header)
        pid = header.process_id
        member = f"{pid.zone}/{pid.suffix}" if pid is not None else "?"
        click.echo(f"{reply.word:<{width}}  {reply.count:>8}   shard {reply.shard} on {member}")


async def query_words(endpoint: str, words: list[str], shard: str = "") -> list[QueryResponse]:
    """Ask `endpoint` for the count of each word."""
    async with aio.asyncio_island(), aio.Channel(endpoint) as channel:
        return [
            await aio.unary(
                channel, QUERY_COUNT, QueryRequest(word=w, shard=shard), QueryResponse, timeout=30
            )
            for w in words
        ]


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


if __name__ == "__main__":
    main()
