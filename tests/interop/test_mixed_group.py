"""A mixed consumer group: upstream's Go `summer` and gazette-trio's summer on the same shards.

One Go `summer` (v0.103.0, unchanged) and one `gazette-trio serve
examples/stream_sum/config.toml` member join one consumer group on real
Gazette brokers and etcd: the same four shards, each with a hot standby,
both sides with the SQLite store (label `store=sqlite`). Upstream's Go
`chunker` writes streams and verifies their sums. Shards are then moved
between the two by SIGKILL, one way and then the other.

What holds:

- the two share one group: Gazette's allocator (whichever member leads)
  assigns every shard a primary and a standby across both kinds, each kind
  plays the other's recovery logs as a standby and takes over on a kill (the
  recovery log's format and hints are one), and while no shard changes
  hands every stream is summed exactly once;
- upstream's chunker verifies every stream of every run, hand-offs or not.

What does not, and why: a shard cannot change hands between the two kinds
and stay exactly-once, because their SQLite stores lay the database out
differently in the recovery log. Upstream's store-sqlite never writes the
database file: it keeps its pages in a RocksDB recorded into the log
(`pageDB/`) and records only SQLite's WAL (`primary.db-wal`), reading pages
through its VFS. gazette-trio's SQLiteStore records the SQLite file itself
(`main.db`, `main.db-wal`). Both kinds carry the other's files along in the
log untouched, so a player restores all of them, and each store opens only
its own: the last state *its own kind* committed to that log, or an empty
database if it never did. Its checkpoint is that old one (or none), so it
re-reads the shard's chunks from there, and every stream the other kind
summed since is summed again and its sum published a second time.

The test checks exactly that: the files each heir restored (the other kind's
layout, beside its own), which checkpoint gazette-trio resumed from (none, or
the last gazette-trio process's, never the Go summer's; the summer records
each commit's process), and, reading the sums journal committed, that
precisely the streams the other kind summed since the heir's own last
commit have one sum more, and no other stream does. (The Go chunker does
not notice: it waits for the sums of its own run and skips the rest.)

So Go and gazette-trio summers can serve one group, but each shard must stay
with one implementation: moving it is a rewind, not exactly-once. Sharing the
store would take gazette-trio implementing upstream's RocksDB page store
(RocksDB's file formats, recorded op by op), which its SQLiteStore
deliberately does not (gazette_trio/consumer/stores/sqlite.py).

Upstream's summer also cannot consume `examples/stream_sum/chunker.py`'s
transactional chunks: Gazette passes ACK messages to ConsumeMessage, and
upstream's Summer, written for its own chunker (which publishes every chunk
committed, with no ACKs), fails on the first ACK ("invalid chunk.SeqNo (0;
sum.SeqNo 0; ...)"). So this group is driven by upstream's chunker.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from gazette_trio.message.mapping import fnv1a_32

from ..examples.processes import Proc, ProcessGroup
from .conftest import Gazctl, GazetteCluster, wait_until
from .test_stream_sum_go import (
    SHARDS,
    Group,
    committed_sums,
    start_go_chunker,
    start_go_summer,
    start_trio_summer,
    sums_by_stream,
)

pytestmark = pytest.mark.etcd


def assignments(gazctl: Gazctl, consumer: str) -> dict[str, list[tuple[str, str]]]:
    """Each shard's replicas as (member suffix, status), primary first."""
    doc = json.loads(gazctl.at(consumer=consumer)("shards", "list", "-o", "json").ok())
    out: dict[str, list[tuple[str, str]]] = {}
    for shard in doc.get("shards", []):
        members = [m["suffix"] for m in shard["route"].get("members", [])]
        codes = [s.get("code", "IDLE") for s in shard.get("status", [])]
        primary = shard["route"].get("primary", -1)
        order = [primary] + [i for i in range(len(members)) if i != primary]
        out[shard["spec"]["id"]] = [
            (members[i], codes[i] if i < len(codes) else "IDLE") for i in order if i >= 0
        ]
    return out


def wait_settled(gazctl: Gazctl, consumer: str, members: set[str]) -> dict[str, str]:
    """Wait until every shard has a PRIMARY and a STANDBY among `members`
    (one of them if only one is left): the primary of each shard."""
    found: dict[str, str] = {}

    def settled() -> bool:
        now = assignments(gazctl, consumer)
        want = ["PRIMARY", "STANDBY"][: len(members)]
        if sorted(now) != SHARDS:
            return False
        for shard, replicas in now.items():
            if [code for _, code in replicas] != want or {m for m, _ in replicas} - members:
                return False
            found[shard] = replicas[0][0]
        return True

    wait_until(f"every shard primary (and standby) on {sorted(members)}", settled, 60, 0.5)
    return dict(found)


def shard_of(stream: bytes) -> str:
    """The shard summing `stream`: upstream's ModuloMapping over four partitions."""
    return f"chunks-part-00{fnv1a_32(stream) % len(SHARDS)}"


def run_go_chunker(procs: ProcessGroup, gazette: GazetteCluster) -> None:
    chunker = start_go_chunker(procs, gazette, streams=STREAMS, chunks=8, workers=2)
    assert chunker.wait(timeout=150) == 0, chunker.tail()


STREAMS = 15  # Per chunker worker; two workers.


