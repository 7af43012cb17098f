"""File drops (财务 exports and the like): CSV in whatever encoding the campus system wrote.

Encodings are tried in order UTF-8 (with or without BOM), then GB18030 — a superset of GBK
and GB2312, so it reads every export from Chinese finance software. Header names and cells are
NFKC-normalised (full-width ``（元）``, ``１２３`` → ASCII); blank rows and subtotal rows
(合计/小计/总计) are dropped before mapping. Numbers are parsed by
:func:`zhengai.connectors.values.parse_number`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar

from .base import Row, Stream
from .errors import FatalSourceError
from .values import normalize_text, parse_number

__all__ = ["ENCODINGS", "decode", "read_csv", "is_blank_row", "is_subtotal_row", "CsvStream",
           "parse_number", "normalize_text"]

ENCODINGS: tuple[str, ...] = ("utf-8-sig", "gb18030")
LINE_KEY = "_line"  # added to every row: the physical line number, for dead-letter reasons

_SUBTOTAL = re.compile(r"^(本页|本月|本年|本期)?(合计|小计|总计)[:：]?$")


def decode(data: bytes, encodings: Sequence[str] = ENCODINGS) -> tuple[str, str]:
    """The text and the encoding that decoded it without error."""
    for encoding in encodings:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise FatalSourceError(f"file is not in any of the encodings {', '.join(encodings)}")


def is_blank_row(row: Row) -> bool:
    return all(not normalize_text(v) for k, v in row.items() if k != LINE_KEY)


def is_subtotal_row(row: Row) -> bool:
    """A 合计/小计/总计 line (also ``合 计``, ``本页小计：``) in any cell."""
    return any(
        _SUBTOTAL.match(normalize_text(v).replace(" ", ""))
        for k, v in row.items() if k != LINE_KEY and isinstance(v, str)
    )


def read_csv(path: Path, encodings: Sequence[str] = ENCODINGS) -> tuple[list[dict[str, str]], str]:
    """Rows as dicts keyed by the normalised header, with ``_line``; and the encoding found.
    Blank and subtotal rows are left out; cells stay as text (mappings parse what they use)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FatalSourceError(f"cannot read {Path(path).name}: {exc.strerror}") from None
    content, encoding = decode(data, encodings)
    reader = csv.reader(io.StringIO(content, newline=""))
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    for values in reader:
        line = reader.line_num
        if header is None:
            if any(normalize_text(v) for v in values):
                header = [normalize_text(v).replace(" ", "") for v in values]
            continue
        row: dict[str, str] = {LINE_KEY: str(line)}
        for i, value in enumerate(values):
            key = header[i] if i < len(header) else f"_extra{i - len(header) + 1}"
            row[key] = value
        if is_blank_row(row) or is_subtotal_row(row):
            continue
        rows.append(row)
    if header is None:
        raise FatalSourceError(f"{Path(path).name}: no header row")
    return rows, encoding


class CsvStream(Stream):
    """A CSV file read whole on each run (file drops are replaced, not appended to).
    Subclasses declare ``required_columns``; a file without them is a fatal source error."""

    cursor_field: ClassVar[str | None] = None
    required_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: Path, *, encodings: Sequence[str] = ENCODINGS) -> None:
        self.path = Path(path)
        self.encodings = tuple(encodings)
        self.encoding: str | None = None  # what the last read found
        self.modified_at: datetime | None = None  # the file's mtime at the last read

    def read(self, cursor: str | None) -> Iterator[Row]:
        rows, self.encoding = read_csv(self.path, self.encodings)
        self.modified_at = datetime.fromtimestamp(self.path.stat().st_mtime, timezone.utc)
        if rows:
            missing = [c for c in self.required_columns if c not in rows[0]]
            if missing:
                raise FatalSourceError(
                    f"{self.source}: {self.path.name} lacks column(s) {', '.join(missing)}")
        yield from rows

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.source} {self.path.name}>"
