"""`python -m benchmarks [--only a,b] [--quick]`: run benchmark groups."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import trio

import benchmarks

from .harness import Report

SKIP = {"harness", "__main__"}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", default="", help="comma-separated groups (module names)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--out", default="bench-results", help="directory for the JSON report")
    args = parser.parse_args()

    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name not in SKIP)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(names)
        if unknown:
            parser.error(f"unknown groups {sorted(unknown)}; known: {names}")
        names = [n for n in names if n in wanted]

    report = Report(quick=args.quick)
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        run = getattr(module, "run", None)
        if run is None:
            continue
        print(f"\n== {name}", flush=True)
        if inspect.iscoroutinefunction(run):
            trio.run(run, report)
        else:
            run(report)
    path = report.write_json(Path(args.out))
    missed = [r for r in report.rows if r.met is False]
    print(f"\n{len(report.rows)} figures, {len(missed)} below target; written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
