"""Benchmarks, run by `nox -s bench` (never part of `nox -s test`).

Each module here that defines `run(report: Report) -> None` (sync, or async
run under Trio) is one group of benchmarks. Machines here are noisy, so every
figure is reported beside a floor measured in the same run: what plain Python
does on the same work. The ratio is the figure to read.
"""
