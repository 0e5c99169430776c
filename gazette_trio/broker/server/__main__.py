"""`python -m gazette_trio.broker.server --data-dir DIR --port P`: run the journal server."""

from __future__ import annotations

from ..cli import serve

if __name__ == "__main__":
    serve.main(prog_name="python -m gazette_trio.broker.server")
