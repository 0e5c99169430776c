"""Exactly-once messages over at-least-once journals, as Gazette's `message` package.

- `uuids`: Gazette's v1 UUID layout, producer ids, the monotonic `Clock`.
- `message`: the `Message` contract, `Envelope`, `JSONMessage`, `CSVRecord`.
- `framing` and `json_framing`, `fixed_framing`, `csv_framing`: frames by
  journal `content-type`, incremental decoders with exact offsets.
- `frames`: decoded frames as columns (`Frames`), runs, and what committed
  (`Committed`: spans of frames, envelopes built on demand).
- `sequencer`: read-uncommitted → read-committed, producer states, replays.
- `reader`: read-uncommitted and read-committed iteration over journals.
- `publisher` and `mapping`: publishing committed and transactional
  messages, ACK intents, mapping messages onto journal partitions.
"""

from .frames import Committed, Frames
from .framing import (
    CONTENT_TYPE,
    CSV,
    JSON_LINES,
    PROTO_FIXED,
    Decoded,
    DesyncError,
    FrameDecoder,
    Framing,
    FramingError,
    content_type_of,
    framing_by_content_type,
    framing_for,
    register_framing,
)
from .mapping import (
    Mapping,
    NoPartitions,
    Partitions,
    fixed_mapping,
    fnv1a_32,
    modulo_mapping,
    open_partitions,
    random_mapping,
    rendezvous_mapping,
)
from .message import (
    JSON_UUID_PATH,
    CSVRecord,
    Envelope,
    JSONMessage,
    Message,
    acknowledgement_of,
    get_uuid,
    set_uuid,
)
from .publisher import Appender, Publisher
from .reader import (
    CommittedReader,
    UncommittedReader,
    committed_only,
    fetch_spec,
    open_committed,
    open_uncommitted,
    replay,
    sequence,
)
from .sequencer import (
    DEFAULT_BUFFER_SIZE,
    ProducerState,
    Replay,
    ReplayError,
    Sequencer,
    producer_states_of,
    read_through_of,
)
from .uuids import (
    ACK_TXN,
    CONTINUE_TXN,
    OUTSIDE_TXN,
    UUID,
    Clock,
    ProducerID,
    build_uuid,
    clock_from_unix_ns,
    clock_of,
    clock_to_unix_ns,
    fields_of,
    fields_of_string,
    fields_of_strings,
    flags_name,
    flags_of,
    new_producer_id,
    producer_of,
)

__all__ = [
    "ACK_TXN",
    "CONTENT_TYPE",
    "CONTINUE_TXN",
    "CSV",
    "DEFAULT_BUFFER_SIZE",
    "JSON_LINES",
    "JSON_UUID_PATH",
    "OUTSIDE_TXN",
    "PROTO_FIXED",
    "UUID",
    "Appender",
    "CSVRecord",
    "Clock",
    "Committed",
    "CommittedReader",
    "Decoded",
    "DesyncError",
    "Envelope",
    "FrameDecoder",
    "Frames",
    "Framing",
    "FramingError",
    "JSONMessage",
    "Mapping",
    "Message",
    "NoPartitions",
    "Partitions",
    "ProducerID",
    "ProducerState",
    "Publisher",
    "Replay",
    "ReplayError",
    "Sequencer",
    "UncommittedReader",
    "acknowledgement_of",
    "build_uuid",
    "clock_from_unix_ns",
    "clock_of",
    "clock_to_unix_ns",
    "committed_only",
    "content_type_of",
    "fetch_spec",
    "fields_of",
    "fields_of_string",
    "fields_of_strings",
    "fixed_mapping",
    "flags_name",
    "flags_of",
    "fnv1a_32",
    "framing_by_content_type",
    "framing_for",
    "get_uuid",
    "modulo_mapping",
    "new_producer_id",
    "open_committed",
    "open_partitions",
    "open_uncommitted",
    "producer_of",
    "producer_states_of",
    "random_mapping",
    "read_through_of",
    "register_framing",
    "rendezvous_mapping",
    "replay",
    "sequence",
    "set_uuid",
]
