"""Gazette's own source at the pinned version, for the tests that hold us to it.

The conformance suite (`tests/conformance/`) and the wire tests read
upstream facts at test time instead of copies: its `.proto` files and its
test data come from the module source that

    go mod download go.gazette.dev/core@v0.103.0

puts in the Go module cache (`.ci/run` runs it, from a throwaway module under
`.cache/gazette/`, when it builds Gazette's binaries). Nothing upstream is
vendored into this repository.

`module_root()` finds that source: under CI (env `CI` set) a missing module
fails the test loudly, elsewhere it skips the test, naming the command either
way. `upstream_protos()` compiles upstream's three `.proto` files with
grpcio-tools' protoc into a private descriptor pool, so that they never meet
`proto/`'s files of the same names in the default pool (`tests/official.py`
compiles those), and returns the message classes and service descriptors.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .services import absent

PINNED_VERSION = "v0.103.0"
MODULE = "go.gazette.dev/core"
GOGO_MODULE = "github.com/gogo/protobuf@v1.3.2"
DOWNLOAD_COMMAND = f"go mod download {MODULE}@{PINNED_VERSION}"

UPSTREAM_PROTOS = (
    "broker/protocol/protocol.proto",
    "consumer/protocol/protocol.proto",
    "consumer/recoverylog/recorded_op.proto",
)


@functools.lru_cache(maxsize=1)
def _gomodcache() -> Path:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is not None:
        out = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    if env := os.environ.get("GOMODCACHE"):
        return Path(env)
    return Path.home() / "go" / "pkg" / "mod"


def _candidates(relative: str) -> list[Path]:
    roots = [_gomodcache(), Path("/root/go/pkg/mod")]
    return [root / relative for root in dict.fromkeys(roots)]


def _missing(what: str) -> None:
    message = (
        f"{what} is not in the Go module cache; `{DOWNLOAD_COMMAND}` provides it "
        "(run it inside a Go module, e.g. the one .ci/run writes under .cache/gazette/)"
    )
    absent(message)


def find_module_root() -> Path | None:
    """Upstream's module source at the pinned version, or None if absent."""
    for path in _candidates(f"go.gazette.dev/core@{PINNED_VERSION}"):
        if (path / "go.mod").is_file():
            return path
    return None


def module_root() -> Path:
    """Upstream's module source; fails (CI) or skips the calling test if absent."""
    root = find_module_root()
    if root is None:
        _missing(f"{MODULE}@{PINNED_VERSION}")
    assert root is not None
    return root


def upstream_file(relative: str) -> Path:
    """A file of upstream's module source, e.g. `message/uuid_test.go`."""
    path = module_root() / relative
    assert path.is_file(), f"{relative} is not in {MODULE}@{PINNED_VERSION}"
    return path


def _gogo_root() -> Path:
    for path in _candidates(GOGO_MODULE):
        if (path / "gogoproto" / "gogo.proto").is_file():
            return path
    _missing(f"{GOGO_MODULE} (gogoproto/gogo.proto, a dependency of {MODULE})")
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=1)
def _compiled() -> SimpleNamespace:
    import grpc_tools
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    root = module_root()
    gogo = _gogo_root()
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out = Path(tempfile.mkdtemp(prefix="gazette-trio-upstream-pb-"))
    descriptor_set = out / "upstream.pb"
    # --python_out too, so that a failing case can be debugged against the
    # generated modules; the tests load the descriptor set into their own pool.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{gogo}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--descriptor_set_out={descriptor_set}",
            "--include_imports",
            *UPSTREAM_PROTOS,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"protoc failed on upstream's protos:\n{result.stderr}"

    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:  # dependencies come first
        pool.Add(file)

    def file_of(name: str) -> Any:
        return pool.FindFileByName(name)

    def message(full_name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))

    return SimpleNamespace(
        pool=pool,
        out=out,
        protocol=file_of(UPSTREAM_PROTOS[0]),
        consumer=file_of(UPSTREAM_PROTOS[1]),
        recoverylog=file_of(UPSTREAM_PROTOS[2]),
        message=message,
    )


def upstream_protos() -> SimpleNamespace:
    """Upstream's protos, compiled once per session.

    Attributes: `protocol`, `consumer`, `recoverylog` (FileDescriptors of
    upstream's three files), `pool` (their private DescriptorPool), and
    `message(full_name)`, the official runtime's class of a message, e.g.
    `upstream_protos().message("protocol.JournalSpec")`.
    """
    module_root()  # skip or fail before compiling, naming the download command
    return _compiled()
