"""Metric-shaped tables of the other campus systems, mapped by configuration instead of code.

学工, 招就, 实习, 资产, 图书, 科研, 一卡通, 课程平台 and 督导 mostly hold data that is already an
indicator per entity and period (a student's 体测 score, a major's 就业率, the school's 图书 total) or
a count an SQL ``GROUP BY`` makes into one. For those, a connector is a declaration: each *table*
of ``options.tables`` names where its rows come from (an SQL ``table``/``query``, an HTTP ``path``,
or a ``file`` pattern in a files source), which column holds the entity and the period, and which
column becomes which metric::

    options:
      tables:
        - name: fitness                      # the stream name
          table: tice_chengji                # sql: table or query · http: path · files: file
          level: student
          entity: xh                         # column with the entity id (or entity_value: SCH)
          period: xn                         # column with the period (or period_value: "2026")
          observed_at: gxsj                  # column with the source time (default: read time)
          metrics:
            student.physical_fitness: zf     # metric: column
            major.employment_rate: {ratio: [jy_rs, byrs], scale: 100}   # 100·jy_rs/byrs

A row becomes one :class:`Observation` per mapped metric whose cell is not empty, keyed
``<system>.<table>|<metric>|<entity>|<period>`` (a corrected row replaces its value). A value
outside ``range`` (if given), a missing entity or period, an unparseable number or a zero
denominator is that row's dead letter; other metrics of the row still go. Metrics that need
events aggregated over time (card inactivity, dropout rate, 评教 rank) are computed downstream by
``zhengai.ingest.systems``; their inputs come through the same mapping as plain observations.

The systems are registered under their own names (:data:`SYSTEMS`) with their source kind, so
``deploy/connectors/<system>.yaml`` reads like any other connector file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator, model_validator

from zhengai.ingest.plausibility import period_kind
from zhengai.ingest.records import Level, Observation

from .base import Connector, Record, Reject, Row, Stream
from .config import ConnectorConfig, FilesSourceConfig, HttpSourceConfig, Model, PaginationConfig, SqlSourceConfig
from .errors import MappingError
from .files import FileStream
from .http import ApiClient, PagePagination, Pagination
from .sql import FullRefreshSqlStream, SqlSource
from .values import normalize_text, parse_number, parse_timestamp

__all__ = ["MetricSpec", "TableMapping", "TableOptions", "TableConnector", "SYSTEMS", "system_class"]

_METRIC = r"^(school|major|course|teacher|student)\.[a-z0-9_]+$"


class MetricSpec(Model):
    """One metric of a table: a column, or a ratio of two columns (× ``scale``)."""

    column: str | None = None
    ratio: tuple[str, str] | None = None
    scale: float = 1.0
    range: tuple[float, float] | None = None  # plausible values; outside → dead letter

    @model_validator(mode="after")
    def _one(self) -> MetricSpec:
        if (self.column is None) == (self.ratio is None):
            raise ValueError("give exactly one of column or ratio")
        return self

    def value(self, row: Row) -> float | None:
        """The metric's value in ``row``; None when its cells are empty (nothing to say)."""
        if self.column is not None:
            cell = row.get(self.column)
            if cell is None or normalize_text(cell) == "":
                return None
            value = _number(cell, self.column) * self.scale
        else:
            num, den = self.ratio  # type: ignore[misc]
            if any(row.get(c) is None or normalize_text(row.get(c)) == "" for c in (num, den)):
                return None
            n, d = _number(row.get(num), num), _number(row.get(den), den)
            if d == 0:
                raise MappingError(f"{den}: is 0, the ratio {num}/{den} has no value")
            value = self.scale * n / d
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            col = self.column or "/".join(self.ratio or ())
            raise MappingError(f"{col}: {value:g} is outside {self.range[0]:g}..{self.range[1]:g}")
        return round(value, 4)


def _number(cell: Any, column: str) -> float:
    try:
        return parse_number(cell)
    except (ValueError, MappingError) as exc:
        raise MappingError(f"{column}: {exc}") from None


