"""财务 (finance): the yearly budget-execution export — a GBK CSV or an XLSX workbook, one file or
a drop folder.

One FinanceEvent per indicator line (budget and spending, 预算数/执行数, by category), its
category taken from the 科目代码 through ``categories`` (each school's chart of accounts differs,
so the configuration may replace the default table); codes that feed no indicator (e.g. 5009
基本建设支出) are skipped without complaint. The key is the line's identity (year + 科目代码),
so a re-exported file carries the latest amounts under the same keys. 财务 has no directory
entities of its own: its events are keyed by the school id that 人事 puts in the directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field

from zhengai.ingest.records import FinanceCategory, FinanceEvent

from .base import Connector, Record, Row
from .config import ConnectorConfig, FilesSourceConfig, Model
from .errors import MappingError
from .files import LINE_KEY, FileStream
from .values import field, normalize_text, parse_number

__all__ = ["CaiwuConnector", "CaiwuOptions", "CATEGORIES"]

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


class CaiwuOptions(Model):
    """``options:`` of a 财务 configuration."""

    school_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")]
    categories: dict[str, FinanceCategory] = Field(default_factory=lambda: dict(CATEGORIES))


class BudgetLines(FileStream):
    connector: ClassVar[str] = "caiwu"
    name = "budget"
    primary_key: ClassVar[tuple[str, ...]] = (YEAR, CODE)
    required_columns: ClassVar[tuple[str, ...]] = (YEAR, CODE, ITEM, BUDGET, ACTUAL)

    def __init__(
        self, path: Path, school_id: str, *, categories: Mapping[str, FinanceCategory] | None = None, **kw: Any
    ) -> None:
        super().__init__(path, **kw)
        self.school_id = school_id
        self.categories = dict(CATEGORIES if categories is None else categories)

    def map_row(self, row: Row) -> list[Record]:
        line = row.get(LINE_KEY, "?")
        code = normalize_text(row.get(CODE))
        category = self.categories.get(code)
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
        return [
            FinanceEvent(
                occurred_at=self.modified_at_of(row),
                source=self.source,
                key=f"caiwu:{self.school_id}:{year}:{code}",
                school_id=self.school_id,
                year=year,
                category=category,
                item=normalize_text(row.get(ITEM)) or code,
                budget=budget,
                actual=actual,
            )
        ]


class CaiwuConnector(Connector):
    """财务 export: one CSV/XLSX file (GBK, GB18030, UTF-8 with or without BOM), or a drop
    folder of them (``path`` is a folder; see :mod:`.files`)."""

    name: ClassVar[str] = "caiwu"
    source_kind: ClassVar[str] = "files"
    options_model: ClassVar[type[Model]] = CaiwuOptions
    stream_names: ClassVar[tuple[str, ...]] = ("budget",)

    def __init__(
        self,
        path: Path,
        school_id: str,
        *,
        categories: Mapping[str, FinanceCategory] | None = None,
        **file_options: Any,
    ) -> None:
        self.path = Path(path)
        self.school_id = school_id
        self.streams = (BudgetLines(self.path, school_id, categories=categories, **file_options),)

    @classmethod
    def from_config(cls, config: ConnectorConfig) -> CaiwuConnector:
        assert isinstance(config.source, FilesSourceConfig)
        o: CaiwuOptions = config.options
        return cls(config.source.path, o.school_id, categories=o.categories, **config.source.stream_kwargs())

    def __repr__(self) -> str:
        return f"CaiwuConnector({str(self.path)!r}, school_id={self.school_id!r})"
