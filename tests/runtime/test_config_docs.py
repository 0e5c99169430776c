"""docs/config.md lists every field a config's `[journals]` and `[shards]` accept.

The config's keys proper are checked by test_config.py; these are the
JournalSpec and ShardSpec fields of the declarations, each with a row in its
own section, so a field added to the parsers without a line of docs fails
here.
"""

from __future__ import annotations

import re
from pathlib import Path

from gazette_trio.broker import journalspace
from gazette_trio.runtime.shardspace import _ENTRY_KEYS, SHARD_FIELDS

DOC = (Path(__file__).parents[2] / "docs" / "config.md").read_text()


def _rows(heading: str) -> set[str]:
    section = DOC.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_.]+)` \|", section, re.MULTILINE))


def test_every_journal_field_has_a_row() -> None:
    rows = _rows("### Journal fields: `[journals]`")
    fields = {
        *journalspace._SPEC_KEYS,
        *journalspace._NODE_KEYS,
        *(f"fragment.{key}" for key in journalspace._FRAGMENT_KEYS),
    }
    assert sorted(fields - rows) == []


def test_every_shard_field_has_a_row() -> None:
    rows = _rows("### Shard fields: `[shards]`")
    fields = {*SHARD_FIELDS, *_ENTRY_KEYS}
    assert sorted(fields - rows) == []
