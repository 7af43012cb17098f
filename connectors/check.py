"""``zhengai connectors check``: connect, read the first rows of every stream, map them, and show
what would be produced — without producing and without touching bookmarks or drop folders.

Records are shown with personal data masked: ID-card and mobile numbers and 10-digit student
numbers wherever they appear, e-mail addresses, any personal key, and students' names.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from zhengai.ingest import serde
from zhengai.ingest.privacy import is_personal_key, mask_row, mask_text, mask_value
from zhengai.ingest.records import DeadLetter, Entity, EntityKind

from .base import Connector, map_row
from .errors import SourceError

__all__ = ["StreamCheck", "check_connector", "masked", "masked_json"]

_TYPE_NAMES = {cls: name for name, cls in serde.TYPES.items()}


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, key) for v in value]
    if value is None or isinstance(value, (bool, float)):
        return value
    if is_personal_key(key):
        return mask_value(value)
    return mask_row(value)  # by pattern: ID-card, mobile, email, 学号 (also numbers)


def masked(record: BaseModel) -> dict[str, Any]:
    """The record as JSON-ready data, personal data masked, with its wire ``type`` first."""
    data = _mask(record.model_dump(mode="json", exclude_none=True, exclude={"v"}))
    data = {k: v for k, v in data.items() if v not in ({}, [])}  # shorter lines for people
    if isinstance(record, Entity) and record.kind is EntityKind.student:
        name = record.name
        data["name"] = name[:1] + "*" * (len(name) - 1)
    return {"type": _TYPE_NAMES.get(type(record), type(record).__name__), **data}


def masked_json(record: BaseModel, width: int = 0) -> str:
    text = json.dumps(masked(record), ensure_ascii=False, separators=(",", ":"))
    return text if not width or len(text) <= width else text[: width - 1] + "…"


@dataclass
class StreamCheck:
    stream: str
    rows: int = 0
    records: Counter = field(default_factory=Counter)  # wire type → count
    samples: list[BaseModel] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # dead-letter reasons, with the row
    error: str | None = None

    @property
    def rejected(self) -> int:
        return self.records.get("dead_letter", 0)


def _row_hint(row: Any, reason: str) -> str:
    """Which row, unless the reason says it already (file mappings name the line)."""
    if not isinstance(row, dict):
        return ""
    line = row.get("_line")
    where = f"{row['_file']} " if row.get("_file") else ""
    if line not in (None, "") and f"line {line}" not in reason:
        return f"{where}line {line}"
    if where:
        return where.strip()
    for key in ("id", "course_id"):
        if row.get(key) not in (None, ""):
            return f"{key}={mask_text(str(row[key]))}"
    return ""


def check_connector(
    connector: Connector, *, rows: int = 50, samples: int = 2, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> list[StreamCheck]:
    """Read at most ``rows`` rows of each stream from the beginning and map them."""
    results = []
    for stream in connector.streams:
        check = StreamCheck(stream.name)
        results.append(check)
        reader: Iterator[Any] = iter(())
        try:
            reader = iter(stream.read(None))
            for row in itertools.islice(reader, rows):
                check.rows += 1
                for record in map_row(stream, row, now()):
                    check.records[_TYPE_NAMES.get(type(record), type(record).__name__)] += 1
                    if isinstance(record, DeadLetter):
                        hint = _row_hint(row, record.reason)
                        check.problems.append(f"{hint}: {record.reason}" if hint else record.reason)
                    elif len(check.samples) < samples:
                        check.samples.append(record)
        except SourceError as exc:
            check.error = str(exc)
        except Exception as exc:  # noqa: BLE001 — show it, check the next stream
            check.error = f"unexpected {type(exc).__name__}: {exc}"
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()
    return results
