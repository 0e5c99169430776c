"""The invariants of exactly-once processing, checked as the run goes and at its end.

Gazette promises that, across crashes, re-assignment and every fault the
environment throws, a shard's state reflects each committed input exactly
once and its outputs are committed exactly once. The simulation checks that
promise as concrete invariants of the stream_sum workload:

- *consumed exactly once*: a shard instance consumes chunk `seq` of a stream
  only right after chunk `seq - 1` (no duplicate, no gap), and only a chunk
  the ledger has as committing or committed, with that value (nothing
  rolled back or abandoned leaks in);
- *state is exact*: every commit that becomes durable holds, for each
  stream, the sum of exactly its committed chunks 1..seq;
- *checkpoints never go backward*: each durable commit of the shard's
  current instance reads through at least as far as every durable commit
  before it. A restore behind a durable commit is an *anomaly* (the player
  handed over a stale state, as a store that restores must not): the
  instance is marked stale, and if it ever makes a commit durable, the
  acknowledged commits it missed are lost: a violation;
- *the fence holds* (at most one member commits for a shard at a time): a
  commit from an instance that has been superseded (another instance has
  restored the shard since) may only become durable if the newer instance's
  restored checkpoint already covers it, that is, if it landed before the
  fence. A zombie primary that commits past the fence is caught here;
- *outputs exactly once*: the verifier, reading outputs read-committed, sees
  each stream's outputs numbered 1, 2, 3, ... with no duplicate and no gap,
  each carrying the sum of exactly the committed chunks through its `seq`;
- *convergence*: once faults stop, every shard gets one ready primary, the
  durable state holds every committed chunk, and the verifier has read the
  final output of every stream (`world` waits for it, bounded).

Store instances are named `<shard>/<member incarnation>/<n>`. Durable
commits are reported when the store's commit future resolves (observed by a
task of the simulation, so a commit is never missed because its shard was
cancelled); restores when `restore_checkpoint` returns.

This module owns the checks and their bookkeeping; it does no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ...protocol import consumer as pc
from .producers import Ledger
from .trace import Trace

State = dict[str, list[int]]
"""A shard's state: stream -> [last seq, running sum, outputs published]."""


def read_through(checkpoint: pc.Checkpoint) -> dict[str, int]:
    return {j: s.read_through for j, s in sorted(checkpoint.sources.items())}


def covers(high: dict[str, int], low: dict[str, int]) -> bool:
    """Whether `high` reads through at least as far as `low` on every journal."""
    return all(high.get(j, 0) >= o for j, o in low.items())


def _fmt(offsets: dict[str, int]) -> str:
    return "{" + ", ".join(f"{j}:{o}" for j, o in sorted(offsets.items())) + "}"


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def scrub(text: str) -> str:
    """Text fit for the trace: first line only, addresses removed."""
    return _ADDRESS.sub("0x?", text.splitlines()[0] if text else "")[:300]


@dataclass
class ShardBook:
    """What the invariants remember of one shard."""

    latest: str | None = None  # the instance that restored last
    restored: dict[str, int] = field(default_factory=dict)
    durable: dict[str, int] = field(default_factory=dict)  # max durable read-through
    durable_state: State = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)  # instances that restored stale state
    instances: int = 0
    commits: int = 0


@dataclass
class OutputBook:
    """What the verifier has read of one stream's outputs."""

    out: int = 0
    seq: int = 0
    sum: int = 0


