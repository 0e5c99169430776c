"""The recovery-log FSM: which recorded operations count, and what they built.

A recovery log is a journal of RecordedOps that any number of authors may
have appended to, racing each other. The FSM decides which ops belong to the
one consistent history being rebuilt: an op applies only if it carries the
expected next `seq_no` and the expected `checksum` (the CRC-32C chain over
every applied op's encoded bytes), and, while hints remain, only if its
author is the one the hints name for that sequence number. Everything else
(a dead branch, a duplicate, a deposed recorder's late write) is rejected
without changing state, exactly as Gazette's FSM does.

Applied ops track Fnodes (a file across its links; its id is the seq_no of
its Create), the paths linked to each, the log segments that hold each
Fnode's ops, and property files. `build_hints` turns the live Fnodes into
FSMHints from which a later FSM reproduces this state reading only the
segments that matter.

`apply` is pure: no I/O, no clock; the recorder and the player drive it and
do the file work. Rejections are returned as an `Outcome`, not raised: they
are routine during playback.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from ..protocol.recoverylog import FnodeSegments, FsmHints, Property, RecordedOp, Segment
from .checksum import crc32c_update
from .hints import HintsError, live_log_segments


class Outcome(enum.Enum):
    """The result of offering an op to the FSM (Gazette's FSM errors)."""

    APPLIED = "applied"
    FNODE_NOT_TRACKED = "fnode not tracked"
    """Consistent and applied, but its Fnode is dead by the hints' horizon:
    the FSM stepped, and playback skips the op's local file work."""
    NOT_HINTED_AUTHOR = "op author does not match the next hinted author"
    WRONG_SEQ_NO = "wrong sequence number"
    CHECKSUM_MISMATCH = "checksum mismatch"
    LINK_EXISTS = "link exists"
    PROPERTY_EXISTS = "property exists"
    NO_SUCH_LINK = "fnode has no such link"
    EXPECTED_HINTED_FNODE = "op is not create, and an Fnode was hinted"

    @property
    def stepped(self) -> bool:
        """Whether the FSM advanced past the op (APPLIED or FNODE_NOT_TRACKED)."""
        return self is Outcome.APPLIED or self is Outcome.FNODE_NOT_TRACKED


@dataclass(slots=True)
class FnodeState:
    """A live Fnode: its current paths, and the segments holding its ops."""

    links: set[str]
    segments: list[Segment] = field(default_factory=list)


class FSM:
    """Applies RecordedOps in order; see the module docstring.

    Public state, read by the recorder and player:
    `next_seq_no` / `next_checksum` (what the next op must carry),
    `last_log` (the log of the last applied op), `live_nodes` (Fnode ->
    FnodeState), `links` (path -> Fnode), `properties` (path -> content).
    """

    __slots__ = (
        "_hinted_fnodes",
        "_hinted_segments",
        "last_log",
        "links",
        "live_nodes",
        "next_checksum",
        "next_seq_no",
        "properties",
    )

    def __init__(self, hints: FsmHints) -> None:
        """An FSM ready to apply the log `hints` describe; HintsError if they
        are inconsistent."""
        if not hints.log:
            raise HintsError("hinted log not provided")
        fnodes, segments = live_log_segments(hints)
        self.next_seq_no = 1
        self.next_checksum = 0
        self.last_log = hints.log
        self.properties: dict[str, str] = {p.path: p.content for p in hints.properties}
        self.live_nodes: dict[int, FnodeState] = {}
        self.links: dict[str, int] = {}
        self._hinted_fnodes: deque[int] = deque(fnodes)
        self._hinted_segments: deque[Segment] = deque(segments)
        if segments:
            self.next_seq_no = segments[0].first_seq_no
            self.next_checksum = segments[0].first_checksum

    @property
    def hinted_segments(self) -> tuple[Segment, ...]:
        """Hinted segments not yet fully applied, in order."""
        return tuple(self._hinted_segments)

    @property
    def next_hinted_segment(self) -> Segment | None:
        """The hinted segment being applied, or None once hints are used up."""
        return self._hinted_segments[0] if self._hinted_segments else None

    def has_remaining_hints(self) -> bool:
        """Whether hinted segments or Fnodes remain to be applied."""
        return bool(self._hinted_segments) or bool(self._hinted_fnodes)

    def apply(self, op: RecordedOp, body: bytes | bytearray | memoryview) -> Outcome:
        """Offer `op`, whose encoded protobuf bytes are `body`.

        `op.first_offset`, `op.last_offset` and `op.log` must say where the op
        lies (exact for a player; the write head as a lower bound and zero for
        a recorder). The FSM changes only if the outcome `stepped`.
        """
        hinted = self._hinted_segments
        if hinted and hinted[0].author != op.author:
            return Outcome.NOT_HINTED_AUTHOR
        if op.seq_no != self.next_seq_no:
            return Outcome.WRONG_SEQ_NO
        if op.checksum != self.next_checksum:
            return Outcome.CHECKSUM_MISMATCH

        outcome = Outcome.APPLIED
        fnodes = self._hinted_fnodes
        if op.create is not None:
            outcome = self._apply_create(op)
        elif fnodes and fnodes[0] == op.seq_no:
            outcome = Outcome.EXPECTED_HINTED_FNODE
        elif op.link is not None:
            outcome = self._apply_link(op)
        elif op.unlink is not None:
            outcome = self._apply_unlink(op)
        elif op.write is not None:
            node = self.live_nodes.get(op.write.fnode)
            if node is None:
                outcome = Outcome.FNODE_NOT_TRACKED
            else:
                self._extend(node, op)
        elif op.property is not None:
            outcome = self._apply_property(op.property)
        # An op with no union field is a no-op (a hand-off write barrier).

        if not outcome.stepped:
            return outcome

        self.next_seq_no += 1
        self.next_checksum = crc32c_update(self.next_checksum, body)
        self.last_log = op.log

        if hinted and hinted[0].last_seq_no < self.next_seq_no:
            hinted.popleft()
            if hinted:
                self.next_seq_no = hinted[0].first_seq_no
                self.next_checksum = hinted[0].first_checksum
        return outcome

    def _apply_create(self, op: RecordedOp) -> Outcome:
        assert op.create is not None
        path = op.create.path
        if path in self.links:
            return Outcome.LINK_EXISTS
        if path in self.properties:
            return Outcome.PROPERTY_EXISTS
        fnode = op.seq_no
        fnodes = self._hinted_fnodes
        if fnodes:
            if fnodes[0] != fnode:
                return Outcome.FNODE_NOT_TRACKED
            fnodes.popleft()
        node = FnodeState(links={path})
        self._extend(node, op)
        self.live_nodes[fnode] = node
        self.links[path] = fnode
        return Outcome.APPLIED

    def _apply_link(self, op: RecordedOp) -> Outcome:
        assert op.link is not None
        path = op.link.path
        if path in self.links:
            return Outcome.LINK_EXISTS
        if path in self.properties:
            return Outcome.PROPERTY_EXISTS
        node = self.live_nodes.get(op.link.fnode)
        if node is None:
            return Outcome.FNODE_NOT_TRACKED
        node.links.add(path)
        self.links[path] = op.link.fnode
        self._extend(node, op)
        return Outcome.APPLIED

    def _apply_unlink(self, op: RecordedOp) -> Outcome:
        assert op.unlink is not None
        node = self.live_nodes.get(op.unlink.fnode)
        if node is None:
            return Outcome.FNODE_NOT_TRACKED
        path = op.unlink.path
        if path not in node.links:
            return Outcome.NO_SUCH_LINK
        del self.links[path]
        node.links.discard(path)
        self._extend(node, op)
        if not node.links:
            del self.live_nodes[op.unlink.fnode]
        return Outcome.APPLIED

    def _apply_property(self, prop: Property) -> Outcome:
        if prop.path in self.links:
            return Outcome.LINK_EXISTS
        # An existing property is updated, as Gazette's FSM does.
        self.properties[prop.path] = prop.content
        return Outcome.APPLIED

    @staticmethod
    def _extend(node: FnodeState, op: RecordedOp) -> None:
        segments = node.segments
        if segments:
            last = segments[-1]
            if last.author == op.author and last.log == op.log:
                last.last_seq_no = op.seq_no
                last.last_offset = op.last_offset
                return
        segments.append(
            Segment(
                author=op.author,
                first_seq_no=op.seq_no,
                first_offset=op.first_offset,
                first_checksum=op.checksum,
                last_seq_no=op.seq_no,
                last_offset=op.last_offset,
                log=op.log,
            )
        )

    def build_hints(self, log: str) -> FsmHints:
        """Hints from which an FSM rebuilds this one's live Fnodes and
        properties, with `log` as the hints' log (segments in `log` leave
        their `log` empty). Fnodes ascend; properties are sorted by path."""
        nodes = []
        for fnode in sorted(self.live_nodes):
            segments = [
                Segment(
                    author=s.author,
                    first_seq_no=s.first_seq_no,
                    first_offset=s.first_offset,
                    first_checksum=s.first_checksum,
                    last_seq_no=s.last_seq_no,
                    last_offset=s.last_offset,
                    log="" if s.log == log else s.log,
                )
                for s in self.live_nodes[fnode].segments
            ]
            nodes.append(FnodeSegments(fnode=fnode, segments=segments))
        properties = [Property(path=p, content=c) for p, c in sorted(self.properties.items())]
        return FsmHints(log=log, live_nodes=nodes, properties=properties)
