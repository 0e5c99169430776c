"""Crash test: SIGKILL the journal server during a stream of appends.

A server process is killed (no chance to flush or close anything) while
several writers stream appends of records, some large enough to be sent in
several chunks. After each restart, on the same data directory:

- every acknowledged append is readable at exactly the offsets it was
  acknowledged at, with exactly its bytes;
- each journal is a sequence of whole records: an append that was in flight
  is either entirely there (it committed; the acknowledgement was lost) or
  entirely absent, never torn;
- writers carry on from the recovered write head, through several crashes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio

from gazette_trio import aio
from gazette_trio.broker.appender import append
from gazette_trio.broker.grpc_client import GrpcJournalClient
from gazette_trio.broker.journal_spec import new_journal_spec
from gazette_trio.broker.list_apply import apply_journals, upsert
from gazette_trio.broker.reader import read_journal

from .conftest import ServerProcess

JOURNALS = ["crash/small", "crash/medium", "crash/large"]
SIZES = {
    "crash/small": (10, 2_000),
    "crash/medium": (1_000, 60_000),
    "crash/large": (200_000, 700_000),
}


def record(journal: str, seq: int, size: int) -> bytes:
    """A self-describing record: header, a payload derived from (journal, seq), newline."""
    header = f"{journal}:{seq:06d}:{size:07d}:".encode()
    unit = f"<{seq}>".encode()
    payload = (unit * (size // len(unit) + 1))[:size]
    return header + payload + b"\n"


def parse_records(journal: str, content: bytes) -> list[int]:
    """Sequence numbers of the whole records `content` consists of; fails on
    anything torn or foreign."""
    seqs = []
    pos = 0
    while pos < len(content):
        name, seq, size, _ = content[pos : pos + len(journal) + 17].decode().split(":", 3)
        assert name == journal, f"foreign bytes at offset {pos} of {journal}"
        expected = record(journal, int(seq), int(size))
        assert content[pos : pos + len(expected)] == expected, (
            f"torn record at offset {pos} of {journal}"
        )
        seqs.append(int(seq))
        pos += len(expected)
    return seqs


@dataclass
class Acked:
    journal: str
    seq: int
    begin: int
    end: int
    content: bytes


@dataclass
class History:
    acked: list[Acked] = field(default_factory=list)
    next_seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(JOURNALS, 0))
    unacked: dict[str, set[int]] = field(default_factory=lambda: {j: set() for j in JOURNALS})


async def write_until_the_server_dies(
    client: GrpcJournalClient, journal: str, history: History, rng: random.Random
) -> None:
    lo, hi = SIZES[journal]
    while True:
        seq = history.next_seq[journal]
        content = record(journal, seq, rng.randint(lo, hi))
        try:
            response = await append(client, journal, content)
        except aio.RpcError:
            return  # the server is gone
        commit = response.commit
        history.acked.append(Acked(journal, seq, commit.begin, commit.end, content))
        history.next_seq[journal] = seq + 1


async def test_acknowledged_appends_survive_sigkill_and_nothing_is_torn(
    island: None, server_process: ServerProcess
) -> None:
    rng = random.Random(1234)
    history = History()
    with trio.fail_after(120):
        async with aio.Channel(server_process.endpoint) as channel:
            client = GrpcJournalClient(channel)
            await apply_journals(
                client, [upsert(new_journal_spec(j, fragment_length=1 << 20)) for j in JOURNALS]
            )
            for crash in range(3):
                acked_before = len(history.acked)
                async with trio.open_nursery() as nursery:
                    for journal in JOURNALS:
                        nursery.start_soon(
                            write_until_the_server_dies, client, journal, history, rng
                        )
                    await trio.sleep(0.3 + 0.4 * rng.random())
                    server_process.kill()
                assert len(history.acked) > acked_before, (
                    f"no append was acknowledged before crash {crash}"
                )

                await server_process.start()
                for journal in JOURNALS:
                    content = await read_journal(client, journal)
                    seqs = parse_records(journal, content)
                    # Whole records, in order, nothing missing.
                    assert seqs == list(range(len(seqs)))
                    acked = [a for a in history.acked if a.journal == journal]
                    for a in acked:
                        assert content[a.begin : a.end] == a.content
                    # Besides earlier rounds', at most the one in-flight append
                    # committed without its acknowledgement.
                    unacked = set(seqs) - {a.seq for a in acked}
                    assert len(unacked - history.unacked[journal]) <= 1
                    history.unacked[journal] = unacked
                    history.next_seq[journal] = len(seqs)
