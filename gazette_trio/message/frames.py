"""Frames: decoded messages of one journal as columns, and committed spans of them.

A framing decodes a chunk of journal content into `Frames`: the journal's
spec, then one column per field of `Envelope` (begin and end offsets, the
message, and the producer, clock and flags of its UUID). Columns, not
envelopes, because most messages never need one: the sequencer decides
what commits by looking at producer, clock and flag columns only, and an
application that reads `Committed.messages()` takes the decoded messages as
they are. Building an envelope object per message costs about as much as
sequencing it, so envelopes are built only when asked for, for a whole
`Frames` at once, and kept.

`run_starts` is what makes sequencing per run rather than per message:
publishers append their messages in batches, so a journal holds runs of one
producer's messages with the same flags and rising clocks, and the sequencer
takes each run in one step, with one comparison pass per message before it
(in C where the optional `_speedups` extension is built; see `_accel`).
(Packing the columns into big integers to compare whole batches at once was
measured, and is slower in CPython: int-bytes conversions cost more than the
loop.)

`Committed` is what a batch committed, in order: spans (a `Frames` and a
[start, stop) range of it, one run each). It is a `Sequence[Envelope]`;
`messages()` and `content()` skip the ACKs, which carry nothing for an
application.

This module owns these shapes. What a frame is belongs to the framings;
what commits, to `sequencer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, count, repeat
from typing import Any, overload

from ..protocol import protocol as pb
from ._accel import speedups
from .message import Envelope
from .uuids import ACK_TXN, ProducerID

__all__ = ["Committed", "Frames", "Span", "run_starts"]


class Frames:
    """Decoded frames of one journal, in journal order, as columns.

    Frame `i` is `messages[i]`, read from [`begins[i]`, `ends[i]`), with the
    UUID fields `producers[i]`, `clocks[i]` and `flags[i]`. Columns are any
    sequences (lists, tuples, or `bytes` for flags); nothing here copies them.
    `begin` and `end` bound the whole batch.

    Frames laid end to end (`of_lengths`) work out `begins` and `ends` from
    their lengths when first asked: the sequencer needs them only to fill a
    checkpoint or re-read a transaction.
    """

    __slots__ = (
        "_begins",
        "_ends",
        "_envelopes",
        "_lengths",
        "begin",
        "clocks",
        "end",
        "flags",
        "journal",
        "messages",
        "producers",
    )

    def __init__(
        self,
        journal: pb.JournalSpec,
        begins: Sequence[int],
        ends: Sequence[int],
        messages: Sequence[Any],
        producers: Sequence[ProducerID],
        clocks: Sequence[int],
        flags: Sequence[int],
        envelopes: list[Envelope] | None = None,
    ) -> None:
        self.journal = journal
        self._begins: Sequence[int] | None = begins
        self._ends: Sequence[int] | None = ends
        self._lengths: list[int] = []
        self.begin = begins[0] if begins else -1
        self.end = ends[-1] if ends else -1
        self.messages = messages
        self.producers = producers
        self.clocks = clocks
        self.flags = flags
        self._envelopes = envelopes

    @classmethod
    def of_lengths(
        cls,
        journal: pb.JournalSpec,
        begin: int,
        lengths: list[int],
        messages: Sequence[Any],
        producers: Sequence[ProducerID],
        clocks: Sequence[int],
        flags: Sequence[int],
    ) -> Frames:
        """Frames laid end to end from offset `begin`, with these lengths."""
        frames = cls(journal, (), (), messages, producers, clocks, flags)
        frames._begins = frames._ends = None
        frames._lengths = lengths
        frames.begin = begin
        frames.end = begin + sum(lengths)
        return frames

    @classmethod
    def of_envelopes(cls, journal: pb.JournalSpec, envelopes: Sequence[Envelope]) -> Frames:
        """Frames holding `envelopes`, all of `journal`; `envelopes()` returns
        these same objects."""
        envs = list(envelopes)
        return cls(
            journal,
            [e.begin for e in envs],
            [e.end for e in envs],
            [e.message for e in envs],
            [e.producer for e in envs],
            [e.clock for e in envs],
            [e.flags for e in envs],
            envs,
        )

    @classmethod
    def by_journal(cls, envelopes: Sequence[Envelope]) -> list[Frames]:
        """`envelopes` (of any journals) as Frames, one per stretch of
        consecutive envelopes of one journal."""
        out: list[Frames] = []
        i = 0
        while i < len(envelopes):
            name = envelopes[i].journal.name
            j = i + 1
            while j < len(envelopes) and envelopes[j].journal.name == name:
                j += 1
            out.append(cls.of_envelopes(envelopes[i].journal, envelopes[i:j]))
            i = j
        return out

    @classmethod
    def empty(cls, journal: pb.JournalSpec) -> Frames:
        return cls(journal, [], [], [], [], [], [], [])

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def begins(self) -> Sequence[int]:
        """Offset of each frame."""
        if self._begins is None:
            self._add_up()
        assert self._begins is not None
        return self._begins

    @property
    def ends(self) -> Sequence[int]:
        """End offset of each frame."""
        if self._ends is None:
            self._add_up()
        assert self._ends is not None
        return self._ends

    def _add_up(self) -> None:
        offsets = list(accumulate(self._lengths, initial=self.begin))
        self._begins = offsets[:-1]
        self._ends = offsets[1:]
        self._lengths = []

    def runs(self) -> Iterator[tuple[int, int]]:
        """[start, stop) of each run, in order (see `run_starts`)."""
        starts = run_starts(self.producers, self.clocks, self.flags)
        stops = starts[1:]
        stops.append(len(self))
        return zip(starts, stops, strict=True)

    def slice(self, start: int, stop: int) -> Frames:
        """Frames [start, stop) as a batch of their own."""
        envelopes = self._envelopes
        return Frames(
            self.journal,
            self.begins[start:stop],
            self.ends[start:stop],
            self.messages[start:stop],
            self.producers[start:stop],
            self.clocks[start:stop],
            self.flags[start:stop],
            envelopes[start:stop] if envelopes is not None else None,
        )

    def envelopes(self, start: int = 0, stop: int | None = None) -> list[Envelope]:
        """Envelopes of frames [start, stop); built once for the whole batch."""
        envelopes = self._envelopes
        if envelopes is None:
            envelopes = self._envelopes = list(
                map(
                    Envelope,
                    repeat(self.journal),
                    self.begins,
                    self.ends,
                    self.messages,
                    self.producers,
                    self.clocks,
                    self.flags,
                )
            )
        if start == 0 and stop is None:
            return envelopes
        return envelopes[start:stop]

    def __repr__(self) -> str:
        if not self.messages:
            return f"Frames({self.journal.name}, empty)"
        return f"Frames({self.journal.name}@[{self.begin}, {self.end}), {len(self)} frames)"


Span = tuple[Frames, int, int]
"""Frames [start, stop) of a `Frames`."""


class Committed(Sequence[Envelope]):
    """Committed messages, in commit order, as spans of frames.

    Each span is one run (see `run_starts`), so its frames share their
    flags: a span is all ACKs or none.
    """

    __slots__ = ("_envelopes", "_len", "spans")

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans
        self._len = -1
        self._envelopes: list[Envelope] | None = None

    @classmethod
    def of_envelopes(cls, envelopes: Sequence[Envelope]) -> Committed:
        """Committed envelopes, as they are (of any journals, in any order)."""
        return cls(
            [
                (frames, start, stop)
                for frames in Frames.by_journal(envelopes)
                for start, stop in frames.runs()
            ]
        )

    def __len__(self) -> int:
        if self._len < 0:
            self._len = sum([stop - start for _, start, stop in self.spans])
        return self._len

    def envelopes(self) -> list[Envelope]:
        """Every committed envelope, ACKs included."""
        if self._envelopes is None:
            out: list[Envelope] = []
            for frames, start, stop in self.spans:
                out += frames.envelopes(start, stop)
            self._envelopes = out
        return self._envelopes

    def without_acks(self) -> Committed:
        """The same, ACKs left out."""
        return Committed([span for span in self.spans if span[0].flags[span[1]] != ACK_TXN])

    def content(self) -> list[Envelope]:
        """Committed envelopes that carry content: ACKs left out."""
        return self.without_acks().envelopes()

    def messages(self) -> list[Any]:
        """The messages of `content()`, without building envelopes."""
        out: list[Any] = []
        for frames, start, stop in self.without_acks().spans:
            out += frames.messages[start:stop]
        return out

    def __iter__(self) -> Iterator[Envelope]:
        return iter(self.envelopes())

    @overload
    def __getitem__(self, index: int) -> Envelope: ...
    @overload
    def __getitem__(self, index: slice) -> list[Envelope]: ...
    def __getitem__(self, index: int | slice) -> Envelope | list[Envelope]:
        return self.envelopes()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Committed):
            return self.envelopes() == other.envelopes()
        if isinstance(other, list):
            return self.envelopes() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Committed({self.envelopes()!r})"


_c_run_starts: Callable[[Sequence[ProducerID], Sequence[int], Sequence[int]], list[int]] | None = (
    speedups.run_starts if speedups is not None else None
)

_AFTER_ZERO = 1 << 64  # Above any clock: the frame after a zero clock begins a run.


def run_starts(
    producers: Sequence[ProducerID], clocks: Sequence[int], flags: Sequence[int]
) -> list[int]:
    """Indices where runs begin: a run is a maximal stretch of frames with
    one producer, the same flags and strictly rising, non-zero clocks.

    Index 0 begins a run (if there is a frame); a frame with a zero clock
    (a message without a UUID) is a run of its own.
    """
    if _c_run_starts is not None:
        try:
            return _c_run_starts(producers, clocks, flags)
        except ValueError:
            pass  # Columns it does not take (a clock beyond 64 bits, say).
    return _run_starts(producers, clocks, flags)


def _run_starts(
    producers: Sequence[ProducerID], clocks: Sequence[int], flags: Sequence[int]
) -> list[int]:
    # The reference for `_speedups.run_starts`, and what runs without it.
    starts: list[int] = []
    append = starts.append
    producer: Any = None
    flag = -1
    last = 0
    # Without the C twin, this pass (about 60 ns a frame) is what the
    # sequencer pays per message; the rest of its work is per run.
    for i, p, c, f in zip(count(), producers, clocks, flags):
        if c <= last or p != producer or f != flag:
            append(i)
            producer = p
            flag = f
        last = c or _AFTER_ZERO
    return starts
