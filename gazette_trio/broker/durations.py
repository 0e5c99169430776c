"""Go duration strings ("1m0s", "720h", "1.5s", "300ms") as Python timedeltas.

Gazette's YAML (gazctl's journalspace and shardspace files) and its
validation messages write durations the way Go's `time.Duration.String`
does; operators copy them between tools. This module converts both ways and
owns nothing else.
"""

from __future__ import annotations

import datetime
import re

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> datetime.timedelta:
    """Parse "1h2m3.5s", "-30s", "0". Raises ValueError naming the text."""
    s = text.strip()
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return datetime.timedelta(0)
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total_ns = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}: expected <number><unit> at {s[pos:]!r}")
        total_ns += float(m.group(1)) * _UNITS_NS[m.group(2)]
        pos = m.end()
    return datetime.timedelta(microseconds=sign * round(total_ns / 1_000))


def format_duration(d: datetime.timedelta) -> str:
    """Go's rendering: "1h0m0s", "1m30s", "1.5s", "250ms", "0s"."""
    us = round(d.total_seconds() * 1_000_000)
    if us == 0:
        return "0s"
    sign = "-" if us < 0 else ""
    us = abs(us)
    if us < 1_000_000:
        if us % 1_000 == 0:
            return f"{sign}{us // 1_000}ms"
        if us < 1_000:
            return f"{sign}{us}µs"
        return f"{sign}{_trim(us / 1_000)}ms"
    hours, rem = divmod(us, 3_600_000_000)
    minutes, rem = divmod(rem, 60_000_000)
    seconds = _trim(rem / 1_000_000)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _trim(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"
