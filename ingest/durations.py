"""Durations in configuration files, one parser for all of them (rules, connectors, notifications).

``500ms``, ``30s``, ``15m``, ``1h30m``, ``2d``, ``2w``, or a number of seconds (``90``, ``"0"``).
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["parse_duration", "MAX_SECONDS", "DurationTooLong"]

MAX_SECONDS = 100 * 365 * 86400  # a century: longer is a typo, and timedelta overflows soon after

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


class DurationTooLong(ValueError):
    """A well-formed duration over MAX_SECONDS (callers keep this message, not their own)."""


def parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration like 15m, 1h or 30s, not a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        if _NUMBER.match(text):
            seconds = float(text)
        else:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"{value!r} is not a duration like 15m, 1h30m, 30s, 2d or 2w")
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ValueError("a duration like 15m, 1h or 30s")
    if seconds < 0:
        raise ValueError("a duration must not be negative")
    if not seconds <= MAX_SECONDS:  # also NaN; timedelta would raise OverflowError past ~2.7 million years
        raise DurationTooLong(f"{value!r}: a duration must not exceed {MAX_SECONDS // 86400 // 365} years")
    return timedelta(seconds=seconds)
