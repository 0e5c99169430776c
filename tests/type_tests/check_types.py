"""Type tests, as Trio's `type_tests/`: what users write must type-check.

`mypy --strict` (with `mypy.ini` beside this file) runs over

- the examples (`examples/*/`: the applications and their clients);
- every Python code block of `docs/*.md` that defines an application (a
  class with `consume_message`, or an `Aggregation` or `BaseApplication`
  subclass), each extracted into a module of its own;
- the snippets `pass_*.py` here,

and must report nothing; then over each `fail_*.py` here, which must fail
with exactly the errors its lines announce in `# E: <text>` comments (so a
contract that loosened until anything passes is caught too).

Run from the repository root: `python tests/type_tests/check_types.py`
(`nox -s test` does); exits non-zero naming what went wrong.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CONFIG = HERE / "mypy.ini"
EXAMPLES = [
    ROOT / "examples" / "word_count" / "word_count.py",
    ROOT / "examples" / "word_count" / "wordcountctl.py",
    ROOT / "examples" / "stream_sum" / "stream_sum.py",
    ROOT / "examples" / "stream_sum" / "chunker.py",
]

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_DEFINES_APP = re.compile(r"def consume_message|\((Aggregation|BaseApplication)\[")
_EXPECTED = re.compile(r"#\s*E:\s*(.+)$")


def doc_applications() -> dict[str, str]:
    """`docs/<name>.md:<line>` → the source of each block defining an application."""
    found: dict[str, str] = {}
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        for match in _BLOCK.finditer(text):
            source = match.group(1)
            if _DEFINES_APP.search(source):
                line = text.count("\n", 0, match.start()) + 2
                found[f"{doc.relative_to(ROOT)}:{line}"] = source
    return found


def mypy(paths: list[Path]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(CONFIG), *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return done.returncode, done.stdout + done.stderr


def expected_errors(path: Path) -> set[tuple[int, str]]:
    expected = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        m = _EXPECTED.search(line)
        if m:
            expected.add((number, m.group(1).strip()))
    return expected


def check_passing(blocks: dict[str, str], scratch: Path) -> list[str]:
    paths = list(EXAMPLES) + sorted(HERE.glob("pass_*.py"))
    origin: dict[str, str] = {}
    for where, source in sorted(blocks.items()):
        module = scratch / (re.sub(r"\W", "_", where) + ".py")
        module.write_text(source)
        origin[str(module)] = where
        paths.append(module)
    code, output = mypy(paths)
    if code == 0:
        return []
    for module, where in origin.items():
        output = output.replace(module, where + " (block)")
    return [f"mypy --strict reported errors in code users write:\n{output}"]


def check_failing() -> list[str]:
    problems = []
    for path in sorted(HERE.glob("fail_*.py")):
        expected = expected_errors(path)
        if not expected:
            problems.append(f"{path.name}: announces no '# E:' error")
            continue
        code, output = mypy([path])
        reported = [
            (int(m.group(1)), m.group(2))
            for m in re.finditer(rf"{re.escape(path.name)}:(\d+): error: (.+)", output)
        ]
        if code == 0:
            problems.append(f"{path.name} type-checks, but must fail")
        for line, text in sorted(expected):
            if not any(n == line and text in message for n, message in reported):
                problems.append(f"{path.name}:{line}: expected an error with {text!r}:\n{output}")
        unexpected = [
            (n, message) for n, message in reported if not any(n == line for line, _ in expected)
        ]
        if unexpected:
            problems.append(f"{path.name}: errors on lines that announce none: {unexpected}")
    return problems


def main() -> int:
    blocks = doc_applications()
    # A fixed directory, named by the docs: mypy's cache knows a module by
    # its name, and would report a stale path for a fresh one each run.
    scratch = Path(tempfile.gettempdir()) / f"gazette-trio-type-tests-{os.getuid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    problems = check_passing(blocks, scratch) + check_failing()
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"type tests: {len(EXAMPLES)} example(s), {len(blocks)} doc application(s), ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
