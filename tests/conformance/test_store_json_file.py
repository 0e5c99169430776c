"""Upstream: consumer/store_json_file.go (go.gazette.dev/core v0.103.0).

Upstream has no test file for `JSONFileStore`; these cases hold our state
file to the bytes upstream's writes and to what upstream's reader accepts,
so a shard's recovery log can move between a Go member and ours. The facts
come from upstream's source at test time: the order of the three documents
`StartCommit` encodes, and the json tags of the generated `Checkpoint`
structs (consumer/protocol/protocol.pb.go), which are what encoding/json
names the fields by.

Cases that cannot apply: a Go program writing a real file. Gazette v0.103
ships no binary that runs a `JSONFileStore` (its examples use RocksDB and
SQL stores), so the Go side is constructed byte by byte below, each part
commented with the upstream code that produces it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from gazette_trio.consumer.stores.json_file_format import decode_document, encode_document
from gazette_trio.protocol import consumer as pc
from tests.upstream import upstream_file

UPSTREAM = "consumer/store_json_file.go"
PATH = Path("state.json")

PRODUCER = bytes.fromhex("0102030405f6")
LAST_ACK = 0xF00D_0000_0000_0001  # a Clock beyond 2**63: fixed64, encoded as uint64

# A checkpoint as Go's transaction loop builds it (pc.BuildCheckpoint).
CHECKPOINT = pc.Checkpoint(
    sources={
        "a/journal": pc.CheckpointSource(
            read_through=1234,
            producers=[
                pc.CheckpointSourceProducerEntry(
                    id=PRODUCER,
                    state=pc.CheckpointProducerState(last_ack=LAST_ACK, begin=-1),
                )
            ],
        ),
        "b/journal": pc.CheckpointSource(read_through=5678),
    },
    ack_intents={"c/journal": b'{"ack":true}'},
)
STATE = {"counts": {"apple": 3, "pear": 1}, "note": "<b> & </b>"}

GO_FILE = b"".join(
    [
        # enc.Encode(pc.FlattenReadThrough(s.checkpoint)): pb.Offsets, a Go
        # map[Journal]Offset; encoding/json sorts map keys. Encode appends "\n".
        b'{"a/journal":1234,"b/journal":5678}\n',
        # enc.Encode(s.State): the application's value. Encoder escapes <, >
        # and & by default (SetEscapeHTML(true)).
        b'{"counts":{"apple":3,"pear":1},"note":"\\u003cb\\u003e \\u0026 \\u003c/b\\u003e"}\n',
        # enc.Encode(s.checkpoint): the generated struct, fields in declaration
        # order under their json tags: "sources" (no omitempty),
        # "ack_intents,omitempty". Checkpoint_Source: "read_through,omitempty",
        # "producers" (a nil slice is null). ProducerEntry: "id,omitempty"
        # ([]byte as standard base64), "state". ProducerState:
        # "last_ack,omitempty" (uint64), "begin,omitempty" (int64).
        b'{"sources":{"a/journal":{"read_through":1234,"producers":[{"id":"AQIDBAX2",'
        b'"state":{"last_ack":17297481743799943169,"begin":-1}}]},'
        b'"b/journal":{"read_through":5678,"producers":null}},'
        b'"ack_intents":{"c/journal":"eyJhY2siOnRydWV9"}}\n',
    ]
)


def test_a_file_upstream_wrote_loads() -> None:
    assert decode_document(GO_FILE, PATH) == (STATE, CHECKPOINT)


def test_ours_writes_the_bytes_upstream_writes() -> None:
    assert encode_document(STATE, CHECKPOINT, "shard") == GO_FILE


def test_upstream_encodes_offsets_then_state_then_checkpoint() -> None:
    source = upstream_file(UPSTREAM).read_text()
    encodes = re.findall(r"enc\.Encode\(([^\n]*)\)", source)
    assert encodes == ["pc.FlattenReadThrough(s.checkpoint)", "s.State", "s.checkpoint"]


def go_json_tags(struct: str) -> list[str]:
    """The json tags of a generated Go struct's fields, in order."""
    source = upstream_file("consumer/protocol/protocol.pb.go").read_text()
    body = re.search(rf"^type {struct} struct {{\n(.*?)^}}", source, re.M | re.S)
    assert body is not None, struct
    return re.findall(r'json:"([^"]*)"', body.group(1))


