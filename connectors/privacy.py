"""Masking of personal data (个人信息) before anything leaves a connector as text.

Dead letters keep the original row for audit, so the row is masked here first: identity-card
numbers and phone numbers keep their first 3 and last 4 characters (``138****5678``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["PERSONAL_KEY_PARTS", "is_personal_key", "mask_value", "mask_row", "row_json"]

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
