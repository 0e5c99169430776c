"""Durations written the way Gazette writes them: "1s", "500ms", "1m30s".

Config files and shardspace/journalspace YAML carry durations as Go
`time.Duration` strings, because that is what gazctl reads and prints. This
module parses that grammar (a sequence of decimal numbers, each with a unit
among ns, us/µs, ms, s, m, h, optionally signed; a bare "0" is zero) and
formats a duration the way Go's `Duration.String` does, so that a spec printed
here and one printed by gazctl look the same.

It owns only the text form. What range a particular setting allows (a lease
TTL must be positive, for example) is checked by whoever reads the setting.
"""

from __future__ import annotations

import datetime
import re

__all__ = ["DurationError", "format_duration", "parse_duration"]

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 MICRO SIGN, as Go prints it
    "μs": 1_000,  # U+03BC GREEK SMALL LETTER MU, which Go also accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}

_TERM = re.compile(r"(\d+\.?\d*|\.\d+)([a-zµμ]+)")

EXAMPLES = '"1s", "500ms", "2m" or "1h30m"'


class DurationError(ValueError):
    """The text is not a Go-style duration."""


def parse_duration(text: str) -> datetime.timedelta:
    """Parse a Go duration string ("1s", "1.5h", "2m30s") into a timedelta.

    Raises `DurationError` naming the text and the expected form. Precision
    below a microsecond (timedelta's resolution) is rounded away.
    """
    if not isinstance(text, str):
        raise DurationError(f"expected a duration string like {EXAMPLES}, got {text!r}")
    s = text.strip()
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return datetime.timedelta(0)
    if not s:
        raise DurationError(f"expected a duration like {EXAMPLES}, got {text!r}")
    total_ns = 0.0
    pos = 0
    while pos < len(s):
        m = _TERM.match(s, pos)
        if m is None:
            raise DurationError(f"expected a duration like {EXAMPLES}, got {text!r}")
        number, unit = m.groups()
        if unit not in _NS_PER_UNIT:
            raise DurationError(
                f"expected a duration like {EXAMPLES}, got {text!r} "
                f"(unknown unit {unit!r}; units are ns, us, ms, s, m and h)"
            )
        total_ns += float(number) * _NS_PER_UNIT[unit]
        pos = m.end()
    return datetime.timedelta(microseconds=sign * round(total_ns / 1_000))


def _trim(value: str) -> str:
    return value.rstrip("0").rstrip(".") if "." in value else value


def _fraction(ns: int, unit_ns: int) -> str:
    whole, rest = divmod(ns, unit_ns)
    if rest == 0:
        return str(whole)
    digits = len(str(unit_ns)) - 1
    return _trim(f"{whole}.{rest:0{digits}d}")


def format_duration(value: datetime.timedelta | None) -> str:
    """Format like Go's `time.Duration.String`: "0s", "500ms", "1m30s", "1h0m0s"."""
    if value is None:
        return "0s"
    ns = (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_fraction(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    seconds = _fraction(rest, 1_000_000_000)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"