@pytest.mark.parametrize(
    ("struct", "written"),
    [
        ("Checkpoint", ["sources", "ack_intents"]),
        ("Checkpoint_Source", ["read_through", "producers"]),
        ("Checkpoint_Source_ProducerEntry", ["id", "state"]),
        ("Checkpoint_ProducerState", ["last_ack", "begin"]),
    ],
)
def test_field_names_and_omission_follow_the_generated_structs_json_tags(
    struct: str, written: list[str]
) -> None:
    """What our writer emits for a full checkpoint, and what it leaves out
    of an empty one, are the tags' names, order and `omitempty`."""
    tags = go_json_tags(struct)
    assert [tag.split(",")[0] for tag in tags] == written
    full = orjson.loads(GO_FILE.splitlines()[2])
    empty = orjson.loads(
        encode_document(
            {},
            pc.Checkpoint(
                sources={
                    "j": pc.CheckpointSource(
                        producers=[
                            pc.CheckpointSourceProducerEntry(state=pc.CheckpointProducerState())
                        ]
                    )
                }
            ),
            "shard",
        ).splitlines()[2]
    )
    objects: dict[str, tuple[Any, Any]] = {
        "Checkpoint": (full, empty),
        "Checkpoint_Source": (full["sources"]["a/journal"], empty["sources"]["j"]),
        "Checkpoint_Source_ProducerEntry": (
            full["sources"]["a/journal"]["producers"][0],
            empty["sources"]["j"]["producers"][0],
        ),
        "Checkpoint_ProducerState": (
            full["sources"]["a/journal"]["producers"][0]["state"],
            empty["sources"]["j"]["producers"][0]["state"],
        ),
    }
    full_object, empty_object = objects[struct]
    assert list(full_object) == written
    assert list(empty_object) == [tag.split(",")[0] for tag in tags if "omitempty" not in tag]


def test_offsets_override_the_checkpoints_read_through_as_upstreams_reader_does() -> None:
    """NewJSONFileStore applies the first document's offsets over the
    checkpoint's sources, keeping their producers."""
    lines = GO_FILE.splitlines(keepends=True)
    data = b'{"a/journal":99,"new/journal":7}\n' + lines[1] + lines[2]
    _, checkpoint = decode_document(data, PATH)
    assert checkpoint.sources["a/journal"].read_through == 99
    assert checkpoint.sources["a/journal"].producers == CHECKPOINT.sources["a/journal"].producers
    assert checkpoint.sources["new/journal"] == pc.CheckpointSource(read_through=7)
    assert checkpoint.sources["b/journal"].read_through == 5678


def test_an_offsets_only_file_of_older_releases_loads() -> None:
    """The checkpoint document may be missing (Decode's io.EOF is accepted)."""
    state, checkpoint = decode_document(b'{"a/journal":1234}\n{"n":1}\n', PATH)
    assert (state, checkpoint) == (
        {"n": 1},
        pc.Checkpoint(sources={"a/journal": pc.CheckpointSource(read_through=1234)}),
    )


def test_go_decoder_leniency_is_ours() -> None:
    """encoding/json matches field names case-insensitively, ignores unknown
    fields, takes null as empty, and a json.Decoder reads values separated by
    any whitespace (here pretty-printed across lines)."""
    data = b"""{
      "a/journal": 1234
    }
    {"n": 1}   {"Sources": {"a/journal": {"READ_THROUGH": 1234, "Producers": null,
        "unknown": true}}, "Ack_Intents": null, "extra": [1, 2]}
    """
    state, checkpoint = decode_document(data, PATH)
    assert state == {"n": 1}
    assert checkpoint == pc.Checkpoint(
        sources={"a/journal": pc.CheckpointSource(read_through=1234)}
    )
