"""Durations in configuration files, one parser for all of them (rules, connectors, notifications).

``500ms``, ``30s``, ``15m``, ``1h30m``, ``2d``, ``2w``, or a number of seconds (``90``, ``"0"``).
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


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
    return timedelta(seconds=seconds)
