"""Recovery logs: a store's local files recorded into a journal, and played back.

A stateful shard keeps its store in local files. A `Recorder` writes every
change to those files into the shard's recovery-log journal as Gazette
RecordedOps, fenced by journal registers so only the current primary can
write. A `Player` rebuilds the files elsewhere from FSMHints, tails the log
as a hot standby, and on hand-off becomes the next Recorder. Hints live in
etcd under the shard's `hint_prefix` (`hint_store`). Everything on the wire
is Gazette's own format, so logs and hints move between the two.

Modules, one concept each: `checksum` (CRC-32C chain), `codec` (RecordedOp
bytes and fixed frames), `stream` (log bytes into ops and payloads),
`segment` (runs of one author's ops), `hints` (FSMHints as data), `fsm`
(which ops count), `author` (writer ids and their fence register),
`recorder`, `player`, `hint_store`. See docs/recoverylog.md.
"""

from .author import AUTHOR_LABEL, fence, fence_selector, new_author
from .codec import (
    FRAME_HEADER_LENGTH,
    FRAME_MAGIC,
    RecordedOpDecodeError,
    decode_op,
    encode_op,
    frame,
    frame_length,
    frame_op,
)
from .fsm import FSM, FnodeState, Outcome
from .hint_store import (
    FetchedHints,
    HintsStoreError,
    assignment_guard,
    fetch_hints,
    hint_backup_keys,
    hint_primary_key,
    recovery_log,
    store_recorded_hints,
    store_recovered_hints,
)
from .hints import (
    HintsError,
    decode_hints,
    hints_from_json,
    hints_to_json,
    hints_to_proto,
    live_log_segments,
    validate_hints,
)
from .player import (
    STAGING_DIR,
    Playback,
    PlaybackError,
    Player,
    PlayerState,
    check_recovery_log,
)
from .recorder import (
    AllOf,
    LogAppender,
    RecordedFile,
    Recorder,
    RecorderError,
    RecorderFencedError,
    open_recorder,
)
from .segment import SegmentError, SegmentSet, reduce_segments, validate_segment
from .stream import Desync, LogDecodeError, LogDecoder, OpRead, Payload

__all__ = [
    "AUTHOR_LABEL",
    "FRAME_HEADER_LENGTH",
    "FRAME_MAGIC",
    "FSM",
    "STAGING_DIR",
    "AllOf",
    "Desync",
    "FetchedHints",
    "FnodeState",
    "HintsError",
    "HintsStoreError",
    "LogAppender",
    "LogDecodeError",
    "LogDecoder",
    "OpRead",
    "Outcome",
    "Payload",
    "Playback",
    "PlaybackError",
    "Player",
    "PlayerState",
    "RecordedFile",
    "RecordedOpDecodeError",
    "Recorder",
    "RecorderError",
    "RecorderFencedError",
    "SegmentError",
    "SegmentSet",
    "assignment_guard",
    "check_recovery_log",
    "decode_hints",
    "decode_op",
    "encode_op",
    "fence",
    "fence_selector",
    "fetch_hints",
    "frame",
    "frame_length",
    "frame_op",
    "hint_backup_keys",
    "hint_primary_key",
    "hints_from_json",
    "hints_to_json",
    "hints_to_proto",
    "live_log_segments",
    "new_author",
    "open_recorder",
    "recovery_log",
    "reduce_segments",
    "store_recorded_hints",
    "store_recovered_hints",
    "validate_hints",
    "validate_segment",
]
