"""The examples' modules are importable here as `gazette-trio serve` imports them;
`group` is the fixture owning the processes a test starts.

`serve` puts a config file's directory on `sys.path`, so each example's
modules are top-level modules of their directory (`word_count`,
`stream_sum`, ...), not a package. The tests import them the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import ProcessGroup

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

for _example in ("word_count", "stream_sum"):
    _directory = str(EXAMPLES / _example)
    if _directory not in sys.path:
        sys.path.insert(0, _directory)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Processes started through it; all stopped when the test ends."""
    g = ProcessGroup(tmp_path / "logs")
    try:
        yield g
    finally:
        g.close()
