"""Normalisation of source values. Each normalisation lives here, once; mappings call these and
let their ValueError (whose message says why) become a MappingError naming the field."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, Literal, TypeVar, overload

from zhengai.ingest.privacy import is_personal_key

from .errors import MappingError

__all__ = [
    "CHINA_TZ",
    "normalize_text",
    "parse_number",
    "parse_int",
    "parse_timestamp",
    "parse_bool",
    "field",
]

T = TypeVar("T")

# Campus systems store local time; the contract writes +08:00, some databases write naive values.
CHINA_TZ = timezone(timedelta(hours=8), "CST")

_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_PLAIN = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def normalize_text(value: object) -> str:
    """NFKC (full-width ``１２３``/``（元）``/``％`` → ASCII), trimmed, internal runs of
    whitespace collapsed; None → ''."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFKC", str(value))
    return " ".join(text.split())


def parse_number(value: object) -> float:
    """``1,234.50`` → 1234.5, ``85.3%`` → 85.3 (percent units), ``１２３`` → 123,
    ``(1,200.00)`` → -1200 (accounting negative), ``¥12`` / ``12元`` → 12.

    Raises ValueError saying why (empty, malformed grouping, not a number)."""
    if isinstance(value, bool):
        raise ValueError("is a boolean, not a number")
    if isinstance(value, (int, float, Decimal)):
        return _finite(value)
    if isinstance(value, (bytes, bytearray)):
        raise ValueError("is binary data, not a number")
    text = normalize_text(value).replace(" ", "")
    if not text or text in {"-", "--", "—"}:
        raise ValueError("is empty")
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    text = text.lstrip("¥$").removesuffix("元").removesuffix("%")
    if "," in text:
        if not _GROUPED.match(text):
            raise ValueError(f"{normalize_text(value)!r} has misplaced thousands separators")
        text = text.replace(",", "")
    if not _PLAIN.match(text):
        raise ValueError(f"{normalize_text(value)!r} is not a number")
    number = _finite(text)
    return -number if negative else number


def _finite(value: object) -> float:
    """A finite float, or ValueError: numbers beyond a double (10**400, '9' * 400) and NaN or
    infinity from a source are garbage, not values (int → float would raise OverflowError)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise ValueError("is too large for a number") from None
    if not math.isfinite(number):
        raise ValueError("is not a finite number")
    return number


def parse_int(value: object) -> int:
    """Like parse_number, but the value must be whole."""
    number = parse_number(value)
    if not number.is_integer():
        raise ValueError(f"{number:g} is not a whole number")
    return int(number)


def parse_bool(value: object) -> bool:
    """true/false, 1/0, 是/否, Y/N."""
    if isinstance(value, bool):
        return value
    text = normalize_text(value).lower()
    if text in {"true", "1", "是", "y", "yes"}:
        return True
    if text in {"false", "0", "否", "n", "no"}:
        return False
    raise ValueError(f"{text!r} is not a yes/no value")


def parse_timestamp(value: object, tz: tzinfo = CHINA_TZ) -> datetime:
    """An aware datetime from ISO 8601 text or a datetime; naive values are read as ``tz``."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        text = normalize_text(value).replace("Z", "+00:00")
        try:
            result = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 timestamp") from None
    else:
        raise ValueError("is empty" if value in (None, "") else f"{value!r} is not a timestamp")
    return result if result.tzinfo is not None else result.replace(tzinfo=tz)


@overload
def field(row: Mapping[str, object], key: str, parse: None = None, *, required: Literal[True] = True) -> Any: ...
@overload
def field(
    row: Mapping[str, object], key: str, parse: Callable[[object], T], *, required: Literal[True] = True
) -> T: ...
@overload
def field(
    row: Mapping[str, object], key: str, parse: Callable[[object], T] | None = None, *, required: bool
) -> T | None: ...
def field(
    row: Mapping[str, object], key: str, parse: Callable[[object], T] | None = None, *, required: bool = True
) -> T | None:
    """``row[key]`` parsed by ``parse``; a missing/empty required value or a parse failure is a
    MappingError naming the field (e.g. ``score: '9x' is not a number``)."""
    raw = row.get(key)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise MappingError(f"{key}: is missing")
        return None
    if parse is None:
        return raw  # type: ignore[return-value]
    try:
        return parse(raw)
    except (ValueError, TypeError) as exc:
        if is_personal_key(key):  # the parse message quotes the value: keep it out of reasons
            raise MappingError(f"{key}: is not valid") from None
        raise MappingError(f"{key}: {exc}") from None
