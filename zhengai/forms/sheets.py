"""Reading the workbooks people fill: the header below any title rows, the data rows, and every
problem located in Chinese (sheet, row, column, why).

Real exports carry lines that are not data: a title and ``单位：元`` above the header, and under
the table ``注：…`` notes and signature lines (``制表人：… 审核：… 负责人：…``). They are
recognised here (:func:`is_note_row`) and skipped — never reported as bad rows.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException

from zhengai.connectors.values import normalize_text

__all__ = [
    "LocatedError",
    "Sheet",
    "open_workbook",
    "is_note_row",
    "WorkbookError",
    "META_SHEET",
    "cell_text",
    "parse_date",
]

META_SHEET = "_zhengai"  # hidden sheet of a generated template: kind, form, period, office, due
_NOTE = re.compile(
    r"^(注|附注|说明|备注|填表说明|填报说明|制表|制表人|填表人|填报人|审核|审核人|负责人|分管领导|"
    r"单位负责人|联系人|联系电话|填报日期|制表日期|单位)\s*[:：]"
)
_SIGNATURES = re.compile(r"(制表人|填表人|审核人?|负责人|分管领导|盖章)")


class WorkbookError(Exception):
    """The file cannot be read as a workbook at all (one Chinese sentence)."""


@dataclass(frozen=True)
class LocatedError:
    sheet: str
    row: int | None
    column: str | None  # the Excel letter
    field: str | None  # the header text
    why: str

    def __str__(self) -> str:
        where = f"工作表“{self.sheet}”"
        if self.row is not None:
            where += f"第 {self.row} 行"
        if self.column:
            where += f" {self.column} 列"
        if self.field:
            where += f"（{self.field}）"
        return f"{where}：{self.why}"


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    return normalize_text(value)


def is_note_row(cells: Sequence[Any]) -> bool:
    """A title, unit, note or signature line — not data (see the module docstring)."""
    texts = [cell_text(c).replace(" ", "") for c in cells if cell_text(c)]
    if not texts:
        return False
    if _NOTE.match(texts[0]):
        return True
    return all(_SIGNATURES.search(t) or t.endswith(("：", ":")) for t in texts)


def parse_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = cell_text(value).replace(" ", "")
    m = re.match(r"^(\d{4})[-/.年](\d{1,2})(?:[-/.月](\d{1,2})日?)?月?$", text)
    if not m:
        return None
    y, mo, d = int(m.group(1)), int(m.group(2)), m.group(3)
    try:
        if d is None:  # a month: its last day
            nxt = date(y + mo // 12, mo % 12 + 1, 1)
            return date.fromordinal(nxt.toordinal() - 1)
        return date(y, mo, int(d))
    except ValueError:
        return None


class Sheet:
    """One worksheet: ``header`` (name → column index) found by its required columns, and the
    data rows below it as ``(row number, cells)`` with blank and note rows skipped."""

    def __init__(self, title: str, rows: list[tuple[Any, ...]]):
        self.title = title
        self.rows = rows
        self.header_row: int | None = None
        self.header: dict[str, int] = {}

    def find_header(self, required: Sequence[str], scan: int = 30) -> LocatedError | None:
        for n, cells in enumerate(self.rows[:scan], start=1):
            names = [cell_text(c).replace(" ", "") for c in cells]
            if all(r in names for r in required):
                self.header_row = n
                self.header = {name: i for i, name in enumerate(names) if name}
                return None
        return LocatedError(
            self.title, None, None, None, f"找不到表头（须含 {'、'.join(required)} 列）；请使用下发的模板，不要改动表头"
        )

    def column(self, name: str) -> str:
        return get_column_letter(self.header[name] + 1)

    def get(self, cells: Sequence[Any], name: str) -> Any:
        i = self.header.get(name)
        return cells[i] if i is not None and i < len(cells) else None

    def data(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        assert self.header_row is not None, "find_header first"
        for n, cells in enumerate(self.rows[self.header_row :], start=self.header_row + 1):
            if not any(cell_text(c) for c in cells) or is_note_row(cells):
                continue
            yield n, cells

    def error(self, row: int | None, name: str | None, why: str) -> LocatedError:
        column = self.column(name) if name and name in self.header else None
        return LocatedError(self.title, row, column, name, why)


def open_workbook(data: bytes | Path, name: str) -> tuple[dict[str, Sheet], dict[str, str]]:
    """Every sheet's rows (values, not formulas) and the generated template's meta (or ``{}``)."""
    raw = Path(data).read_bytes() if isinstance(data, Path) else data
    if name.lower().endswith(".xls") and not name.lower().endswith(".xlsx"):
        raise WorkbookError(f"{name}：不读取旧版 .xls 格式，请另存为 .xlsx 后再提交")
    try:
        wb = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise WorkbookError(f"{name}：不是可读取的 Excel（.xlsx）文件") from None
    try:
        sheets = {ws.title: Sheet(ws.title, [tuple(r) for r in ws.iter_rows(values_only=True)]) for ws in wb.worksheets}
    finally:
        wb.close()
    meta: dict[str, str] = {}
    if META_SHEET in sheets:
        for cells in sheets.pop(META_SHEET).rows:
            if len(cells) >= 2 and cells[0]:
                meta[cell_text(cells[0])] = cell_text(cells[1])
    return sheets, meta
