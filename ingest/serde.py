"""Records on the wire: a versioned JSON envelope.

    {"type": "observation", "v": 1, "data": {...}}

``decode`` has a closed error contract: whatever the bytes, it returns a record or raises
``DecodeError`` — never anything else — with a short English reason and a stable ``code`` (the
dead-letter metric's label). Resource limits are checked before the work or while parsing,
never after: size (``MAX_BYTES``) before anything, nesting depth (``MAX_DEPTH``) by a scan before
the parser recurses, and every number literal as the parser meets it (an integer of more than
``MAX_INT_DIGITS`` digits is refused before ``int()`` is asked to convert it; a float that
overflows to infinity is refused as non-finite). Envelope types are strict: ``v`` is an int, not ``true``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from zhengai.ingest.records import (
    SCHEMA_VERSION,
    AttendanceEvent,
    DeadLetter,
    Entity,
    FinanceEvent,
    GradeEvent,
    Observation,
    Person,
    Verdict,
    WarningTransition,
)

__all__ = ["DecodeError", "DECODE_CODES", "encode", "decode", "key_of", "MAX_BYTES", "MAX_DEPTH", "MAX_INT_DIGITS", "TYPES"]

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32  # the deepest record (a verdict's thresholds' pairs) nests 5 levels
MAX_INT_DIGITS = 30  # far past any count or 元 amount; 10**400 and the 4300-digit int stop here

TYPES: dict[str, type[BaseModel]] = {
    "observation": Observation,
    "attendance": AttendanceEvent,
    "grade": GradeEvent,
    "finance": FinanceEvent,
    "entity": Entity,
    "person": Person,
    "verdict": Verdict,
    "dead_letter": DeadLetter,
    "warning_transition": WarningTransition,
}
_NAMES = {cls: name for name, cls in TYPES.items()}
# Readers know these versions per type; a writer always writes SCHEMA_VERSION.
KNOWN_VERSIONS = {name: {1} for name in TYPES}

# Every code a DecodeError carries (a subset of zhengai.ingest.metrics.DEAD_LETTER_REASONS).
DECODE_CODES = frozenset({
    "tombstone", "too_large", "not_utf8", "bad_json", "too_deep", "number_too_large", "non_finite",
    "not_envelope", "unknown_type", "unsupported_version", "invalid_record",
})


class DecodeError(ValueError):
    """Why bytes could not become a record: ``str()`` is short English naming the field, ``code``
    is one of ``DECODE_CODES`` — callers decide by the code, never by the wording."""

    def __init__(self, reason: str, code: str = "invalid_record"):
        super().__init__(reason)
        self.reason = reason
        self.code = code if code in DECODE_CODES else "invalid_record"


def encode(record: BaseModel) -> bytes:
    name = _NAMES.get(type(record))
    if name is None:
        raise TypeError(f"not a wire record: {type(record).__name__}")
    envelope = {"type": name, "v": SCHEMA_VERSION, "data": record.model_dump(mode="json")}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- limits checked before / while parsing -----------------------------------------------------

_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_TOKEN = re.compile(r'["\[\]{}]')
_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)  # after the opening quote


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before json's recursive parser sees it: one linear
    pass over brackets and strings (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # cannot be deeper
    depth, pos, find = 0, 0, _TOKEN.search
    while (m := find(text, pos)) is not None:
        ch, pos = m.group(), m.end()
        if ch == '"':
            rest = _STRING_REST.match(text, pos)
            if rest is None:
                return  # an unterminated string: the parser reports it as bad JSON
            pos = rest.end()
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise DecodeError(f"nesting deeper than {MAX_DEPTH} levels", "too_deep")
        else:
            depth -= 1


def _parse_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise DecodeError(f"integer literal of {digits} digits exceeds the {MAX_INT_DIGITS}-digit limit", "number_too_large")
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > 100:
        raise DecodeError(f"number literal of {len(literal)} characters exceeds the 100-character limit", "number_too_large")
    value = float(literal)
    if not math.isfinite(value):
        raise DecodeError(f"non-finite number: {literal[:24]} overflows to infinity", "non_finite")
    return value


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"non-finite number {name} is not allowed", "non_finite")


def _parse(raw: bytes) -> Any:
    if raw is None:
        raise DecodeError("empty message (tombstone)", "tombstone")
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise DecodeError(f"not bytes: {type(raw).__name__}", "bad_json")
    if len(raw) > MAX_BYTES:
        raise DecodeError(f"message of {len(raw)} bytes exceeds the {MAX_BYTES}-byte limit", "too_large")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not UTF-8: {exc.reason} at byte {exc.start}", "not_utf8") from None
    _check_depth(text)
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"bad JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "bad_json") from None
    except RecursionError:  # the depth scan makes this unreachable; kept so the contract is closed
        raise DecodeError(f"nesting deeper than {MAX_DEPTH} levels", "too_deep") from None
    if _SURROGATE.search(text):  # "\ud800" parses into a str no UTF-8 encoder (Kafka, PostgreSQL) takes
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError("not UTF-8: a lone surrogate escape (\\uD800-\\uDFFF)", "not_utf8") from None
    return value


def decode(raw: bytes) -> BaseModel:
    """Bytes → a record; ``DecodeError`` (and only that) otherwise."""
    envelope = _parse(raw)
    if not isinstance(envelope, dict) or not {"type", "v", "data"} <= envelope.keys():
        raise DecodeError("not an envelope: expected an object with type, v and data", "not_envelope")
    name, version, data = envelope["type"], envelope["v"], envelope["data"]
    cls = TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise DecodeError(f"unknown record type {str(name)[:64]!r}", "unknown_type")
    if type(version) is not int or version not in KNOWN_VERSIONS[name]:  # bool is not an int here
        shown = repr(version)[:32] if isinstance(version, (int, float, str, bool, type(None))) else type(version).__name__
        raise DecodeError(f"{name} schema version {shown} is not supported (known: {sorted(KNOWN_VERSIONS[name])})",
                          "unsupported_version")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        code = "non_finite" if first["type"] == "finite_number" else "invalid_record"
        raise DecodeError(f"{name}.{where[:128]}: {first['msg'][:300]}{more}", code) from None
    except Exception as exc:  # noqa: BLE001 — the closed contract: a validator that let anything
        # other than ValueError out (OverflowError, TypeError …) still means an invalid record.
        raise DecodeError(f"{name}: invalid record ({type(exc).__name__})", "invalid_record") from None


def key_of(record: BaseModel) -> bytes:
    """The partitioning key: the entity the record belongs to. On the compacted directory topic a
    teacher's Entity and Person share an id, so persons are keyed ``person:<id>`` — otherwise
    compaction would keep only one of the two."""
    if isinstance(record, Person):
        return f"person:{record.id}".encode("utf-8")
    for attr in ("entity_id", "id"):
        value = getattr(record, attr, None)
        if isinstance(value, str):
            return value.encode("utf-8")
    if isinstance(record, DeadLetter):
        return record.source.encode("utf-8")
    raise TypeError(f"no key for {type(record).__name__}")


