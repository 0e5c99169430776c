"""Generate gazette_trio/protocol from proto/ with betterproto2, or check it.

    python tools/genprotos.py          # regenerate in place
    python tools/genprotos.py --check  # exit 1 if the committed code is stale

The compiler runs as a protoc plugin (grpcio-tools ships protoc) and formats
its output with ruff, so both must be installed; their versions are pinned in
the `dev` extra so that generation is reproducible.
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "gazette_trio" / "protocol"
OPTIONS = "client_generation=async,server_generation=async"
# Our hand-written modules in OUT_DIR, which generation must leave alone.
OURS = {"__init__.py", "labels.py", "validation.py", "codec.py", "headers.py"}


def generate(into: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    env = dict(os.environ)
    # The plugin and ruff live beside the interpreter running this script.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_betterproto2_out={into}",
            f"--python_betterproto2_opt={OPTIONS}",
            *protos,
        ],
        check=False,
        env=env,
        capture_output=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr.decode())
        raise SystemExit(f"protoc failed with exit code {result.returncode}")
    # The generated package root is empty; ours carries the docs instead.
    (into / "__init__.py").unlink()


def generated_files(root: Path) -> set[Path]:
    return {
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and not (p.parent == root and p.name in OURS)
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if committed code differs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        want = generated_files(fresh)
        have = generated_files(OUT_DIR) if OUT_DIR.exists() else set()

        if args.check:
            stale = sorted(str(p) for p in want ^ have)
            for rel in sorted(want & have):
                if not filecmp.cmp(fresh / rel, OUT_DIR / rel, shallow=False):
                    stale.append(str(rel))
                    diff = difflib.unified_diff(
                        (OUT_DIR / rel).read_text().splitlines(),
                        (fresh / rel).read_text().splitlines(),
                        f"committed/{rel}",
                        f"generated/{rel}",
                        lineterm="",
                        n=1,
                    )
                    print("\n".join(list(diff)[:40]))
            if stale:
                print("generated protocol code is stale; run `nox -s protos`:", *stale, sep="\n  ")
                return 1
            print(f"generated protocol code is up to date ({len(want)} files)")
            return 0

        for rel in have - want:
            (OUT_DIR / rel).unlink()
        for rel in want:
            (OUT_DIR / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fresh / rel, OUT_DIR / rel)
        print(f"wrote {len(want)} files under {OUT_DIR.relative_to(ROOT)}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
