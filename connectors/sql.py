"""SQL sources: any SQLAlchemy URL, a table or a SELECT, read in keyset pages.

* :class:`IncrementalSqlStream` — by (``updated_at``, ``id``). The first page of a run starts
  ``lookback`` before the bookmark, so a row committed late with an older timestamp is still
  read; later pages continue strictly after the last row read. Each page is its own short query,
  so no transaction stays open while a batch is being delivered.
* :class:`FullRefreshSqlStream` — the whole table or query each run (small dimension tables).

Timestamps are compared in the source's own representation: a text column must hold ISO 8601
with one uniform offset (the contract writes ``+08:00``), so that text order is time order.
Rows whose cursor column is NULL cannot be read incrementally and are left out.

**Soft deletes.** A table with a ``deleted`` / ``is_deleted`` flag or a ``deleted_at`` time keeps
deleted rows; :meth:`SqlStream.soft_deleted` recognises them (the column is selected even when a
stream lists its ``columns``), and the system module decides what a deletion means — in 教务 a
deleted directory row becomes its Entity with ``attributes.status = "deleted"`` (so the directory
learns it is gone), and a deleted fact row (attendance, grade) is skipped, since the v1 wire
contract has no retraction record. Hard deletes are invisible to an incremental read.

**Drivers.** PostgreSQL (psycopg2) and SQLite come with zhengai; MySQL/MariaDB, SQL Server and
Oracle drivers are extras. A URL whose driver is missing raises :class:`MissingDriverError`
naming the extra, e.g. ``pip install 'zhengai[mysql]'``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any, ClassVar

from pydantic import SecretStr
from sqlalchemy import and_, column, create_engine, inspect, literal, literal_column, or_, select, table, text, tuple_
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    NoSuchTableError,
    OperationalError,
    SQLAlchemyError,
)

from .base import Row, Stream, dump_cursor
from .errors import FatalSourceError, MissingDriverError, RetryableSourceError
from .retry import RetryPolicy
from .values import CHINA_TZ, normalize_text, parse_timestamp

__all__ = [
    "SqlSource",
    "SqlStream",
    "IncrementalSqlStream",
    "FullRefreshSqlStream",
    "DRIVER_EXTRAS",
    "SOFT_DELETE_COLUMNS",
    "is_soft_deleted",
]

# drivername → (module the driver imports, the zhengai extra that installs it, what to write).
# SQLAlchemy's default driver for mysql:// (mysqlclient) and oracle:// (cx_Oracle) need C
# libraries; the extras install the pure-Python ones, so the hint names those URLs.
DRIVER_EXTRAS: dict[str, tuple[str, str, str]] = {
    "mysql": ("MySQLdb", "mysql", "mysql+pymysql://"),
    "mysql+mysqldb": ("MySQLdb", "mysql", "mysql+pymysql://"),
    "mysql+pymysql": ("pymysql", "mysql", "mysql+pymysql://"),
    "mariadb": ("MySQLdb", "mysql", "mariadb+pymysql://"),
    "mariadb+pymysql": ("pymysql", "mysql", "mariadb+pymysql://"),
    "mssql": ("pyodbc", "mssql", "mssql+pymssql://"),
    "mssql+pyodbc": ("pyodbc", "mssql-odbc", "mssql+pyodbc://"),
    "mssql+pymssql": ("pymssql", "mssql", "mssql+pymssql://"),
    "oracle": ("cx_Oracle", "oracle", "oracle+oracledb://"),
    "oracle+cx_oracle": ("cx_Oracle", "oracle", "oracle+oracledb://"),
    "oracle+oracledb": ("oracledb", "oracle", "oracle+oracledb://"),
}

# Connection timeout argument, by dialect (each DBAPI names it differently).
_TIMEOUT_ARG = {
    "postgresql": "connect_timeout",
    "mysql": "connect_timeout",
    "mariadb": "connect_timeout",
    "sqlite": "timeout",
    "mssql": "login_timeout",
}

SOFT_DELETE_COLUMNS: tuple[str, ...] = ("deleted", "is_deleted", "deleted_at")
# Dialects with row-value comparison ``(a, b) > (x, y)`` (SQLite ≥ 3.15, PostgreSQL, MySQL ≥ 5.7).
_ROW_VALUE_DIALECTS = frozenset({"sqlite", "postgresql", "mysql", "mariadb"})
_TRUE = {"1", "true", "t", "y", "yes", "是"}


def is_soft_deleted(row: Row, columns: Sequence[str] = SOFT_DELETE_COLUMNS) -> bool:
    """A ``deleted``/``is_deleted`` flag that is true (1, true, Y, 是), or a ``deleted_at`` that
    is set."""
    for name in columns:
        value = row.get(name)
        if value is None or value == "":
            continue
        if name.endswith("_at"):
            return True
        if isinstance(value, bool):
            if value:
                return True
        elif normalize_text(value).lower() in _TRUE:
            return True
    return False


def _engine(url: URL, connect_timeout: float | None) -> Engine:
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    arg = _TIMEOUT_ARG.get(url.get_backend_name())
    if connect_timeout is not None and arg is not None:
        kwargs["connect_args"] = {arg: connect_timeout if arg == "timeout" else max(1, int(connect_timeout))}
    try:
        return create_engine(url, **kwargs)
    except NoSuchModuleError:
        raise MissingDriverError(
            f"no SQLAlchemy dialect for {url.drivername!r} URLs; supported: postgresql, sqlite, "
            "mysql/mariadb, mssql, oracle"
        ) from None
    except ImportError as exc:
        module, extra, form = DRIVER_EXTRAS.get(url.drivername, (exc.name or "?", "", url.drivername + "://"))
        how = f"pip install 'zhengai[{extra}]'" if extra else f"pip install {exc.name}"
        if url.drivername == form.removesuffix("://"):
            advice = f": {how}"
        else:  # a default driver that needs C libraries: point at the pure-Python one
            advice = f"; write the URL as {form}… and {how}"
        raise MissingDriverError(
            f"the database driver {module!r} for {url.drivername!r} URLs is not installed" + advice
        ) from None


# OperationalError covers both "try again" (locked, connection lost) and "never works"
# (missing table or column, bad credentials); these markers pick out the second kind.
_FATAL_MARKERS = (
    "no such table",
    "no such column",
    "syntax error",
    "unknown column",
    "does not exist",
    "doesn't exist",
    "permission denied",
    "access denied",
    "authentication failed",
    "unable to open database",
)


class SqlSource:
    """One database. The engine is created from the URL (or injected); the URL's password is
    never shown in repr or errors."""

    def __init__(
        self,
        url: str | URL | SecretStr,
        *,
        retry: RetryPolicy | None = None,
        tz: tzinfo = CHINA_TZ,
        engine: Engine | None = None,
        password: SecretStr | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        if isinstance(url, SecretStr):
            url = url.get_secret_value()
        try:
            self.url = make_url(url)
        except ArgumentError:
            # SQLAlchemy's message quotes the whole string, password included.
            raise ValueError("not a SQLAlchemy database URL (dialect+driver://user@host/db)") from None
        if password is not None:
            self.url = self.url.set(password=password.get_secret_value())
        self.engine = engine if engine is not None else _engine(self.url, connect_timeout)
        self.retry = retry or RetryPolicy()
        self.tz = tz
        self._columns: dict[str, frozenset[str]] = {}

    def columns_of(self, table_name: str) -> frozenset[str]:
        """The column names of a table (cached; empty if the table cannot be inspected)."""
        if table_name not in self._columns:
            self._columns[table_name] = self.retry.call(lambda: self._inspect(table_name), what=f"inspect {table_name}")
        return self._columns[table_name]

    def _inspect(self, table_name: str) -> frozenset[str]:
        try:
            return frozenset(c["name"] for c in inspect(self.engine).get_columns(table_name))
        except NoSuchTableError:
            return frozenset()  # the read reports the missing table, typed as fatal
        except SQLAlchemyError as exc:
            raise RetryableSourceError(f"inspect {table_name}: {type(exc).__name__}") from None

    def fetch(self, stmt: Any, *, what: str) -> list[dict[str, Any]]:
        """All rows of one statement as dicts, retried on transient errors."""
        return self.retry.call(lambda: self._fetch_once(stmt, what), what=what)

    def _fetch_once(self, stmt: Any, what: str) -> list[dict[str, Any]]:
        try:
            with self.engine.connect() as conn:
                result = conn.execute(stmt)
                keys = tuple(result.keys())
                # The columns are untyped (no result processors): the driver's tuples as they are,
                # zipped with the names — a fifth of the cost of building Row mappings per row.
                rows = result.cursor.fetchall() if result.cursor is not None else result.fetchall()
                result.close()
                return [dict(zip(keys, r, strict=True)) for r in rows]
        except NoSuchTableError as exc:
            raise FatalSourceError(f"{what}: no such table {exc}") from None
        except DBAPIError as exc:
            # Only the driver's first line: the full text repeats the SQL and its parameters.
            detail = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
            retryable = isinstance(exc, OperationalError) and not any(m in detail.lower() for m in _FATAL_MARKERS)
            if retryable or exc.connection_invalidated:
                raise RetryableSourceError(f"{what}: database error: {detail}") from None
            raise FatalSourceError(f"{what}: database error: {detail}") from None
        except SQLAlchemyError as exc:
            raise FatalSourceError(f"{what}: {type(exc).__name__}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"SqlSource({self.url.render_as_string(hide_password=True)!r})"


class SqlStream(Stream):
    """Declare ``table`` or ``query`` (a SELECT), and ``columns`` to read only what the mapping
    needs — personal columns (身份证号, mobile) then never leave the database at all."""

    table: ClassVar[str | None] = None
    query: ClassVar[str | None] = None
    columns: ClassVar[tuple[str, ...] | None] = None  # None = every column
    page_size: ClassVar[int] = 1000
    # Soft-delete columns to recognise; () turns recognition off for a stream.
    soft_delete_columns: ClassVar[tuple[str, ...]] = SOFT_DELETE_COLUMNS

    def __init__(self, db: SqlSource) -> None:
        if (self.table is None) == (self.query is None):
            raise TypeError(f"{type(self).__name__}: declare exactly one of table or query")
        self.db = db

    def soft_deleted(self, row: Row) -> bool:
        """Whether the source marked this row deleted (see the module docstring)."""
        return is_soft_deleted(row, self.soft_delete_columns)

    def _selected(self) -> tuple[str, ...] | None:
        """The declared columns plus the soft-delete columns this table has."""
        if self.columns is None:
            return None
        extra: tuple[str, ...] = ()
        if self.table is not None and self.soft_delete_columns:
            present = self.db.columns_of(self.table)
            extra = tuple(c for c in self.soft_delete_columns if c in present)
        return tuple(dict.fromkeys([*self.columns, *extra]))

    def _from(self, *needed: str) -> Any:
        self._cols = self._selected()
        names = list(dict.fromkeys([*(self._cols or ()), *needed]))
        cols: list[Any] = [column(n) for n in names]
        if self.query is not None:
            return text(self.query).columns(*cols).subquery("q")
        assert self.table is not None  # exactly one of table and query (checked in __init__)
        return table(self.table, *cols)

    def _select(self, frm: Any) -> Any:
        if self._cols is None:
            return select(literal_column("*")).select_from(frm)
        return select(*(frm.c[c] for c in self._cols))

    def _pages(self, frm: Any, first: Any, after: Any, order: Sequence[Any]) -> Iterator[Row]:
        """Keyset pagination: ``first`` filters the first page, ``after(last_row)`` the next."""
        where = first
        page = 0
        while True:
            stmt = self._select(frm).order_by(*order).limit(self.page_size)
            if where is not None:
                stmt = stmt.where(where)
            rows = self.db.fetch(stmt, what=f"{self.source} page {page}")
            yield from rows
            if len(rows) < self.page_size:
                return
            where, page = after(rows[-1]), page + 1


class IncrementalSqlStream(SqlStream):
    """By (``cursor_field``, ``id_field``) with a ``lookback`` window before the bookmark."""

    cursor_field: ClassVar[str | None] = "updated_at"
    id_field: ClassVar[str] = "id"

    def __init__(self, db: SqlSource, *, lookback: timedelta = timedelta(hours=1)) -> None:
        super().__init__(db)
        if lookback < timedelta(0):
            raise ValueError("lookback must not be negative")
        self.lookback = lookback

    # Rows come in ascending cursor order, one page per query: the runner asks for the cursor of
    # a batch's last row only (Stream.cursor_ordered).
    cursor_ordered: ClassVar[bool] = True

    def after(self, ts: Any, ident: Any, last_ts: Any, last_id: Any) -> Any:
        """Rows strictly after (``last_ts``, ``last_id``). The row-value form ``(ts, id) > (?, ?)``
        lets SQLite and PostgreSQL seek the (updated_at, id) index straight to the next page; the
        expanded ``ts > ? OR (ts = ? AND id > ?)`` makes SQLite walk the index from its start on
        every page (pages get slower as a read advances). SQL Server and Oracle have no row-value
        ordering comparison: they get the expanded form."""
        if self.db.engine.dialect.name in _ROW_VALUE_DIALECTS:
            return tuple_(ts, ident) > tuple_(literal(last_ts), literal(last_id))
        return or_(ts > last_ts, and_(ts == last_ts, ident > last_id))

    def read(self, cursor: str | None) -> Iterator[Row]:
        ts_name, id_name = self.cursor_field or "", self.id_field
        frm = self._from(ts_name, id_name)
        ts, ident = frm.c[ts_name], frm.c[id_name]
        first = ts.is_not(None)
        if cursor is not None:
            last_ts, last_id = self._load(cursor)
            resume = self._resend_position(cursor)
            if resume is not None:  # an interrupted lookback re-send goes on where it stopped
                first = and_(first, self.after(ts, ident, *resume))
            elif self.lookback:
                first = and_(first, ts >= _shift(last_ts, -self.lookback, self.db.tz))
            else:
                first = and_(first, self.after(ts, ident, last_ts, last_id))
        yield from self._pages(
            frm, first, lambda row: self.after(ts, ident, _as_text(row[ts_name]), row[id_name]), (ts, ident)
        )

    def cursor_of(self, row: Row) -> str | None:
        value = row.get(self.cursor_field or "")
        if value is None:
            return None
        return dump_cursor({"updated_at": _as_text(value), "id": row[self.id_field]})

    def resend_cursor(self, bookmark: str, position: str | None) -> str | None:
        """The bookmark, marked with how far the lookback re-send before it got (``position``,
        a row's cursor): a run stopped during a long re-send resumes it there next time."""
        data = json.loads(bookmark)
        if position is None:
            data.pop("resend_after", None)
        else:
            pos = json.loads(position)
            data["resend_after"] = [pos["updated_at"], pos["id"]]
        return dump_cursor(data)

    def _resend_position(self, cursor: str) -> tuple[str, Any] | None:
        try:
            value = json.loads(cursor).get("resend_after")
            return None if value is None else (str(value[0]), value[1])
        except (ValueError, AttributeError, TypeError, IndexError, KeyError):
            return None

    def cursor_order(self, cursor: str) -> Any:
        ts, ident = self._load(cursor)
        return (parse_timestamp(ts, self.db.tz), ident)

    def cursor_time(self, cursor: str) -> datetime | None:
        return parse_timestamp(self._load(cursor)[0], self.db.tz)

    def _load(self, cursor: str) -> tuple[str, Any]:
        try:
            data = json.loads(cursor)
            return str(data["updated_at"]), data["id"]
        except (ValueError, KeyError, TypeError):
            raise FatalSourceError(
                f"{self.source}: stored bookmark is not an (updated_at, id) cursor; reset it to read from the beginning"
            ) from None


class FullRefreshSqlStream(SqlStream):
    """Every row each run, in primary-key order (keyset pages when the key is one column)."""

    cursor_field: ClassVar[str | None] = None

    def read(self, cursor: str | None) -> Iterator[Row]:
        frm = self._from(*self.primary_key)
        keys = [frm.c[k] for k in self.primary_key]
        if len(keys) == 1:
            key = self.primary_key[0]
            yield from self._pages(frm, None, lambda row: keys[0] > row[key], keys)
        else:
            # Composite keys: small tables, one query.
            yield from self.db.fetch(self._select(frm).order_by(*keys), what=self.source)


def _as_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _shift(ts_text: str, delta: timedelta, tz: tzinfo) -> str:
    """``ts_text`` moved by ``delta``, written the way the source writes it (same offset, same
    date/time separator), so that comparing text columns stays correct."""
    moved = parse_timestamp(ts_text, tz) + delta
    sep = ts_text[10] if len(ts_text) > 10 and ts_text[10] in " T" else "T"
    if datetime.fromisoformat(ts_text.replace("Z", "+00:00")).tzinfo is None:
        return moved.replace(tzinfo=None).isoformat(sep=sep)
    return moved.isoformat(sep=sep)
