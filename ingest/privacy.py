"""Masking of personal data for notifications and logs (non-negotiable 7).

Student ID numbers (学号), resident ID-card numbers (身份证号) and mobile numbers never appear in
clear outside the systems that own them. Each normalisation lives here, in one function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "mask_mobile", "mask_student_id", "mask_id_card", "mask_text",
    "PERSONAL_KEY_PARTS", "is_personal_key", "mask_value", "mask_row", "row_json",
]

_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_STUDENT_ID = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{4}(\d{2})(?![0-9A-Za-z])")  # 10-digit 学号


def mask_mobile(mobile: str) -> str:
    return str(mask_value(mobile.strip()))


def mask_student_id(student_id: str) -> str:
    s = student_id.strip()
    return s[:4] + "*" * max(0, len(s) - 6) + s[-2:] if len(s) > 6 else "*" * len(s)


def mask_id_card(id_card: str) -> str:
    s = id_card.strip()
    return s[:6] + "*" * max(0, len(s) - 10) + s[-4:] if len(s) > 10 else "*" * len(s)


def mask_text(text: str) -> str:
    """Mask every ID-card number, mobile number and 10-digit student ID in free text."""
    text = _ID_CARD.sub(lambda m: m.group(1) + "********" + m.group(2), text)
    text = _MOBILE.sub(lambda m: m.group(1) + "****" + m.group(2), text)
    return _STUDENT_ID.sub(lambda m: m.group(1) + "****" + m.group(2), text)


# --- rows: mask personal fields by name before a row leaves a connector as text (dead letters) ---


# A key is personal if its lower-cased name contains one of these. Substrings, because exports
# name the same thing many ways (id_card, student_id_card, 身份证号码, 手机号, 联系电话 …).
PERSONAL_KEY_PARTS: tuple[str, ...] = (
    "id_card",
    "idcard",
    "id_no",
    "mobile",
    "phone",
    "身份证",
    "手机",
    "电话",
)


def is_personal_key(key: object, extra: Iterable[str] = ()) -> bool:
    name = str(key).lower()
    return any(part in name for part in PERSONAL_KEY_PARTS) or name in {e.lower() for e in extra}


def mask_value(value: object) -> object:
    """``13812345678`` → ``138****5678``; short values are masked entirely; None stays None."""
    if value is None:
        return None
    text = str(value)
    if len(text) <= 7:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 7) + text[-4:]


def mask_row(row: Any, extra: Iterable[str] = ()) -> Any:
    """A copy of ``row`` (nested dicts/lists too) with personal fields masked."""
    extra = tuple(extra)
    if isinstance(row, Mapping):
        return {
            k: mask_value(v) if is_personal_key(k, extra) and not isinstance(v, (Mapping, list))
            else mask_row(v, extra)
            for k, v in row.items()
        }
    if isinstance(row, (list, tuple)):
        return [mask_row(v, extra) for v in row]
    return row


def row_json(row: Any, extra: Iterable[str] = ()) -> str:
    """The masked row as JSON text (Chinese kept readable; dates and decimals as strings)."""
    return json.dumps(mask_row(row, extra), ensure_ascii=False, default=str)
