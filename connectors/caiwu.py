"""财务 (finance): the yearly budget-execution export, a GBK CSV dropped into a folder.

One FinanceEvent per indicator line, its category taken from the 科目代码; codes that feed no
indicator (e.g. 5009 基本建设支出) are skipped without complaint. The key is the line's identity
(year + 科目代码), so a re-exported file carries the latest amounts under the same keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from zhengai.ingest.records import FinanceCategory, FinanceEvent

from .base import Connector, Record, Row
from .errors import MappingError
from .files import CsvStream
from .values import field, normalize_text, parse_number

__all__ = ["CaiwuConnector", "CATEGORIES"]

# 科目代码 → indicator category (SOURCES.md). Anything else is not an indicator input.
CATEGORIES: dict[str, FinanceCategory] = {
    "4001": "tuition",  # 学费收入
    "4002": "appropriation",  # 经常性财政拨款
    "5001": "public_funds",  # 年度公用经费
    "5002": "teacher_training",  # 教师培训经费
    "5003": "teaching",  # 日常教学经费
    "5004": "teaching",  # 实践教学经费
}

YEAR, CODE, ITEM = "年度", "科目代码", "科目名称"
BUDGET, ACTUAL = "预算数(元)", "执行数(元)"


class BudgetLines(CsvStream):
    connector: ClassVar[str] = "caiwu"
    name = "budget"
    primary_key: ClassVar[tuple[str, ...]] = (YEAR, CODE)
    required_columns: ClassVar[tuple[str, ...]] = (YEAR, CODE, ITEM, BUDGET, ACTUAL)

    def __init__(self, path: Path, school_id: str) -> None:
        super().__init__(path)
        self.school_id = school_id

    def map(self, row: Row) -> list[Record]:
        line = row.get("_line", "?")
        code = normalize_text(row.get(CODE))
        category = CATEGORIES.get(code)
        if category is None:
            return []
        try:
            year = normalize_text(field(row, YEAR))
            if not (len(year) == 4 and year.isdigit()):
                raise MappingError(f"{YEAR}: {year!r} is not a year")
            budget = field(row, BUDGET, parse_number)
            actual = field(row, ACTUAL, parse_number)
        except MappingError as exc:
            raise MappingError(f"line {line}: {exc}") from None
        # The export has no timestamp of its own: the file's mtime is when finance wrote it.
        return [FinanceEvent(
            occurred_at=self.modified_at, source=self.source,
            key=f"caiwu:{self.school_id}:{year}:{code}", school_id=self.school_id, year=year,
            category=category, item=normalize_text(row.get(ITEM)) or code,
            budget=budget, actual=actual,
        )]


class CaiwuConnector(Connector):
    """财务 CSV export (GBK, GB18030, UTF-8 with or without BOM)."""

    name: ClassVar[str] = "caiwu"

    def __init__(self, path: Path, school_id: str) -> None:
        self.path = Path(path)
        self.school_id = school_id
        self.streams = (BudgetLines(self.path, school_id),)

    def __repr__(self) -> str:
        return f"CaiwuConnector({str(self.path)!r}, school_id={self.school_id!r})"
