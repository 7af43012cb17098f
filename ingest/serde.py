"""Records on the wire: a versioned JSON envelope.

    {"type": "observation", "v": 1, "data": {...}}

``decode`` accepts every (type, version) it knows and raises ``DecodeError`` with a precise reason
otherwise — the caller dead-letters the original bytes with that reason. Bytes are bounded: a
message over ``MAX_BYTES`` is refused before parsing.
"""

from __future__ import annotations

import json
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

__all__ = ["DecodeError", "encode", "decode", "key_of", "MAX_BYTES", "TYPES"]

MAX_BYTES = 256 * 1024

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


class DecodeError(ValueError):
    """Why bytes could not become a record; short, English, names the field."""


def encode(record: BaseModel) -> bytes:
    name = _NAMES.get(type(record))
    if name is None:
        raise TypeError(f"not a wire record: {type(record).__name__}")
    envelope = {"type": name, "v": SCHEMA_VERSION, "data": record.model_dump(mode="json")}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"non-finite number {name} is not allowed")


def decode(raw: bytes) -> BaseModel:
    if raw is None:
        raise DecodeError("empty message (tombstone)")
    if len(raw) > MAX_BYTES:
        raise DecodeError(f"message of {len(raw)} bytes exceeds the {MAX_BYTES}-byte limit")
    try:
        envelope = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise DecodeError(f"bad JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(envelope, dict) or not {"type", "v", "data"} <= envelope.keys():
        raise DecodeError("not an envelope: expected an object with type, v and data")
    name, version, data = envelope["type"], envelope["v"], envelope["data"]
    cls = TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise DecodeError(f"unknown record type {name!r}")
    if version not in KNOWN_VERSIONS[name]:
        raise DecodeError(f"{name} schema version {version!r} is not supported (known: {sorted(KNOWN_VERSIONS[name])})")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise DecodeError(f"{name}.{where}: {first['msg']}{more}") from None


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


