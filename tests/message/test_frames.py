"""Frames, runs and committed spans: the columnar read path.

The C speedups and their pure-Python twins are held to the same results on
the same inputs; the sequencer's run-at-a-time rules to the results of
taking envelopes one by one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sysconfig
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gazette_trio.message import (
    ACK_TXN,
    CONTINUE_TXN,
    JSON_LINES,
    OUTSIDE_TXN,
    Envelope,
    Replay,
    Sequencer,
    build_uuid,
    framing_by_content_type,
)
from gazette_trio.message import frames as frames_module
from gazette_trio.message import json_framing as json_module
from gazette_trio.message import uuids as uuids_module
from gazette_trio.message.frames import Committed, Frames, _run_starts, run_starts
from gazette_trio.message.uuids import _fields_of_strings, fields_of_strings
from gazette_trio.protocol import protocol as pb

A = pb.JournalSpec(
    name="a/journal",
    labels=pb.LabelSet(labels=[pb.Label(name="content-type", value=JSON_LINES)]),
)
P1 = bytes.fromhex("010000000001")
P2 = bytes.fromhex("010000000002")


_SPEEDUPS = [(frames_module, "_c_run_starts"), (uuids_module, "_c_fields_of_strings")]


@contextlib.contextmanager
def pure_python() -> Iterator[None]:
    """Run the read path without the C speedups."""
    saved = [(module, name, getattr(module, name)) for module, name in _SPEEDUPS]
    saved.append((json_module, "_fields_at", json_module._fields_at))
    for module, name, _ in saved:
        setattr(module, name, None)
    json_module._fields_at = json_module._py_fields_at
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def test_speedups_are_built_where_a_compiler_is() -> None:
    """The extension is optional for installs, but where this machine can
    compile it, an install that silently skipped it is a broken build."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None or os.environ.get("GAZETTE_TRIO_NO_SPEEDUPS"):
        pytest.skip("no C compiler: the pure-Python twins run")
    assert all(getattr(module, name) is not None for module, name in _SPEEDUPS)
    assert json_module._fields_at is not json_module._py_fields_at


# -- runs


def test_runs_break_at_a_new_producer_new_flags_or_a_clock_that_does_not_rise() -> None:
    producers = [P1, P1, P1, P2, P2, P1, P1, P1, P1]
    clocks = [10, 11, 12, 5, 6, 13, 13, 14, 15]
    flags = [1, 1, 1, 1, 2, 1, 1, 1, 1]
    for implementation in (run_starts, _run_starts):
        assert implementation(producers, clocks, flags) == [0, 3, 4, 5, 6]


def test_a_frame_without_uuid_is_a_run_of_its_own() -> None:
    zero = bytes(6)
    producers = [zero, zero, zero, P1, P1]
    clocks = [0, 0, 7, 8, 9]
    flags = bytes([0, 0, 0, 0, 0])
    for implementation in (run_starts, _run_starts):
        assert implementation(producers, clocks, flags) == [0, 1, 2, 3]
        assert implementation([], [], b"") == []


_producers = st.sampled_from([P1, P2, bytes(6)])
_clocks = st.one_of(st.integers(0, 40), st.integers(0, 2**64 - 1))


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(st.tuples(_producers, _clocks, st.sampled_from([0, 1, 2, 0x3FF]))),
    sort=st.booleans(),
    as_bytes=st.booleans(),
)
def test_c_and_python_runs_agree(
    frames: list[tuple[bytes, int, int]], sort: bool, as_bytes: bool
) -> None:
    producers = [p for p, _, _ in frames]
    clocks = sorted(c for _, c, _ in frames) if sort else [c for _, c, _ in frames]
    flags: list[int] | bytes = [f for _, _, f in frames]
    if as_bytes and all(f < 256 for f in flags):
        flags = bytes(flags)
    assert run_starts(producers, clocks, flags) == _run_starts(producers, clocks, flags)


def test_columns_the_c_loop_does_not_take_fall_back_to_python() -> None:
    # Clocks beyond 64 bits, producers that are not 6 bytes.
    assert run_starts([P1, P1], [2**64, 2**64 + 1], [1, 1]) == [0]
    assert run_starts([b"p", b"p", b"q"], [1, 2, 3], [1, 1, 1]) == [0, 2]


# -- UUID fields


_uuid_texts = st.lists(
    st.builds(
        lambda producer, clock, flags: str(build_uuid(producer, clock, flags)),
        _producers,
        st.integers(0, 2**64 - 1),
        st.integers(0, 0x3FF),
    ),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(texts=_uuid_texts, upper=st.booleans())
def test_c_and_python_uuid_fields_agree(texts: list[str], upper: bool) -> None:
    if upper:
        texts = [t.upper() for t in texts]
    c, python = fields_of_strings(texts), _fields_of_strings(texts)
    assert c is not None and python is not None
    assert [list(column) for column in c] == [list(column) for column in python]


@settings(max_examples=300, deadline=None)
@given(texts=_uuid_texts.filter(bool), data=st.data())
def test_c_and_python_refuse_the_same_uuid_strings(texts: list[str], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(texts) - 1))
    at = data.draw(st.integers(0, 35))
    text = texts[index]
    texts[index] = text[:at] + data.draw(st.sampled_from("g-|{ é0")) + text[at + 1 :]
    assert (fields_of_strings(texts) is None) == (_fields_of_strings(texts) is None)


