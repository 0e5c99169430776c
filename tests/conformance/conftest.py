"""The conformance suite: Gazette's own test cases, translated to Python.

Each file ports one upstream test file of go.gazette.dev/core at the pinned
version (`tests.upstream.PINNED_VERSION`): the cases (inputs and expected
outputs), run against our API. Its docstring names the upstream file and
lists any case that cannot apply, and why. Every test here carries the
`conformance` marker (`pytest -m conformance` runs just this suite).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.conformance)
