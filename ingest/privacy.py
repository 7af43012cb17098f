"""Masking of personal data for notifications and logs (non-negotiable 7).

Student ID numbers (学号), resident ID-card numbers (身份证号) and mobile numbers never appear in
clear outside the systems that own them. Each normalisation lives here, in one function.
"""

from __future__ import annotations

import re

__all__ = ["mask_mobile", "mask_student_id", "mask_id_card", "mask_text"]

_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_STUDENT_ID = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{4}(\d{2})(?![0-9A-Za-z])")  # 10-digit 学号


def mask_mobile(mobile: str) -> str:
    digits = mobile.strip()
    return digits[:3] + "*" * max(0, len(digits) - 7) + digits[-4:] if len(digits) >= 7 else "*" * len(digits)


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
