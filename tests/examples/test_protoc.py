"""`gazette-trio protoc` regenerates an application's gRPC classes exactly.

`examples/word_count/word_count_pb` is what the command makes of
`word_count.proto` (the example's README says so); the command run on a
copy of the proto must give the committed files, byte for byte. The
compiler comes with the `codegen` extra (part of `dev`, which the tests
install).
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

from .processes import GAZETTE_TRIO, REPO

EXAMPLE = REPO / "examples" / "word_count"


def files(root: Path) -> set[Path]:
    return {
        p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def test_protoc_makes_the_word_count_classes_as_committed(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "word_count.proto", tmp_path)
    done = subprocess.run(
        [GAZETTE_TRIO, "protoc", str(tmp_path / "word_count.proto")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"generated {tmp_path / 'word_count_pb'}\n"
    made, committed = tmp_path / "word_count_pb", EXAMPLE / "word_count_pb"
    assert files(made) == files(committed)
    for name in files(made):
        assert filecmp.cmp(made / name, committed / name, shallow=False), name


def test_protoc_names_a_proto_it_cannot_compile(tmp_path: Path) -> None:
    (tmp_path / "broken.proto").write_text('syntax = "proto3";\nmessage M { int32 = 1; }\n')
    done = subprocess.run(
        [GAZETTE_TRIO, "protoc", str(tmp_path / "broken.proto")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "broken.proto:2" in done.stderr, done.stderr
    assert "protoc exited with 1" in done.stderr
