"""`gazette-trio protoc`: an application's .proto to betterproto2 classes and grpclib stubs.

For applications that serve their own gRPC API (as `examples/word_count`'s
Query service) rather than, or beside, JSON query routes. It runs protoc
(from grpcio-tools) with the betterproto2 plugin, async clients and
servers, the way `examples/word_count/word_count_pb` was made and the
project's own `gazette_trio/protocol` is (`tools/genprotos.py`). The
compiler formats its output with ruff. All three come with the `codegen`
extra: `pip install 'gazette-trio[codegen]'`; without them the command says
so, and exits 2.

This module owns the command; nothing else in the package needs a compiler.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

OPTIONS = "client_generation=async,server_generation=async"
INSTALL = "pip install 'gazette-trio[codegen]'"


def missing_tools() -> list[str]:
    """What generation needs and this environment lacks."""
    missing = []
    if importlib.util.find_spec("grpc_tools") is None:
        missing.append("grpcio-tools")
    if importlib.util.find_spec("betterproto2_compiler") is None:
        missing.append("betterproto2-compiler")
    if shutil.which("ruff", path=_path()) is None:
        missing.append("ruff")
    return missing


def _path() -> str:
    # The plugin and ruff are installed beside the interpreter running us,
    # which may not be on PATH (a venv used without activating it).
    return str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")


@click.command("protoc", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("protos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory of the generated package (default: <first proto's stem>_pb beside it).",
)
@click.option(
    "-I",
    "--proto-path",
    "include",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Where imports are looked up (default: the first proto's directory).",
)
def protoc(protos: tuple[str, ...], out: str | None, include: tuple[str, ...]) -> None:
    """Generate betterproto2 classes and grpclib stubs for PROTOS.

    \b
    Example (what examples/word_count/word_count_pb is):
      gazette-trio protoc examples/word_count/word_count.proto

    Needs grpcio-tools, betterproto2-compiler and ruff:
    pip install 'gazette-trio[codegen]'.
    """
    missing = missing_tools()
    if missing:
        click.echo(
            f"gazette-trio protoc: {', '.join(missing)} not installed; run: {INSTALL}", err=True
        )
        raise SystemExit(2)
    first = Path(protos[0]).resolve()
    includes = [Path(i).resolve() for i in include] or [first.parent]
    target = Path(out).resolve() if out else first.parent / f"{first.stem}_pb"
    target.mkdir(parents=True, exist_ok=True)
    relative = []
    for proto in protos:
        path = Path(proto).resolve()
        root = next((i for i in includes if path.is_relative_to(i)), None)
        if root is None:
            raise click.UsageError(f"{proto}: not under any --proto-path ({', '.join(include)})")
        relative.append(str(path.relative_to(root)))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"-I{i}" for i in includes),
            f"--python_betterproto2_out={target}",
            f"--python_betterproto2_opt={OPTIONS}",
            *relative,
        ],
        check=False,
        env={**os.environ, "PATH": _path()},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        click.echo(result.stderr.rstrip(), err=True)
        click.echo(f"gazette-trio protoc: protoc exited with {result.returncode}", err=True)
        raise SystemExit(2)
    click.echo(f"generated {target}")