class TableMapping(Model):
    """One table (stream) of a system: where its rows come from and what they mean."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
    table: str | None = None  # sql
    query: str | None = None  # sql
    path: str | None = None  # http (relative to base_url)
    pagination: PaginationConfig | None = None  # http; default pages ?page=&page_size=
    params: dict[str, str] = Field(default_factory=dict)  # http query parameters
    file: str | None = None  # files: a name pattern in the source folder (or the source file)
    level: Level
    entity: str | None = None
    entity_value: str | None = None
    period: str | None = None
    period_value: str | None = None
    observed_at: str | None = None
    key: tuple[str, ...] = ()  # the row's identity (default: entity, period)
    metrics: dict[Annotated[str, Field(pattern=_METRIC)], MetricSpec]  # a bare column name is {column: name}
    note: str = ""  # what the table is, for people (e.g. the ODS table's Chinese name)

    @field_validator("metrics", mode="before")
    @classmethod
    def _bare_columns(cls, v: Any) -> Any:
        return {m: ({"column": s} if isinstance(s, str) else s) for m, s in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _check(self) -> TableMapping:
        for metric in self.metrics:
            if metric.split(".")[0] != self.level.value:
                raise ValueError(f"metric {metric} is not a {self.level.value}-level metric")
        if (self.entity is None) == (self.entity_value is None):
            raise ValueError("give exactly one of entity (a column) or entity_value")
        if (self.period is None) == (self.period_value is None):
            raise ValueError("give exactly one of period (a column) or period_value")
        if self.period_value is not None:
            period_kind(self.period_value)
        if not self.metrics:
            raise ValueError("map at least one metric")
        return self

    def specs(self) -> dict[str, MetricSpec]:
        return dict(self.metrics)

    def primary_key(self) -> tuple[str, ...]:
        return self.key or tuple(c for c in (self.entity, self.period) if c)


class TableOptions(Model):
    """``options:`` of a metric-table system."""

    tables: list[TableMapping]

    @model_validator(mode="after")
    def _unique(self) -> TableOptions:
        names = [t.name for t in self.tables]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"table name(s) used twice: {', '.join(dup)}")
        return self

    @property
    def stream_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)


class _Mapped:
    """The row → observations half every table stream shares."""

    connector: ClassVar[str]
    mapping: TableMapping
    source: str

    def observations(self, row: Row, fallback_at: datetime | None) -> list[Record | Reject]:
        m = self.mapping
        entity = m.entity_value or normalize_text(row.get(m.entity or ""))
        if not entity:
            raise MappingError(f"{m.entity}: is empty (no entity id)")
        period = m.period_value or normalize_text(row.get(m.period or ""))
        try:
            period_kind(period)
        except ValueError as exc:
            raise MappingError(f"{m.period}: {exc}") from None
        if m.observed_at is not None:
            try:
                at = parse_timestamp(row.get(m.observed_at))
            except (ValueError, MappingError) as exc:
                raise MappingError(f"{m.observed_at}: {exc}") from None
        else:
            at = fallback_at or datetime.now(UTC)
        out: list[Record | Reject] = []
        for metric, spec in m.specs().items():
            try:
                value = spec.value(row)
            except MappingError as exc:
                out.append(Reject(f"{metric}: {exc}"))
                continue
            if value is None:
                continue
            out.append(
                Observation(
                    level=m.level,
                    entity_id=entity,
                    metric=metric,
                    value=value,
                    period=period,
                    observed_at=at,
                    source=self.source,
                    key=f"{self.source}|{metric}|{entity}|{period}",
                )
            )
        if out and not any(isinstance(r, Observation) for r in out):  # nothing usable: the row is bad
            raise MappingError("; ".join(r.reason for r in out if isinstance(r, Reject)))
        return out


class TableSqlStream(_Mapped, FullRefreshSqlStream):
    def __init__(self, connector: str, db: SqlSource, mapping: TableMapping) -> None:
        self.connector, self.mapping, self.name = connector, mapping, mapping.name  # type: ignore[misc]
        self.table, self.query = mapping.table, mapping.query  # type: ignore[misc]
        self.primary_key = mapping.primary_key()  # type: ignore[misc]
        super().__init__(db)

    def map(self, row: Row) -> Sequence[Record | Reject]:
        return self.observations(row, None)


class TableHttpStream(_Mapped, Stream):
    cursor_field: ClassVar[str | None] = None

    def __init__(self, connector: str, api: ApiClient, mapping: TableMapping) -> None:
        self.connector, self.mapping, self.name = connector, mapping, mapping.name  # type: ignore[misc]
        self.primary_key = mapping.primary_key()  # type: ignore[misc]
        self.api = api
        self.pagination: Pagination = mapping.pagination.build() if mapping.pagination else PagePagination()

    def read(self, cursor: str | None) -> Iterator[Row]:
        return self.api.paginate(self.mapping.path or "/", self.pagination, self.mapping.params)

    def map(self, row: Row) -> Sequence[Record | Reject]:
        return self.observations(row, None)


class TableFileStream(_Mapped, FileStream):
    def __init__(self, connector: str, path: Path, mapping: TableMapping, **kw: Any) -> None:
        self.connector, self.mapping, self.name = connector, mapping, mapping.name  # type: ignore[misc]
        self.primary_key = mapping.primary_key()  # type: ignore[misc]
        self.required_columns = tuple(  # type: ignore[misc]
            dict.fromkeys(c for c in (mapping.entity, mapping.period, *_columns(mapping)) if c)
        )
        if mapping.file is not None:
            kw["patterns"] = (mapping.file,)
        super().__init__(path, **kw)

    def map_row(self, row: Row) -> Sequence[Record | Reject]:
        return self.observations(row, self.modified_at_of(row))


def _columns(mapping: TableMapping) -> list[str]:
    out: list[str] = []
    for spec in mapping.specs().values():
        out += [spec.column] if spec.column else list(spec.ratio or ())
    return out


class TableConnector(Connector):
    """A system whose tables are mapped by ``options.tables`` (see the module docstring)."""

    name: ClassVar[str] = "tables"
    title: ClassVar[str] = ""
    source_kind: ClassVar[str] = "sql"
    options_model: ClassVar[type[Model]] = TableOptions
    stream_names: ClassVar[tuple[str, ...]] = ()  # from the options (loading checks them there)

    def __init__(
        self, source: SqlSource | ApiClient | Path | str, tables: Sequence[TableMapping | dict], **file_options: Any
    ):
        mappings = [t if isinstance(t, TableMapping) else TableMapping.model_validate(t) for t in tables]
        self._close: Any = None
        streams: list[Stream] = []
        if self.source_kind == "sql":
            db = source if isinstance(source, SqlSource) else SqlSource(str(source))
            self._close, self.shown = db.close, repr(db)
            streams = [TableSqlStream(self.name, db, m) for m in mappings]
        elif self.source_kind == "http":
            assert isinstance(source, ApiClient), "an http system reads through an ApiClient"
            self._close, self.shown = source.close, source.base_url
            streams = [TableHttpStream(self.name, source, m) for m in mappings]
        else:
            path = Path(source)  # type: ignore[arg-type]
            self.shown = str(path)
            streams = [TableFileStream(self.name, path, m, **file_options) for m in mappings]
        self.streams = tuple(streams)
        self.mappings = tuple(mappings)

    @classmethod
    def from_config(cls, config: ConnectorConfig) -> TableConnector:
        options: TableOptions = config.options
        src = config.source
        if isinstance(src, SqlSourceConfig):
            return cls(src.build(), options.tables)
        if isinstance(src, HttpSourceConfig):
            return cls(src.build(cls.name), options.tables)
        assert isinstance(src, FilesSourceConfig)
        return cls(src.path, options.tables, **src.stream_kwargs())

    def metrics(self) -> set[str]:
        """Every metric this connector's tables map."""
        return {m for t in self.mappings for m in t.metrics}

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.shown!r}, tables={[m.name for m in self.mappings]})"


def system_class(name: str, title: str, kind: str) -> type[TableConnector]:
    """A registered system over :class:`TableConnector` (name, Chinese title, source kind)."""
    cls_name = f"{name.capitalize()}Connector"
    return type(
        cls_name,
        (TableConnector,),
        {
            "name": name,
            "title": title,
            "source_kind": kind,
            "__doc__": f"{title} ({kind}): tables mapped by configuration.",
        },
    )


# The systems beyond the four (issue 13 §2) and the national data standard's ODS tables.
SYSTEMS: dict[str, type[TableConnector]] = {
    c.name: c
    for c in (
        system_class("xuegong", "学工", "sql"),
        system_class("zhaojiu", "招就", "http"),
        system_class("shixi", "实习", "sql"),
        system_class("zichan", "资产", "files"),
        system_class("tushu", "图书", "sql"),
        system_class("keyan", "科研", "http"),
        system_class("yikatong", "一卡通", "sql"),
        system_class("kecheng", "课程平台", "sql"),
        system_class("dudao", "督导", "sql"),
        system_class("shizi", "师资（外聘教师库、考核、企业实践）", "sql"),
        system_class("shujujizuo", "数字基座（ODS）", "sql"),
    )
}
