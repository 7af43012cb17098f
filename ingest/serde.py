"""Records on the wire: a versioned JSON envelope, one record or a batch of one type.

    {"type": "observation", "v": 1, "data": {...}}
    {"type": "observation", "v": 1, "batch": [{...}, {...}, …]}

A batch carries records of one partition (the producers group them by the partitioner of their
keys), so entity order is kept; it is how the high-volume topics move many records per Kafka
message (the per-message cost of the stream runtime is paid once per batch). Readers take both
forms, so single-record messages from third-party producers are still accepted.

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
from collections.abc import Sequence
from typing import Any

import orjson
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

__all__ = [
    "DecodeError",
    "DECODE_CODES",
    "encode",
    "encode_batches",
    "decode",
    "decode_many",
    "key_of",
    "MAX_BYTES",
    "MAX_BATCH",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "TYPES",
]

MAX_BYTES = 256 * 1024
MAX_BATCH = 5000  # records in one batch message (producers stay well below: MAX_BYTES bounds it first)
BATCH_BYTES = 192 * 1024  # producers close a batch message before it reaches this size
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
DECODE_CODES = frozenset(
    {
        "tombstone",
        "too_large",
        "not_utf8",
        "bad_json",
        "too_deep",
        "number_too_large",
        "non_finite",
        "not_envelope",
        "unknown_type",
        "unsupported_version",
        "invalid_record",
    }
)


class DecodeError(ValueError):
    """Why bytes could not become a record: ``str()`` is short English naming the field, ``code``
    is one of ``DECODE_CODES`` — callers decide by the code, never by the wording. For a bad item
    of a batch message, ``item`` is that item alone (its dead letter keeps it, not the batch)."""

    def __init__(self, reason: str, code: str = "invalid_record"):
        super().__init__(reason)
        self.reason = reason
        self.code = code if code in DECODE_CODES else "invalid_record"
        self.item: Any = None


def _name(record: BaseModel) -> str:
    name = _NAMES.get(type(record))
    if name is None:
        raise TypeError(f"not a wire record: {type(record).__name__}")
    return name


def encode(record: BaseModel) -> bytes:
    # pydantic writes the record's compact UTF-8 JSON itself (a fifth of a dict round trip's cost)
    return b'{"type":"%s","v":%d,"data":%s}' % (
        _name(record).encode(),
        SCHEMA_VERSION,
        record.model_dump_json().encode(),
    )


def encode_batches(records: Sequence[BaseModel], limit: int = BATCH_BYTES) -> list[tuple[list[BaseModel], bytes]]:
    """Batch messages for records of one partition, in order: a new message for each change of
    record type and before one would exceed ``limit`` bytes (or ``MAX_BATCH`` records). Each
    message comes with the records it carries (the first one's key is the message's key)."""
    out: list[tuple[list[BaseModel], bytes]] = []
    items: list[bytes] = []
    group: list[BaseModel] = []
    size = 0

    def close() -> None:
        if group:
            out.append(
                (
                    group,
                    b'{"type":"%s","v":%d,"batch":[%s]}' % (_name(group[0]).encode(), SCHEMA_VERSION, b",".join(items)),
                )
            )

    for r in records:
        item = r.model_dump_json().encode()
        if group and (type(r) is not type(group[0]) or size + len(item) > limit or len(items) >= MAX_BATCH):
            close()
            items, group, size = [], [], 0
        if not group:
            _name(r)  # a wire record, or TypeError now
        group.append(r)
        items.append(item)
        size += len(item) + 1
    close()
    return out


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
        raise DecodeError(
            f"integer literal of {digits} digits exceeds the {MAX_INT_DIGITS}-digit limit", "number_too_large"
        )
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > 100:
        raise DecodeError(
            f"number literal of {len(literal)} characters exceeds the 100-character limit", "number_too_large"
        )
    value = float(literal)
    if not math.isfinite(value):
        raise DecodeError(f"non-finite number: {literal[:24]} overflows to infinity", "non_finite")
    return value


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"non-finite number {name} is not allowed", "non_finite")


def _parse(raw: bytes | None) -> Any:
    """Bytes → JSON value within the limits. The fast parser (orjson: compiled, its own depth
    limit, refuses NaN, lone surrogates and numbers that overflow a double) takes well-formed
    input; anything it refuses goes through the careful parser below, which says precisely why."""
    if isinstance(raw, (bytes, bytearray, memoryview)) and len(raw) <= MAX_BYTES:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _parse_careful(raw)
        if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
            _check_value_depth(value)
        return value
    return _parse_careful(raw)


def _check_value_depth(value: Any) -> None:
    """The depth limit on a parsed value (the fast parser already refused anything absurd)."""
    todo = [(value, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise DecodeError(f"nesting deeper than {MAX_DEPTH} levels", "too_deep")
        if isinstance(node, dict):
            todo.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            todo.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))


def _parse_careful(raw: bytes | None) -> Any:
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


def _envelope_type(envelope: Any, body: str) -> tuple[str, type[BaseModel]]:
    name, version = envelope["type"], envelope["v"]
    cls = TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise DecodeError(f"unknown record type {str(name)[:64]!r}", "unknown_type")
    if type(version) is not int or version not in KNOWN_VERSIONS[name]:  # bool is not an int here
        shown = (
            repr(version)[:32] if isinstance(version, (int, float, str, bool, type(None))) else type(version).__name__
        )
        raise DecodeError(
            f"{name} schema version {shown} is not supported (known: {sorted(KNOWN_VERSIONS[name])})",
            "unsupported_version",
        )
    return name, cls


def _record(name: str, cls: type[BaseModel], data: Any, where_prefix: str = "") -> BaseModel:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        code = "non_finite" if first["type"] == "finite_number" else "invalid_record"
        raise DecodeError(f"{name}{where_prefix}.{where[:128]}: {first['msg'][:300]}{more}", code) from None
    except Exception as exc:  # noqa: BLE001 — the closed contract: a validator that let anything
        # other than ValueError out (OverflowError, TypeError …) still means an invalid record.
        raise DecodeError(f"{name}{where_prefix}: invalid record ({type(exc).__name__})", "invalid_record") from None


def _is_envelope(value: Any, body: str) -> bool:
    return isinstance(value, dict) and {"type", "v", body} <= value.keys()


def decode(raw: bytes | None) -> BaseModel:
    """Bytes of a one-record message → the record; ``DecodeError`` (and only that) otherwise."""
    envelope = _parse(raw)
    if not _is_envelope(envelope, "data"):
        raise DecodeError("not an envelope: expected an object with type, v and data", "not_envelope")
    name, cls = _envelope_type(envelope, "data")
    return _record(name, cls, envelope["data"])


def decode_many(raw: bytes) -> list[BaseModel | DecodeError]:
    """Bytes of a message → its records: one for a ``data`` envelope, each item of a ``batch``.
    A message that cannot be read at all is one ``DecodeError``; a bad item of a batch is a
    ``DecodeError`` in its place (``reason`` names the item), the others are records. Nothing
    else ever leaves."""
    try:
        envelope = _parse(raw)
        if _is_envelope(envelope, "data"):
            name, cls = _envelope_type(envelope, "data")
            return [_record(name, cls, envelope["data"])]
        if not _is_envelope(envelope, "batch"):
            raise DecodeError("not an envelope: expected an object with type, v and data (or batch)", "not_envelope")
        name, cls = _envelope_type(envelope, "batch")
        items = envelope["batch"]
        if not isinstance(items, list) or not items:
            raise DecodeError(f"{name} batch: expected a non-empty list of records", "not_envelope")
        if len(items) > MAX_BATCH:
            raise DecodeError(f"{name} batch of {len(items)} records exceeds the {MAX_BATCH}-record limit", "too_large")
    except DecodeError as exc:
        return [exc]
    out: list[BaseModel | DecodeError] = []
    for i, item in enumerate(items):
        try:
            out.append(_record(name, cls, item, f"[{i}]"))
        except DecodeError as exc:
            exc.item = item  # the item alone, for its dead letter
            out.append(exc)
    return out


def key_of(record: BaseModel) -> bytes:
    """The partitioning key: the entity the record belongs to. On the compacted directory topic a
    teacher's Entity and Person share an id, so persons are keyed ``person:<id>`` — otherwise
    compaction would keep only one of the two."""
    if isinstance(record, Person):
        return f"person:{record.id}".encode()
    for attr in ("entity_id", "id"):
        value = getattr(record, attr, None)
        if isinstance(value, str):
            return value.encode("utf-8")
    if isinstance(record, DeadLetter):
        return record.source.encode("utf-8")
    raise TypeError(f"no key for {type(record).__name__}")
