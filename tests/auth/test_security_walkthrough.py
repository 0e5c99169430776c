"""docs/security.md's secured word-count walkthrough, run as written.

The blocks marked `<!-- walkthrough: setup|serve|client -->` are taken from
the document and run with bash from the repository root, with HOME a scratch
directory (the secrets go under it), the project's `python` and
`gazette-trio` first on PATH, a scratch data directory, and free ports in
place of 8080 and 8090. The setup block runs once, the serve block in the
background, and each command of the client block after the block's variable
lines; a query is asked again until the member has counted (the document's
reader waits the same way, by reading the answer).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "security.md"


def blocks() -> dict[str, str]:
    text = DOC.read_text()
    found = dict(re.findall(r"<!-- walkthrough: (\w+) -->\n```sh\n(.*?)```", text, re.DOTALL))
    assert set(found) == {"setup", "serve", "client"}, "docs/security.md lost a walkthrough block"
    return found


class Walkthrough:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.grpc = free_port()
        self.http = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAZETTE_TRIO_")}
        env.update(
            HOME=str(home),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
            GAZETTE_TRIO_DATA_DIR=str(home / "data"),
            GAZETTE_TRIO_MEMBER__PORT=str(self.grpc),
            GAZETTE_TRIO_HTTP__PORT=str(self.http),
        )
        self.env = env

    def ported(self, text: str) -> str:
        return text.replace(":8080", f":{self.grpc}").replace(":8090", f":{self.http}")

    def bash(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", script],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def walkthrough(tmp_path: Path) -> Iterator[tuple[Walkthrough, subprocess.Popen[bytes]]]:
    for tool in ("openssl", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"the walkthrough uses the {tool} command")
    w = Walkthrough(tmp_path)
    doc = blocks()
    setup = w.bash("set -e\n" + doc["setup"])
    assert setup.returncode == 0, setup.stderr
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed below)
    serve = subprocess.Popen(
        ["bash", "-c", "set -e\n" + w.ported(doc["serve"])],
        cwd=REPO,
        env=w.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "serving consumer group" not in (tmp_path / "serve.log").read_text():
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        yield w, serve
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
        log.close()


@pytest.mark.slow
def test_the_secured_word_count_walkthrough_runs_as_written(
    walkthrough: tuple[Walkthrough, subprocess.Popen[bytes]],
) -> None:
    w, _ = walkthrough
    serve_log = (w.home / "serve.log").read_text()
    assert f"on https://127.0.0.1:{w.grpc}" in serve_log
    lines = [x for x in w.ported(blocks()["client"]).splitlines() if x.strip()]
    state = [x for x in lines if re.match(r"^(export )?[A-Z_]+=\S*$", x)]
    commands = [x for x in lines if x not in state]
    outputs: dict[str, subprocess.CompletedProcess[str]] = {}
    for command in commands:
        script = "\n".join([*state, command])
        result = w.bash(script)
        if "wordcountctl.py query" in command:
            deadline = time.monotonic() + 60
            while not re.search(r"^fox\s+1\b", result.stdout, re.MULTILINE):
                assert time.monotonic() < deadline, (result.stdout, result.stderr)
                time.sleep(0.5)
                result = w.bash(script)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        outputs[command] = result

    def output(fragment: str) -> subprocess.CompletedProcess[str]:
        """The output of the first command containing `fragment`."""
        return next(r for c, r in outputs.items() if fragment in c)

    assert re.search(r"^the\s+2\b", output("query").stdout, re.MULTILINE)
    assert "count-003" in output("shards list -e https").stdout
    assert '"word":"fox"' in output("read examples/word-count/counts").stdout.replace(" ", "")
    refused = output('|| echo "refused without a token"')
    assert "refused without a token" in refused.stdout
    assert "missing or empty Authorization token" in refused.stderr
    plaintext = output('|| echo "refused in plaintext"')
    assert "refused in plaintext" in plaintext.stdout
    assert "dial https://localhost" in plaintext.stderr
    assert "{" in output("curl").stdout
