"""The optional C speedups (`_speedups.c`), if built and not switched off.

Setting `GAZETTE_TRIO_NO_SPEEDUPS=1` runs the pure-Python twins instead:
for comparing the two, or ruling the extension out.
"""

from __future__ import annotations

import os
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("GAZETTE_TRIO_NO_SPEEDUPS"):
        return None
    try:
        from . import _speedups
    except ImportError:  # Installed without a C compiler.
        return None
    return _speedups


speedups = _load()
