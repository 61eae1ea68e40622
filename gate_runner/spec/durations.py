"""Durations (``30s``, ``1m30s``) and sizes (``64KiB``) as the spec writes them, and as numbers."""

from __future__ import annotations

__all__ = (
    "DURATION_HINT",
    "DURATION_PATTERN",
    "SIZE_HINT",
    "SIZE_PATTERN",
    "format_duration",
    "parse_duration",
    "parse_size",
)

import math
import re
from typing import Final

DURATION_HINT: Final = "use a number with a unit: 500ms, 30s, 5m, 1h"
SIZE_HINT: Final = "use a whole number of bytes or a number with a unit: 512B, 64KiB, 1MiB"

# Go's time.ParseDuration grammar minus the sign: a bare number is refused because "30" could
# mean seconds or milliseconds depending on who wrote it. The schema carries the same pattern.
DURATION_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
SIZE_PATTERN: Final = r"^[0-9]+(B|KB|MB|GB|KiB|MiB|GiB)?$"

_DURATION_RE: Final = re.compile(DURATION_PATTERN.strip("^$"))
_PART_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_SIZE_RE: Final = re.compile(r"([0-9]+)(B|KB|MB|GB|KiB|MiB|GiB)?")

_SECONDS_PER_UNIT: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_BYTES_PER_UNIT: Final = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}


def parse_duration(text: str) -> float:
    """Return the duration ``text`` (``200ms``, ``1m30s``) in seconds.

    Raises ValueError for a bare number, a negative or an unknown unit.
    """
    if not isinstance(text, str) or not _DURATION_RE.fullmatch(text):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _SECONDS_PER_UNIT[unit] for n, unit in _PART_RE.findall(text))


def format_duration(seconds: float) -> str:
    """Return the shortest spec form of ``seconds``: 90 -> ``1m30s``, 0.2 -> ``200ms``."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"cannot write {seconds!r} as a duration")
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("us", 1_000)):
            if nanos % size == 0:
                return f"{nanos // size}{unit}"
        return f"{nanos}ns"
    whole, frac = divmod(nanos, 1_000_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if frac:
        digits = f"{frac:09d}".rstrip("0")
        text += f"{secs}.{digits}s"
    elif secs or not text:
        text += f"{secs}s"
    return text


def parse_size(value: int | str) -> int:
    """Return a size in bytes: an int as is, or a string such as ``64KiB`` or ``1MB``."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"not a size: {value!r}")
        return value
    match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not a size: {value!r}")
    return int(match.group(1)) * _BYTES_PER_UNIT[match.group(2)]
