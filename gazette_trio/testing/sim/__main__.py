"""`python -m gazette_trio.testing.sim`: run seeds of the deterministic simulation.

    python -m gazette_trio.testing.sim --seeds 2000 [--start 0] [--jobs 2]
    python -m gazette_trio.testing.sim --seed 1234 [--trace] [--logs]

With `--seeds N` it runs seeds START..START+N-1 and prints a summary (seeds,
wall time, faults injected by kind, invariant checks made) and a report for
each failed seed, with the command that replays it. With `--seed S` it runs
one seed and prints its scenario, trace hash and outcome (`--trace` prints
the whole event trace, `--logs` the runtime's log records). The exit status
is 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import sys

from .run import run_seed
from .runner import Summary, run_seeds
from .scenario import SimConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gazette_trio.testing.sim")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    which.add_argument("--seed", type=int, help="run this one seed, verbosely")
    parser.add_argument("--start", type=int, default=0, help="first seed of --seeds")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--trace", action="store_true", help="print the event trace (--seed)")
    parser.add_argument("--logs", action="store_true", help="print runtime logs (--seed)")
    parser.add_argument("--chaos-seconds", type=float, default=SimConfig.chaos_seconds)
    parser.add_argument("--converge-seconds", type=float, default=SimConfig.converge_seconds)
    parser.add_argument("--no-faults", action="store_true", help="inject no faults")
    parser.add_argument("--fault-scale", type=float, default=SimConfig.fault_scale)
    args = parser.parse_args(argv)
    config = SimConfig(
        chaos_seconds=args.chaos_seconds,
        converge_seconds=args.converge_seconds,
        faults=not args.no_faults,
        fault_scale=args.fault_scale,
    )

    if args.seed is not None:
        result = run_seed(
            args.seed, config, keep_trace=args.trace, log_to=sys.stdout if args.logs else None
        )
        if result.trace is not None:
            print("\n".join(result.trace))
        print(f"seed {result.seed}: {result.scenario}")
        print(
            f"trace sha256 {result.digest} ({result.trace_lines} lines), "
            f"{result.sim_seconds:.1f}s simulated in {result.wall_seconds:.3f}s "
            f"({result.cpu_seconds:.3f}s CPU)"
        )
        print("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(result.faults.items())))
        for anomaly in result.anomalies:
            print(f"anomaly: {anomaly}")
        print(result.report() if not result.ok else "ok")
        return 0 if result.ok else 1

    summary = Summary()
    seeds = range(args.start, args.start + args.seeds)
    for result in run_seeds(seeds, config, jobs=args.jobs):
        summary.add(result)
        if not result.ok:
            print(result.report(), flush=True)
        elif result.anomalies:
            print(f"seed {result.seed} ok with anomalies (replay: {result.command}):")
            print("\n".join(f"  {a}" for a in result.anomalies[:5]), flush=True)
    print(summary.render())
    return 0 if not summary.failed else 1


if __name__ == "__main__":
    sys.exit(main())
