"""The benchmark report: rows of (figure, floor, ratio, target), printed as a
table and written as JSON under bench-results/."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    group: str
    name: str
    value: float
    unit: str
    floor: float | None = None
    floor_name: str = ""
    # value / floor, oriented so that larger is better for throughputs and
    # smaller is better for latencies (see `higher_is_better`).
    ratio: float | None = None
    higher_is_better: bool = True
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    quick: bool = False
    rows: list[Row] = field(default_factory=list)

    def add(
        self,
        group: str,
        name: str,
        value: float,
        unit: str,
        *,
        floor: float | None = None,
        floor_name: str = "",
        higher_is_better: bool = True,
        target_ratio: float | None = None,
        target_value: float | None = None,
        note: str = "",
    ) -> Row:
        """Record one figure. A target is either a ratio against the floor or
        an absolute value (a latency ceiling, say)."""
        ratio = value / floor if floor else None
        met: bool | None = None
        target = ""
        if target_ratio is not None and ratio is not None:
            met = ratio >= target_ratio if higher_is_better else ratio <= target_ratio
            target = f"{'>=' if higher_is_better else '<='} {target_ratio:g}x floor"
        elif target_value is not None:
            met = value >= target_value if higher_is_better else value <= target_value
            target = f"{'>=' if higher_is_better else '<='} {target_value:g} {unit}"
        row = Row(
            group, name, value, unit, floor, floor_name, ratio, higher_is_better, target, met, note
        )
        self.rows.append(row)
        print(_format(row), flush=True)
        return row

    def write_json(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
        meta = {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "quick": self.quick,
        }
        path.write_text(
            json.dumps({"meta": meta, "rows": [asdict(r) for r in self.rows]}, indent=2)
        )
        return path


def _format(row: Row) -> str:
    parts = [f"[{row.group}] {row.name}: {row.value:,.2f} {row.unit}"]
    if row.floor is not None:
        parts.append(f"floor ({row.floor_name}) {row.floor:,.2f} {row.unit}")
    if row.ratio is not None:
        parts.append(f"ratio {row.ratio:.2f}x")
    if row.target:
        parts.append(f"target {row.target}: {'met' if row.met else 'NOT met'}")
    if row.note:
        parts.append(row.note)
    return " | ".join(parts)


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Fastest wall time of `repeat` runs of `fn`, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
