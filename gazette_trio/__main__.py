"""`python -m gazette_trio` is the `gazette-trio` command."""

from .cli import main

main()
