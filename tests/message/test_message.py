"""The message contract and the ready-made message types."""

from __future__ import annotations

from gazette_trio.message import (
    ACK_TXN,
    CSVRecord,
    Envelope,
    JSONMessage,
    Message,
    acknowledgement_of,
    build_uuid,
    get_uuid,
    set_uuid,
)
from gazette_trio.protocol import protocol as pb

UUID = build_uuid(bytes.fromhex("010203040506"), 77, ACK_TXN)


def test_json_message_keeps_its_uuid_under_meta() -> None:
    message = JSONMessage({"n": 1})
    assert message.get_uuid() is None
    message.set_uuid(UUID)
    assert message == {"n": 1, "_meta": {"uuid": str(UUID)}}
    assert message.get_uuid() == UUID
    assert isinstance(message, Message)


def test_json_message_acknowledgement_is_an_empty_ack_of_the_same_type() -> None:
    class Click(JSONMessage):
        pass

    ack = Click({"n": 1}).new_acknowledgement("clicks/part-000")
    assert type(ack) is Click and ack == {"_meta": {"ack": True}}


def test_plain_dicts_are_json_messages() -> None:
    doc: dict[str, object] = {"n": 1}
    assert get_uuid(doc) is None
    set_uuid(doc, UUID)
    assert doc["_meta"] == {"uuid": str(UUID)} and get_uuid(doc) == UUID
    assert acknowledgement_of(doc, "j") == {"_meta": {"ack": True}}


def test_csv_record_uuid_is_its_first_column() -> None:
    record = CSVRecord(["", "a", "b"])
    assert record.get_uuid() is None
    record.set_uuid(UUID)
    assert record[0] == str(UUID) and record.get_uuid() == UUID
    assert record.new_acknowledgement("j") == ["", "", ""]


def test_envelope_of_a_message_carries_its_uuid_fields() -> None:
    message = JSONMessage()
    message.set_uuid(UUID)
    env = Envelope.of(pb.JournalSpec(name="j"), 10, 20, message)
    assert (env.producer, env.clock, env.flags) == (bytes.fromhex("010203040506"), 77, ACK_TXN)
    assert env.is_ack and "j@[10, 20)" in repr(env)