_good = [str(build_uuid(P1, 7, 1)), str(build_uuid(P2, 2**63, 0x3FF))]
_leaves = st.one_of(
    st.sampled_from(_good),
    st.sampled_from(_good).map(str.upper),
    st.just(_good[0][:-1]),
    st.integers(),
    st.none(),
    st.just(["x"]),
)
_docs = st.one_of(
    st.fixed_dictionaries({"_meta": st.fixed_dictionaries({"uuid": _leaves})}),
    st.fixed_dictionaries({"_meta": st.dictionaries(st.sampled_from(["uuid", "ack"]), _leaves)}),
    st.fixed_dictionaries({"_meta": _leaves}),
    st.dictionaries(st.sampled_from(["UUID", "n"]), _leaves),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    docs=st.lists(_docs, max_size=8),
    path=st.sampled_from([("_meta", "uuid"), ("UUID",), ("_meta",)]),
)
def test_c_and_python_look_up_and_parse_uuids_in_documents_alike(
    docs: list[object], path: tuple[str, ...]
) -> None:
    c, python = json_module._fields_at(docs, path), json_module._py_fields_at(docs, path)
    if python is None:
        assert c is None
    else:
        assert c is not None
        assert [list(column) for column in c] == [list(column) for column in python]


# -- frames and committed spans


def decode(content: bytes, offset: int = 0) -> Frames:
    decoder = framing_by_content_type(JSON_LINES).decoder(A, dict, offset)
    decoder.feed(offset, content)
    frames, error = decoder.decode()
    assert error is None
    return frames


def line(producer: bytes, clock: int, flags: int, body: str = "x") -> bytes:
    return b'{"b":"%s","_meta":{"uuid":"%s"}}\n' % (
        body.encode(),
        str(build_uuid(producer, clock, flags)).encode(),
    )


def test_json_frames_work_out_their_offsets_only_when_asked() -> None:
    lines = [line(P1, 10, CONTINUE_TXN), line(P1, 11, CONTINUE_TXN, "longer body")]
    frames = decode(b"".join(lines), offset=100)
    assert (frames.begin, frames.end) == (100, 100 + len(lines[0]) + len(lines[1]))
    assert frames._begins is None  # Not yet.
    assert list(frames.begins) == [100, 100 + len(lines[0])]
    assert list(frames.ends) == [100 + len(lines[0]), frames.end]
    envelopes = frames.envelopes()
    assert [(e.begin, e.end, e.message["b"], e.clock) for e in envelopes] == [
        (100, 100 + len(lines[0]), "x", 10),
        (100 + len(lines[0]), frames.end, "longer body", 11),
    ]
    assert frames.envelopes() is envelopes  # Built once.
    assert frames.envelopes(1) == envelopes[1:]


def test_frames_of_envelopes_hand_back_the_same_envelopes() -> None:
    envelopes = [Envelope(A, 0, 5, "m", P1, 3, OUTSIDE_TXN), Envelope(A, 9, 12, "n", P1, 4, 0)]
    frames = Frames.of_envelopes(A, envelopes)
    assert (frames.begin, frames.end, list(frames.messages)) == (0, 12, ["m", "n"])
    assert all(a is b for a, b in zip(frames.envelopes(), envelopes, strict=True))


def test_committed_spans_skip_acks_for_messages_and_content() -> None:
    content = [
        line(P1, 10, CONTINUE_TXN, "a"),
        line(P2, 20, OUTSIDE_TXN, "b"),
        line(P1, 11, CONTINUE_TXN, "c"),
        line(P1, 12, ACK_TXN, ""),
    ]
    committed = Committed(Sequencer().queue_frames(decode(b"".join(content))))  # type: ignore[arg-type]
    assert committed.messages() == [{"b": "b", "_meta": {"uuid": str(build_uuid(P2, 20, 0))}}] + [
        {"b": body, "_meta": {"uuid": str(build_uuid(P1, clock, CONTINUE_TXN))}}
        for body, clock in (("a", 10), ("c", 11))
    ]
    assert [e.message["b"] for e in committed.content()] == ["b", "a", "c"]
    assert [e.message["b"] for e in committed] == ["b", "a", "c", ""]
    assert len(committed) == 4
    assert committed[-1].is_ack
    assert committed == list(committed)


def test_committed_of_envelopes_splits_into_runs() -> None:
    envelopes = [
        Envelope(A, 0, 1, "a", P1, 3, CONTINUE_TXN),
        Envelope(A, 1, 2, None, P1, 4, ACK_TXN),
        Envelope(A, 2, 3, "b", P2, 3, OUTSIDE_TXN),
    ]
    committed = Committed.of_envelopes(envelopes)
    assert committed.messages() == ["a", "b"]
    assert committed.envelopes() == envelopes
    assert [(start, stop) for _, start, stop in committed.spans] == [(0, 1), (1, 2), (2, 3)]


