"""File sources (财务 exports and the like): CSV in whatever encoding the campus system wrote, and
XLSX workbooks, either one file re-read each run or a drop folder.

Encodings are tried in order UTF-8 (with or without BOM), then GB18030 — a superset of GBK
and GB2312, so it reads every export from Chinese finance software. Header names and cells are
NFKC-normalised (full-width ``（元）``, ``１２３`` → ASCII); the header is the first row holding
every required column (title rows above it are skipped); blank rows and subtotal rows
(合计/小计/总计) are dropped before mapping, and so are unit lines (单位：元) and — from the first
signature (制表人/审核/负责人 …) or note (注：/说明：/数据来源：) line under the table — the footer.
In XLSX, a cell formatted as a percentage holds a
fraction (0.853 for ``85.3%``): it is read in percent units (85.3), as ``parse_number("85.3%")``
reads the text. Numbers are parsed by :func:`zhengai.connectors.values.parse_number`.

**Drop folders.** When ``path`` is a folder, every matching file in it (``*.csv``, ``*.xlsx``;
oldest first; names starting with ``.`` or ``~$`` and files younger than ``settle`` seconds are
left for later) is read. Once *all* of a file's records were acknowledged, the file moves to
``processed/`` (``<time>-<name>``); a file that cannot be read at all (encoding, no header,
missing columns, old ``.xls``) becomes one dead letter and moves to ``rejected/``. Every file
with any problem gets a rejection report ``rejected/<time>-<name>.report.csv`` (UTF-8 with BOM,
so Excel opens it): line, reason, and the row with personal data masked. A crash before the move
leaves the file in place; it is read again and its records, carrying stable keys, are harmless
duplicates.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import logging
import re
import time
import zipfile
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from zhengai.ingest.privacy import mask_payload, mask_text
from zhengai.ingest.records import DeadLetter

from .base import Record, Reject, Row, Stream
from .errors import FatalSourceError
from .values import normalize_text, parse_number

__all__ = [
    "ENCODINGS",
    "decode",
    "read_csv",
    "read_xlsx",
    "read_table",
    "is_blank_row",
    "is_subtotal_row",
    "is_unit_row",
    "is_footer_row",
    "FileStream",
    "CsvStream",
    "parse_number",
    "normalize_text",
    "LINE_KEY",
    "FILE_KEY",
]

log = logging.getLogger("zhengai.connectors")

ENCODINGS: tuple[str, ...] = ("utf-8-sig", "gb18030")
LINE_KEY = "_line"  # added to every row: the physical line (row) number, for dead-letter reasons
FILE_KEY = "_file"  # added in drop folders: the file the row came from
_REJECT_KEY = "_rejected"  # the one row a rejected file becomes
_HEADER_SCAN = 30  # rows searched for the header below title lines

_SUBTOTAL = re.compile(r"^(本页|本月|本年|本期)?(合计|小计|总计)[:：]?$")
# Lines real exports put around the table that are not data (issue 13 §7): a unit line
# (单位：元) anywhere; signature lines (制表人/审核/负责人 …) and notes (注：, 说明：, 数据来源：)
# below the table — from the first of those on, the rest of the sheet is the table's footer.
_UNIT_LINE = re.compile(r"^(金额|计量|货币)?单位[:：]")
_FOOTER_LINE = re.compile(
    r"^(制表人?|填表人?|填报人|编制人?|审核人?|复核人?|审批人?|审定|(单位|部门)?负责人|分管领导|主管领导|经办人|联系人|"
    r"联系电话|填表日期|制表日期|报送日期|打印时间|导出时间|打印人|注|附注|备注|说明|填表说明|数据来源)"
    r"\s*(\d+|[一二三四五六七八九十]+)?\s*[:：、.]"
)


def decode(data: bytes, encodings: Sequence[str] = ENCODINGS) -> tuple[str, str]:
    """The text and the encoding that decoded it without error."""
    for encoding in encodings:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise FatalSourceError(f"file is not in any of the encodings {', '.join(encodings)}")


def is_blank_row(row: Row) -> bool:
    return all(not normalize_text(v) for k, v in row.items() if not str(k).startswith("_"))


def is_subtotal_row(row: Row) -> bool:
    """A 合计/小计/总计 line (also ``合 计``, ``本页小计：``) in any cell."""
    return any(
        _SUBTOTAL.match(normalize_text(v).replace(" ", ""))
        for k, v in row.items()
        if not str(k).startswith("_") and isinstance(v, str)
    )


def _first_cell(row: Row) -> str:
    for k, v in row.items():
        if not str(k).startswith("_"):
            text = normalize_text(v)
            if text:
                return text
    return ""


def is_unit_row(row: Row) -> bool:
    """A 单位：元 line (the unit of the table's amounts), not data."""
    return bool(_UNIT_LINE.match(_first_cell(row).replace(" ", "")))


def is_footer_row(row: Row) -> bool:
    """A signature (制表人：…、审核：…、负责人：…) or note (注：…、说明：…) line under a table."""
    return bool(_FOOTER_LINE.match(_first_cell(row).replace(" ", "")))


def _header_name(value: object) -> str:
    return normalize_text(value).replace(" ", "")


def _rows(
    lines: Iterator[tuple[int, list[Any]]], name: str, required: Sequence[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Header and data rows from ``(line number, cells)``: the header is the first row holding
    every required column (title lines above it are skipped), else the first non-blank row (and
    the caller reports the missing columns); blank and subtotal rows are dropped."""
    table = list(lines)  # exports are small; reading them whole keeps this simple
    candidates = [i for i, (_, cells) in enumerate(table) if any(_header_name(v) for v in cells)]
    if not candidates:
        raise FatalSourceError(f"{name}: no header row")
    at = next(
        (i for i in candidates[:_HEADER_SCAN] if all(r in {_header_name(v) for v in table[i][1]} for r in required)),
        candidates[0],
    )
    header = [_header_name(v) for v in table[at][1]]
    rows: list[dict[str, Any]] = []
    footer = 0
    for line, values in table[at + 1 :]:
        if footer:
            footer += 1
            continue
        row = _append(rows, header, line, values)
        if row is not None and is_footer_row(row):
            rows.pop()
            footer = 1
    if footer:
        log.info("event=file_footer_skipped file=%s lines=%d", name, footer)
    return header, rows


def _append(rows: list[dict[str, Any]], header: list[str], line: int, values: list[Any]) -> dict[str, Any] | None:
    row: dict[str, Any] = {LINE_KEY: str(line)}
    for i, value in enumerate(values):
        key = header[i] if i < len(header) and header[i] else f"_extra{i + 1}"
        row[key] = "" if value is None else value
    if not (is_blank_row(row) or is_subtotal_row(row) or is_unit_row(row)):
        rows.append(row)
        return row
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FatalSourceError(f"cannot read {Path(path).name}: {exc.strerror}") from None


def read_csv(
    path: Path, encodings: Sequence[str] = ENCODINGS, *, required: Sequence[str] = ()
) -> tuple[list[dict[str, str]], str]:
    """Rows as dicts keyed by the normalised header, with ``_line``; and the encoding found.
    Blank and subtotal rows are left out; cells stay as text (mappings parse what they use)."""
    _, rows, encoding = _read_csv(Path(path), encodings, required)
    return rows, encoding


def _read_csv(
    path: Path, encodings: Sequence[str], required: Sequence[str]
) -> tuple[list[str], list[dict[str, Any]], str]:
    content, encoding = decode(_read_bytes(path), encodings)
    reader = csv.reader(io.StringIO(content, newline=""))
    header, rows = _rows(((reader.line_num, values) for values in reader), path.name, required)
    return header, rows, encoding


def _cell(cell: Any) -> Any:
    value = cell.value
    if isinstance(value, float):
        if "%" in (getattr(cell, "number_format", None) or ""):
            value = round(value * 100, 10)  # a percentage cell holds the fraction
        if value.is_integer():
            value = int(value)
    return value


def read_xlsx(
    path: Path, *, required: Sequence[str] = (), sheet: str | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """Header and rows of one worksheet (the first, or ``sheet``); ``_line`` is the Excel row."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    path = Path(path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError):
        raise FatalSourceError(f"{path.name}: not a readable XLSX workbook") from None
    except OSError as exc:
        raise FatalSourceError(f"cannot read {path.name}: {exc.strerror}") from None
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise FatalSourceError(f"{path.name}: no sheet {sheet!r} (sheets: {', '.join(workbook.sheetnames)})")
        ws = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        lines = ((n, [_cell(c) for c in r]) for n, r in enumerate(ws.iter_rows(), start=1))
        return _rows(lines, path.name, required)
    finally:
        workbook.close()


def read_table(
    path: Path, *, encodings: Sequence[str] = ENCODINGS, required: Sequence[str] = (), sheet: str | None = None
) -> tuple[list[str], list[dict[str, Any]], str]:
    """Header, rows and format (the CSV encoding, or ``xlsx``) of a CSV or XLSX file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".xlsx":
        header, rows = read_xlsx(path, required=required, sheet=sheet)
        return header, rows, "xlsx"
    if suffix == ".xls":
        raise FatalSourceError(f"{Path(path).name}: the old .xls format is not read; save it as .xlsx or CSV")
    return _read_csv(Path(path), encodings, required)


@dataclass
class _Open:
    """A drop-folder file whose rows are in flight."""

    path: Path
    modified_at: datetime
    remaining: int = 0
    rejected: bool = False
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # line, reason, raw


class FileStream(Stream):
    """A CSV/XLSX file re-read whole each run, or a drop folder (see the module docstring).

    Subclasses declare ``required_columns`` and implement ``map_row``. A single file without
    the required columns is a fatal source error; in a drop folder it is a rejected file.
    """

    cursor_field: ClassVar[str | None] = None
    required_columns: ClassVar[tuple[str, ...]] = ()
    patterns: tuple[str, ...] = ("*.csv", "*.xlsx", "*.xls")

    def __init__(
        self,
        path: Path,
        *,
        encodings: Sequence[str] = ENCODINGS,
        patterns: Sequence[str] | None = None,
        processed_dir: Path | None = None,
        rejected_dir: Path | None = None,
        sheet: str | None = None,
        settle: float = 0.0,
    ) -> None:
        self.path = Path(path)
        self.encodings = tuple(encodings)
        if patterns is not None:
            self.patterns = tuple(patterns)
        self.processed_dir = Path(processed_dir) if processed_dir else self.path / "processed"
        self.rejected_dir = Path(rejected_dir) if rejected_dir else self.path / "rejected"
        self.sheet = sheet
        self.settle = settle
        self.encoding: str | None = None  # what the last read found
        self.modified_at: datetime | None = None  # the file's mtime at the last read
        self._open: dict[str, _Open] = {}

    # -- reading ----------------------------------------------------------------------------

    def _table(self, path: Path) -> list[dict[str, Any]]:
        header, rows, self.encoding = read_table(
            path, encodings=self.encodings, required=self.required_columns, sheet=self.sheet
        )
        missing = [c for c in self.required_columns if c not in header]
        if missing:
            raise FatalSourceError(f"{path.name} lacks column(s) {', '.join(missing)}")
        return rows

    def read(self, cursor: str | None) -> Iterator[Row]:
        if not self.path.is_dir():
            rows = self._table(self.path)
            self.modified_at = _mtime(self.path)
            yield from rows
            return
        self._open = {}
        for path in self.inbox():
            state = _Open(path, _mtime(path))
            try:
                rows = self._table(path)
            except FatalSourceError as exc:
                state.remaining, state.rejected = 1, True
                self._open[path.name] = state
                yield {FILE_KEY: path.name, LINE_KEY: "-", _REJECT_KEY: str(exc)}
                continue
            if not rows:  # nothing to deliver: done at once
                self._finish(state)
                continue
            state.remaining = len(rows)
            self._open[path.name] = state
            for row in rows:
                row[FILE_KEY] = path.name
                yield row

    def inbox(self) -> list[Path]:
        """The files waiting in the drop folder, oldest first."""
        now = time.time()
        found = []
        for p in self.path.iterdir():
            name = p.name
            if name.startswith((".", "~$")) or not p.is_file():
                continue
            if not any(fnmatch.fnmatch(name.lower(), pat.lower()) for pat in self.patterns):
                continue
            mtime = p.stat().st_mtime
            if now - mtime < self.settle:  # still being copied in
                continue
            found.append((mtime, name, p))
        return [p for _, _, p in sorted(found)]

    def modified_at_of(self, row: Row) -> datetime | None:
        """When the row's file was written (its mtime): exports carry no time of their own."""
        state = self._open.get(str(row.get(FILE_KEY)))
        return state.modified_at if state is not None else self.modified_at

    # -- mapping ----------------------------------------------------------------------------

    def map(self, row: Row) -> Sequence[Record | Reject]:
        if _REJECT_KEY in row:
            return [Reject(f"file rejected: {row[_REJECT_KEY]}")]
        return self.map_row(row)

    @abstractmethod
    def map_row(self, row: Row) -> Sequence[Record | Reject]:
        """Map one data row (see :meth:`Stream.map`)."""

    # -- after delivery ---------------------------------------------------------------------

    def after_delivery(self, delivered: Sequence[tuple[Row, Sequence[Record]]]) -> None:
        for row, records in delivered:
            state = self._open.get(str(row.get(FILE_KEY)))
            if state is None:
                continue
            for r in records:
                if isinstance(r, DeadLetter):
                    # masked here too: the report is masked even where dead letters keep raw bytes
                    state.problems.append((str(row.get(LINE_KEY, "")), mask_text(r.reason), mask_payload(r.raw)))
            state.remaining -= 1
            if state.remaining == 0:
                del self._open[state.path.name]
                self._finish(state)

    def _finish(self, state: _Open) -> None:
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        target = _free(self.rejected_dir if state.rejected else self.processed_dir, f"{stamp}-{state.path.name}")
        if state.problems:
            report = _free(self.rejected_dir, f"{stamp}-{state.path.name}.report.csv")
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(("行号 line", "原因 reason", "原始数据 row (personal data masked)"))
            writer.writerows(state.problems)
            report.write_text(buf.getvalue(), encoding="utf-8-sig")
        target.parent.mkdir(parents=True, exist_ok=True)
        state.path.replace(target)
        log.info(
            "%s: %s %s (%d problem rows)",
            self.source,
            state.path.name,
            "rejected" if state.rejected else "processed",
            len(state.problems),
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.source} {self.path.name}>"


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _free(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/name.1`` … when taken (the same export dropped twice)."""
    folder.mkdir(parents=True, exist_ok=True)
    candidate, n = folder / name, 0
    while candidate.exists():
        n += 1
        candidate = folder / f"{name}.{n}"
    return candidate


CsvStream = FileStream  # the name of v1, when only CSV was read
