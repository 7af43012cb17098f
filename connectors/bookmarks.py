"""BookmarkStores that survive restarts.

* :class:`JsonFileBookmarks` — one JSON file, replaced atomically so a crash mid-write never
  leaves a half-written bookmark (a single connector host without a database).
* :class:`SqlBookmarks` — the table ``connector_bookmarks(connector, stream, value, updated_at)``
  in PostgreSQL (production) or SQLite, through SQLAlchemy. The store's migrations own that
  table; this class creates it only if it is missing, so a connector host can start first.

Both are safe to share between the threads of ``zhengai connectors run``.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    select,
    update,
)
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

__all__ = ["JsonFileBookmarks", "SqlBookmarks", "BOOKMARKS_TABLE"]


class JsonFileBookmarks:
    """``{"<connector>": {"<stream>": "<cursor>"}}`` in ``path``; created on the first put."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # put() reads, changes and replaces the whole file

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def get(self, connector: str, stream: str) -> str | None:
        return self._load().get(connector, {}).get(stream)

    def put(self, connector: str, stream: str, value: str) -> None:
        with self._lock:
            data = self._load()
            data.setdefault(connector, {})[stream] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def __repr__(self) -> str:
        return f"JsonFileBookmarks({str(self.path)!r})"


BOOKMARKS_TABLE = Table(
    "connector_bookmarks",
    MetaData(),
    Column("connector", String(64), primary_key=True),
    Column("stream", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class SqlBookmarks:
    """Bookmarks in the ``connector_bookmarks`` table of any SQLAlchemy database.

    ``put`` is one short transaction (an upsert), committed before it returns: a bookmark that
    ``put`` stored survives a crash of the connector right after.
    """

    def __init__(self, url: str | URL | Engine, *, create: bool = True) -> None:
        if isinstance(url, Engine):
            self.engine, self._owns_engine = url, False
        else:
            try:
                parsed = make_url(url)
            except ArgumentError:
                # SQLAlchemy's message would quote the whole string, password included.
                raise ValueError("bookmarks: not a SQLAlchemy database URL") from None
            self.engine, self._owns_engine = create_engine(parsed, pool_pre_ping=True), True
        self.table = BOOKMARKS_TABLE
        if create:
            self.table.metadata.create_all(self.engine, tables=[self.table], checkfirst=True)

    def get(self, connector: str, stream: str) -> str | None:
        t = self.table
        stmt = select(t.c.value).where(t.c.connector == connector, t.c.stream == stream)
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar_one_or_none()

    def items(self) -> dict[tuple[str, str], str]:
        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.connector, t.c.stream, t.c.value)).all()
        return {(c, s): v for c, s, v in rows}

    def put(self, connector: str, stream: str, value: str) -> None:
        now = datetime.now(UTC)
        t = self.table
        dialect = self.engine.dialect.name
        if dialect in ("postgresql", "sqlite"):
            from sqlalchemy.dialects import postgresql, sqlite

            upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = upsert(t).values(connector=connector, stream=stream, value=value, updated_at=now)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.c.connector, t.c.stream], set_={"value": value, "updated_at": now}
            )
            with self.engine.begin() as conn:
                conn.execute(stmt)
            return
        # Other databases: update, else insert; a concurrent insert loses and updates instead.
        for _ in range(2):
            try:
                with self.engine.begin() as conn:
                    done = conn.execute(
                        update(t)
                        .where(t.c.connector == connector, t.c.stream == stream)
                        .values(value=value, updated_at=now)
                    ).rowcount
                    if not done:
                        conn.execute(insert(t).values(connector=connector, stream=stream, value=value, updated_at=now))
                return
            except IntegrityError:
                continue
        raise RuntimeError(f"bookmark {connector}.{stream}: could not be stored")

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    def __repr__(self) -> str:
        return f"SqlBookmarks({self.engine.url.render_as_string(hide_password=True)!r})"
