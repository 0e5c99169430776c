"""The examples' modules are importable here as `gazette-trio serve` imports them.

`serve` puts a config file's directory on `sys.path`, so each example's
modules are top-level modules of their directory (`word_count`,
`stream_sum`, ...), not a package. The tests import them the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

for _example in ("word_count", "stream_sum"):
    _directory = str(EXAMPLES / _example)
    if _directory not in sys.path:
        sys.path.insert(0, _directory)
