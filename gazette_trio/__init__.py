"""gazette-trio: Gazette's consumer framework for Python, on Trio.

Applications implement `Application` (see `gazette_trio.consumer`) and run
with `gazette-trio serve config.toml`. This package exports what an
application author needs; everything else is importable from its module but
not advertised here.
"""

from __future__ import annotations

from .opfuture import OpFuture, OpFutures

__version__ = "0.1.0"

__all__ = ["OpFuture", "OpFutures", "__version__"]
