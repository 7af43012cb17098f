"""Masking of personal data in every output (non-negotiable 8): one function per normalisation.

Student ID numbers (学号), resident ID-card numbers (身份证号), mobile numbers (手机号) and email
addresses never appear in clear outside the systems that own them: not in notifications, dead
letters, reason texts, rejection reports, CLI output, reports or logs. Masking works by *pattern*
(:func:`mask_text`, for any free text) and, for rows and records, also by *column name*
(:func:`mask_row`) — a mobile in a column called ``联系方式`` is caught by its shape, a 7-digit
landline in a column called ``phone`` by its name.

Shapes (the demo college and the four connectors use the same ones):

======================  ============================  ==========================
what                    shape                         masked
======================  ============================  ==========================
ID-card number          18 characters, last may be X  ``110101********123X``
mobile (mainland)       ``1[3-9]`` + 9 digits,        ``139****5678``
                        optional ``+86``/separators
email                   ``local@domain.tld``          ``z***@example.edu.cn``
student ID (学号)        10 digits (cohort, major,     ``2401****01``
                        sequence: ``2401010001``)
======================  ============================  ==========================

Masking is idempotent: masked text contains ``*`` and matches no pattern again.

Dead letters (``DeadLetter``) keep a masked copy of the record by default. The original bytes are
kept only where ``ZHENGAI_DEAD_LETTER_RAW=1`` is set in the environment of the worker or connector
that writes them (:func:`dead_letter_raw_kept`); see the README, "Dead letters and personal data",
for the retention that then applies.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "mask_mobile",
    "mask_student_id",
    "mask_id_card",
    "mask_email",
    "mask_text",
    "PERSONAL_KEY_PARTS",
    "is_personal_key",
    "mask_value",
    "mask_row",
    "row_json",
    "mask_payload",
    "dead_letter_raw_kept",
    "dead_letter_text",
    "install_log_masking",
]

_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
_EMAIL = re.compile(r"(?<![\w.%+-])([\w%+-])[\w.%+-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})", re.ASCII)
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?(1[3-9]\d)[- ]?\d{4}[- ]?(\d{4})(?![0-9])")
_STUDENT_ID = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{4}(\d{2})(?![0-9A-Za-z])")  # 10-digit 学号

_RAW_ENV = "ZHENGAI_DEAD_LETTER_RAW"


def mask_mobile(mobile: str) -> str:
    return str(mask_value(mobile.strip()))


def mask_student_id(student_id: str) -> str:
    s = student_id.strip()
    return s[:4] + "*" * max(0, len(s) - 6) + s[-2:] if len(s) > 6 else "*" * len(s)


def mask_id_card(id_card: str) -> str:
    s = id_card.strip()
    return s[:6] + "*" * max(0, len(s) - 10) + s[-4:] if len(s) > 10 else "*" * len(s)


def mask_email(email: str) -> str:
    """``zhang.san@example.edu.cn`` → ``z***@example.edu.cn`` (the domain says which system)."""
    local, at, domain = email.strip().partition("@")
    return (local[:1] + "***" + at + domain) if at else str(mask_value(email))


def mask_text(text: str) -> str:
    """Mask every ID-card number, email, mobile number and 10-digit student ID in free text."""
    if not text:
        return text
    text = _ID_CARD.sub(lambda m: m.group(1) + "********" + m.group(2), text)
    text = _EMAIL.sub(lambda m: m.group(1) + "***@" + m.group(2), text)
    text = _MOBILE.sub(lambda m: m.group(1) + "****" + m.group(2), text)
    return _STUDENT_ID.sub(lambda m: m.group(1) + "****" + m.group(2), text)


# --- rows: personal fields by name, everything else by pattern ----------------------------------


# A key is personal if its lower-cased name contains one of these. Substrings, because exports
# name the same thing many ways (id_card, student_id_card, 身份证号码, 手机号, 联系电话, 电子邮箱 …).
PERSONAL_KEY_PARTS: tuple[str, ...] = (
    "id_card",
    "idcard",
    "id_no",
    "mobile",
    "phone",
    "email",
    "身份证",
    "手机",
    "电话",
    "邮箱",
)


def is_personal_key(key: object, extra: Iterable[str] = ()) -> bool:
    name = str(key).lower()
    return any(part in name for part in PERSONAL_KEY_PARTS) or name in {e.lower() for e in extra}


def mask_value(value: object) -> object:
    """``13812345678`` → ``138****5678``; short values are masked entirely; None stays None."""
    if value is None:
        return None
    text = str(value)
    if "@" in text:
        return mask_email(text)
    if len(text) <= 7:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 7) + text[-4:]


def mask_row(row: Any, extra: Iterable[str] = ()) -> Any:
    """A copy of ``row`` (nested dicts/lists too) with personal fields masked by name and every
    other text (and integer) by pattern."""
    extra = tuple(extra)
    if isinstance(row, Mapping):
        return {
            k: mask_value(v)
            if is_personal_key(k, extra) and not isinstance(v, (Mapping, list, tuple))
            else mask_row(v, extra)
            for k, v in row.items()
        }
    if isinstance(row, (list, tuple)):
        return [mask_row(v, extra) for v in row]
    if isinstance(row, str):
        return mask_text(row)
    if isinstance(row, int) and not isinstance(row, bool) and row >= 10**9:
        masked = mask_text(str(row))  # a mobile or student ID exported as a number
        return row if masked == str(row) else masked
    return row


def row_json(row: Any, extra: Iterable[str] = ()) -> str:
    """The masked row as JSON text (Chinese kept readable; dates and decimals as strings)."""
    return json.dumps(mask_row(row, extra), ensure_ascii=False, default=str)


def mask_payload(text: str) -> str:
    """A masked copy of a message or row as text: JSON is masked field by field (names and
    patterns), anything else by pattern. What a dead letter keeps by default."""
    if not text:
        return text
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            data = json.loads(text)
            masked = mask_row(data)
            if masked != data:  # else keep the text as it came (same bytes, same order)
                return mask_text(json.dumps(masked, ensure_ascii=False, default=str))
        except (ValueError, RecursionError):
            pass
    return mask_text(text)


def dead_letter_text(text: str, limit: int) -> str:
    """What a dead letter keeps of a record: the masked copy (:func:`mask_payload`), or the text
    as it came where :func:`dead_letter_raw_kept`; at most ``limit`` characters. A cut record is
    no longer JSON, so it is masked by pattern, cut where no number or address runs across."""
    keep = dead_letter_raw_kept()
    if len(text) <= limit:
        return text if keep else mask_payload(text)
    cut = text[:limit]
    if not keep:
        end = len(cut)
        while end > limit - 64 and (cut[end - 1].isalnum() or cut[end - 1] in "@.+-_%"):
            end -= 1  # a number or address cut in half would match no pattern
        cut = mask_text(cut[:end])
    return cut + f"…[truncated {len(text) - len(cut)} chars]"


def dead_letter_raw_kept() -> bool:
    """Whether dead letters keep the original bytes (``ZHENGAI_DEAD_LETTER_RAW=1``) instead of
    a masked copy. Off unless set explicitly in the environment of the writing process."""
    return os.environ.get(_RAW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# --- logs ----------------------------------------------------------------------------------------


def _masked_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 — a bad format string is logging's own error to report
        return record
    masked = mask_text(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
    return record


def install_log_masking() -> None:
    """Mask personal data in every log record this process creates, whatever handler writes it
    (a library's ``%r`` of a row, a traceback quoting a value). A record factory, not a handler
    filter, so handlers configured later (Faust's, pytest's) are covered too. Idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_zhengai_masking", False):
        return

    def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _masked_record(factory(*args, **kwargs))

    masking_factory._zhengai_masking = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masking_factory)