@dataclass
class Side:
    """One member of the mixed group, Go's or gazette-trio's."""

    kind: str  # "go" or "trio"
    name: str
    endpoint: str
    proc: Proc
    data: Path

    def played_sqlite_files(self) -> set[str]:
        """Names of the files its player restored into its shard directories."""
        if self.kind == "go":
            # Upstream's player logs each file it links into place.
            return {
                Path(r["target"]).name
                for r in self.proc.json_lines()
                if r.get("msg") == "linked file"
            }
        return {p.name for p in self.data.glob("*/shards/chunks-part-*/*")}

    def fresh_stores(self) -> set[str]:
        """Shards whose store this gazette-trio member opened with no earlier
        commit in it (the summer stores each commit's time and process)."""
        assert self.kind == "trio"
        return {
            r["shard"] for r in self.proc.json_lines() if "first commit of the shard" in r["msg"]
        }

    def takeovers(self) -> dict[str, str]:
        """Shards whose store this gazette-trio member opened with an earlier
        commit in it: the process that made that commit, as "pid N"."""
        assert self.kind == "trio"
        return {
            r["shard"]: r["previous_process"].split(" on ")[0]
            for r in self.proc.json_lines()
            if "failover_s" in r
        }


def test_a_mixed_group_shares_shards_but_a_shard_moved_between_them_starts_over(
    gazette: GazetteCluster, group: ProcessGroup, gazctl: Gazctl, tmp_path: Path
) -> None:
    consumers = Group.fresh()
    gazctl = gazctl.at(broker=gazette.endpoint)
    generation = collections.Counter[str]()

    def start(kind: str) -> Side:
        n = generation[kind]
        generation[kind] += 1
        name, data = f"{kind}-summer-{n}", tmp_path / f"{kind}-{n}"
        if kind == "go":
            proc, endpoint = start_go_summer(group, gazette, consumers, name, "zone-b", data)
            return Side(kind, name, endpoint, proc, data)
        member = start_trio_summer(group, gazette, consumers, name, "zone-a", data)
        return Side(kind, name, member.ports.endpoint, member.proc, data)

    # The Go summer first, so that both are members when gazette-trio's
    # member creates the journals and shards its config declares.
    sides = {"go": start("go"), "trio": start("trio")}
    primaries = wait_settled(gazctl, sides["go"].endpoint, {s.name for s in sides.values()})

    # One group on the same shards, each side playing the other's logs as
    # a standby: every stream summed exactly once.
    run_go_chunker(group, gazette)
    sums = sums_by_stream(committed_sums(gazette.endpoint))
    assert len(sums) == 2 * STREAMS and set(sums.values()) == {1}, sums

    # What each kind last committed into each shard's log, as the number of
    # chunker runs its state covers: the other kind's files are invisible
    # to it, so this is where it resumes.
    runs: list[set[bytes]] = [set(sums)]
    covered = {(kind_of(m), shard): 1 for shard, m in primaries.items()}
    last_writer = {
        (kind_of(m), shard): sides[kind_of(m)].proc.pid for shard, m in primaries.items()
    }

    # Move shards twice by SIGKILL: first those of the side holding
    # primaries, to the other; then, the first side back as a new process,
    # every shard to it.
    first = "trio" if any(kind_of(m) == "trio" for m in primaries.values()) else "go"
    for victim_kind in (first, {"go": "trio", "trio": "go"}[first]):
        victim = sides[victim_kind]
        heir = sides["trio" if victim_kind == "go" else "go"]
        moved = {s for s, m in primaries.items() if m == victim.name}
        assert moved, primaries
        victim.proc.kill()
        wait_settled(gazctl, heir.endpoint, {heir.name})
        run_go_chunker(group, gazette)
        before, sums = sums, sums_by_stream(committed_sums(gazette.endpoint))
        runs.append(set(sums) - set(before))
        assert len(runs[-1]) == 2 * STREAMS

        # The heir cannot read the store the other kind recorded ...
        if heir.kind == "trio":
            assert {"pageDB", "primary.db-wal"} <= heir.played_sqlite_files()
            # ... so it opens the last state gazette-trio itself committed to
            # the log (none: an empty database), not the Go summer's.
            fresh = {s for s in moved if covered.get(("trio", s), 0) == 0}
            assert heir.fresh_stores() & moved == fresh
            assert heir.takeovers() == {s: f"pid {last_writer['trio', s]}" for s in moved - fresh}
        else:
            assert {"main.db", "main.db-wal"} <= heir.played_sqlite_files()
        # ... and re-reads the chunks from there: every stream the other
        # kind summed since is summed, and its sum published, again.
        resummed = {
            stream
            for shard in moved
            for run in runs[covered.get((heir.kind, shard), 0) : -1]
            for stream in run
            if shard_of(stream) == shard
        }
        again = {s.hex(): sums[s] - before[s] for s in before}
        assert again == {s.hex(): int(s in resummed) for s in before}, (heir.kind, moved)
        assert all(sums[s] == 1 for s in runs[-1])
        for shard in SHARDS:
            covered[(heir.kind, shard)] = len(runs)
            last_writer[(heir.kind, shard)] = heir.proc.pid

        # The victim's kind comes back as a new process; it becomes standby.
        sides[victim_kind] = start(victim_kind)
        primaries = wait_settled(gazctl, heir.endpoint, {heir.name, sides[victim_kind].name})


def kind_of(member: str) -> str:
    return member.split("-", 1)[0]
