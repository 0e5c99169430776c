"""The committed classes of word_count.proto are what the compiler makes of it.

The example's README gives the command that regenerates `word_count_pb/`;
this runs that command into a temporary directory and compares, so an edit
of the .proto without regenerating (or a hand edit of generated code) fails.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

from .conftest import EXAMPLES

EXAMPLE = EXAMPLES / "word_count"


def test_the_generated_query_api_matches_word_count_proto(tmp_path: Path) -> None:
    env = dict(os.environ)
    # The compiler plugin and ruff are installed beside this interpreter.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            f"--python_betterproto2_out={tmp_path}",
            "--python_betterproto2_opt=client_generation=async,server_generation=async",
            "word_count.proto",
        ],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    fresh = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    committed = EXAMPLE / "word_count_pb"
    have = sorted(
        str(p.relative_to(committed))
        for p in committed.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert have == fresh
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, committed, fresh, shallow=False)
    assert not mismatch and not errors, f"regenerate word_count_pb: {mismatch + errors} differ"