# -- the sequencer, a run at a time


def test_a_run_that_replays_what_was_read_keeps_only_what_is_new() -> None:
    """A retried append lands again right after itself: one producer's run
    whose clocks fall back; the duplicates are dropped, the rest kept."""
    first = [line(P1, clock, CONTINUE_TXN, str(clock)) for clock in (10, 11, 12)]
    again = [line(P1, clock, CONTINUE_TXN, str(clock)) for clock in (11, 12, 13)]
    ack = [line(P1, 14, ACK_TXN, "")]
    for pure in (False, True):
        with pure_python() if pure else contextlib.nullcontext():
            committed = Committed(
                Sequencer().queue_frames(decode(b"".join(first + again + ack)))  # type: ignore[arg-type]
            )
            assert [m["b"] for m in committed.messages()] == ["10", "11", "12", "13"]


def test_open_transaction_pending_since_falls_inside_a_batch() -> None:
    """has_pending compares where a transaction began with a checkpoint's
    offset; a batch that straddles it has its offsets worked out."""
    lines = [line(P2, 5, OUTSIDE_TXN), line(P1, 10, CONTINUE_TXN)]
    seq = Sequencer()
    seq.queue_frames(decode(b"".join(lines)))
    assert seq.has_pending({A.name: 0})
    assert seq.has_pending({A.name: len(lines[0])})
    assert not seq.has_pending({A.name: len(lines[0]) + 1})
    [state] = [s for s in seq.producer_states() if s.producer == P1]
    assert state.begin == len(lines[0])


_ops = st.lists(
    st.tuples(st.sampled_from([P1, P2]), st.integers(0, 6), st.sampled_from([0, 1, 1, 1, 2])),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=_ops, cut=st.integers(1, 20), buffer_size=st.sampled_from([2, 5, 1000]))
def test_frames_commit_what_envelopes_one_by_one_commit(
    ops: list[tuple[bytes, int, int]], cut: int, buffer_size: int
) -> None:
    """Decoded frames, sequenced a run at a time in batches of any size,
    commit the same messages as the same envelopes queued one at a time."""
    clocks = {P1: 100, P2: 100}
    content = []
    for n, (producer, step, flags) in enumerate(ops):
        clocks[producer] += step - 2  # Sometimes back: duplicates and rollbacks.
        content.append(line(producer, max(clocks[producer], 1), flags, str(n)))
    envelopes = decode(b"".join(content)).envelopes() if content else []

    def fulfil(replay: Replay) -> list[Envelope]:
        return replay.select([e for e in envelopes if replay.begin <= e.begin < replay.end])

    one_by_one = Sequencer(buffer_size=buffer_size)
    expected = []
    for envelope in envelopes:
        for item in one_by_one.queue_uncommitted([envelope]):
            expected += fulfil(item) if isinstance(item, Replay) else [item]

    for pure in (False, True):
        with pure_python() if pure else contextlib.nullcontext():
            seq = Sequencer(buffer_size=buffer_size)
            got: list[Envelope] = []
            for start in range(0, len(content), cut):
                batch = b"".join(content[:start]), b"".join(content[start : start + cut])
                frames = decode(batch[1], offset=len(batch[0]))
                for span in seq.queue_frames(frames):
                    if isinstance(span, Replay):
                        got += fulfil(span)
                    else:
                        source, first, stop = span
                        got += source.envelopes(first, stop)
            assert got == expected
            assert seq.producer_states() == one_by_one.producer_states()


def test_a_slow_transaction_does_not_keep_every_batch_it_touched() -> None:
    """A producer with one message of an open transaction in each of many
    batches, among another producer's committed messages: the batches are
    let go (buffered spans are copied out of them), and the transaction
    still commits exactly its messages, with its checkpointed start intact."""
    seq = Sequencer(buffer_size=64)  # Room for the slow transaction: no replay.
    offset = 0
    committed: list[str] = []
    begin = None
    for batch in range(40):
        content = [line(P2, 1000 * batch + i + 1, OUTSIDE_TXN, "busy") for i in range(50)]
        content.append(line(P1, batch + 1, CONTINUE_TXN, f"slow {batch}"))
        frames = decode(b"".join(content), offset)
        if begin is None:
            begin = frames.ends[-2]  # Where the slow transaction began.
        offset = frames.end
        committed += Committed(seq.queue_frames(frames)).messages()  # type: ignore[arg-type]
        assert seq._retained_size <= 4 * 64 + len(frames)
        [state] = [s for s in seq.producer_states() if s.producer == P1]
        assert state.begin == begin
    assert seq.compactions > 0
    ack = decode(line(P1, 41, ACK_TXN, ""), offset)
    committed += Committed(seq.queue_frames(ack)).messages()  # type: ignore[arg-type]
    assert [m["b"] for m in committed if m["b"] != "busy"] == [f"slow {i}" for i in range(40)]
    assert sum(m["b"] == "busy" for m in committed) == 40 * 50
    assert seq._retained_size == 0 and seq.buffered == 0