class Invariants:
    """Checks and counts; violations are traced and kept."""

    def __init__(self, ledger: Ledger, trace: Trace) -> None:
        self.ledger = ledger
        self.trace = trace
        self.checks: Counter[str] = Counter()
        self.violations: list[str] = []
        self.anomalies: list[str] = []
        self.shards: dict[str, ShardBook] = {}
        self.outputs: dict[str, OutputBook] = {}

    def violate(self, kind: str, text: str) -> None:
        line = f"{kind}: {text}"
        self.violations.append(line)
        self.trace.event(f"VIOLATION {line}")

    def anomaly(self, kind: str, text: str) -> None:
        """Something a component promised not to do, which has not (yet)
        broken exactly-once: traced and reported, but the seed passes."""
        line = f"{kind}: {text}"
        self.anomalies.append(line)
        self.trace.event(f"ANOMALY {line}")

    def book(self, shard: str) -> ShardBook:
        found = self.shards.get(shard)
        if found is None:
            found = self.shards[shard] = ShardBook()
        return found

    def new_instance(self, shard: str, member: str) -> str:
        book = self.book(shard)
        book.instances += 1
        return f"{shard}/{member}/{book.instances}"

    # -- consumption -----------------------------------------------------

    def consumed(self, instance: str, state: State, message: Any) -> None:
        """A shard instance consumed chunk `message`; apply it to `state`."""
        stream, seq, value = message["stream"], message["seq"], message["value"]
        entry = state.setdefault(stream, [0, 0, 0])
        self.checks["chunk consumed in order"] += 1
        if seq != entry[0] + 1:
            what = "a duplicate" if seq <= entry[0] else "a gap"
            self.violate(
                "input not exactly once",
                f"{instance} consumed {stream}#{seq} after #{entry[0]} ({what})",
            )
        self.checks["chunk consumed was committed"] += 1
        ledger = self.ledger.streams.get(stream)
        expected = ledger.value(seq) if ledger is not None else None
        if expected != value:
            self.violate(
                "uncommitted input consumed",
                f"{instance} consumed {stream}#{seq} = {value}; the ledger has {expected} "
                "(rolled back, abandoned or never written)",
            )
        entry[0] = seq
        entry[1] += value

    # -- the store ---------------------------------------------------------

    def restored(self, shard: str, instance: str, checkpoint: pc.Checkpoint, state: State) -> None:
        book = self.book(shard)
        offsets = read_through(checkpoint)
        self.checks["restore covers every durable commit"] += 1
        self._check_state(instance, state, "restored")
        if not covers(offsets, book.durable):
            # A stale restore: harmless only if the instance never commits
            # (its recorder or store is fenced); if it does, `committed`
            # reports it. It does not displace the shard's current instance.
            book.stale.add(instance)
            self.anomaly(
                "stale restore",
                f"{instance} restored {_fmt(offsets)}, behind the durable {_fmt(book.durable)}",
            )
            return
        book.latest = instance
        book.restored = offsets
        # What a restore finds is durable, whether or not the commit that
        # wrote it was ever acknowledged (its member may have died first).
        book.durable = {
            j: max(book.durable.get(j, 0), offsets.get(j, 0)) for j in {*book.durable, *offsets}
        }
        book.durable_state = state
        self.trace.event(f"restore {instance} at {_fmt(offsets)}")

    def committed(self, shard: str, instance: str, checkpoint: pc.Checkpoint, state: State) -> None:
        """A commit of `instance` became durable (its future resolved)."""
        book = self.book(shard)
        offsets = read_through(checkpoint)
        if instance in book.stale:
            self.checks["a stale instance never commits"] += 1
            self.violate(
                "checkpoint went backward",
                f"{instance}, which restored behind a durable commit, committed "
                f"{_fmt(offsets)}: acknowledged commits of {shard} are lost",
            )
        elif instance == book.latest:
            self.checks["durable checkpoints move forward"] += 1
            if not covers(offsets, book.durable):
                self.violate(
                    "checkpoint went backward",
                    f"{instance} committed {_fmt(offsets)} after the durable {_fmt(book.durable)}",
                )
            book.durable_state = state
        else:
            self.checks["a superseded instance commits only before the fence"] += 1
            if not covers(book.restored, offsets):
                self.violate(
                    "fence broken",
                    f"{instance} committed {_fmt(offsets)} after {book.latest} restored "
                    f"{_fmt(book.restored)}: two members committed for {shard}",
                )
        self._check_state(instance, state, "committed")
        book.durable = {
            j: max(book.durable.get(j, 0), offsets.get(j, 0)) for j in {*book.durable, *offsets}
        }
        book.commits += 1
        self.trace.event(f"commit {instance} at {_fmt(offsets)}")

    def _check_state(self, instance: str, state: State, what: str) -> None:
        for stream, (seq, total, _) in sorted(state.items()):
            self.checks["state holds each committed input once"] += 1
            ledger = self.ledger.streams.get(stream)
            expected = ledger.prefix_sum(seq) if ledger is not None else None
            if expected != total:
                self.violate(
                    "state not exact",
                    f"{instance} {what} {stream} through #{seq} with sum {total}; "
                    f"committed chunks sum to {expected}",
                )

    # -- outputs -----------------------------------------------------------

    def output(self, journal: str, offset: int, message: Any) -> None:
        """The verifier read a committed output message."""
        stream = message["stream"]
        out, seq, total = message["out"], message["seq"], message["sum"]
        book = self.outputs.setdefault(stream, OutputBook())
        self.checks["output read exactly once"] += 1
        if out != book.out + 1:
            what = "a duplicate" if out <= book.out else "a gap"
            self.violate(
                "output not exactly once",
                f"{journal}@{offset}: {stream} output #{out} by {message.get('by')} "
                f"after #{book.out} ({what})",
            )
        self.checks["output sums committed inputs"] += 1
        ledger = self.ledger.streams.get(stream)
        expected = ledger.prefix_sum(seq) if ledger is not None else None
        if seq <= book.seq or expected != total:
            self.violate(
                "output wrong",
                f"{journal}@{offset}: {stream} output #{out} by {message.get('by')} says "
                f"#{seq} sums to {total} (previous #{book.seq}; committed chunks sum to {expected})",
            )
        book.out, book.seq, book.sum = out, seq, total

    # -- the end -----------------------------------------------------------

    def incomplete(self, shard_streams: dict[str, list[str]]) -> str | None:
        """What durable states and outputs still lack of the committed
        chunks (None once they hold every one)."""
        for shard, streams in sorted(shard_streams.items()):
            state = self.book(shard).durable_state
            for stream in streams:
                committed = len(self.ledger.streams[stream].committed)
                entry = state.get(stream)
                if entry is None or entry[0] != committed:
                    held = entry[0] if entry is not None else 0
                    return f"{shard}'s durable state holds {stream} through #{held} of {committed}"
                out = self.outputs.get(stream)
                read = out.out if out is not None else 0
                if read != entry[2]:
                    return f"the verifier read {stream} outputs through #{read} of {entry[2]}"
        return None

    def serving(self, shard: str, instance: str, state: State) -> None:
        """After convergence: the ready primary's working state must be the
        shard's durable state (it did not restore a stale one)."""
        book = self.book(shard)
        self.checks["the primary serves the durable state"] += 1
        if instance != book.latest or state != book.durable_state:
            self.violate(
                "primary state not durable",
                f"{instance} serves {shard}; the durable state is {book.latest}'s",
            )

    def final(self, shard_streams: dict[str, list[str]]) -> None:
        """The end-of-run checks, after convergence."""
        for shard, streams in sorted(shard_streams.items()):
            state = self.book(shard).durable_state
            for stream in streams:
                ledger = self.ledger.streams[stream]
                entry = state.get(stream, [0, 0, 0])
                self.checks["final state is exact"] += 1
                if entry[0] != ledger.total or entry[1] != ledger.final_sum():
                    self.violate(
                        "final state wrong",
                        f"{shard} holds {stream} through #{entry[0]} summing {entry[1]}; "
                        f"expected #{ledger.total} summing {ledger.final_sum()}",
                    )
                out = self.outputs.get(stream, OutputBook())
                self.checks["final output is exact"] += 1
                if (out.out, out.seq, out.sum) != (entry[2], entry[0], entry[1]):
                    self.violate(
                        "final output wrong",
                        f"{stream}: last output read #{out.out} (#{out.seq} = {out.sum}); "
                        f"{shard} published #{entry[2]} (#{entry[0]} = {entry[1]})",
                    )
