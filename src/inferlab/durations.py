"""Durations as people write them on command lines and in YAML: "250ms", "10s", "3m", "1h" or bare seconds.

A module of its own (it needs only inferlab.errors) so the load generator and function specs share one grammar
without one importing the other.
"""

from __future__ import annotations

import math

from inferlab.errors import InvalidInput


def parse_duration(text: str) -> float:
    """Seconds from "10s", "3m", "1h", "250ms" or a bare number of seconds (hey's -z and wrk's -d style)."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    stripped = text.strip().lower()
    for suffix in ("ms", "s", "m", "h"):
        if stripped.endswith(suffix):
            number, scale = stripped[: -len(suffix)], units[suffix]
            break
    else:
        number, scale = stripped, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        raise InvalidInput(f"duration {text!r}: expected e.g. 10s, 3m, 1h, 250ms") from None
    if value < 0 or not math.isfinite(value):
        raise InvalidInput(f"duration {text!r} must be finite and >= 0")
    return value
