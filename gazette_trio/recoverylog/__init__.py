"""Recovery logs: a store's local files recorded into a journal, and played back.

A stateful shard keeps its store in local files; a `Recorder` writes every
change to those files into the shard's recovery-log journal as Gazette
RecordedOps, fenced by journal registers so only the current primary can
write. A `Player` rebuilds the files elsewhere from FSMHints, then tails the
log as a hot standby, and on hand-off becomes the next Recorder.
"""
