"""The demo college's store on real PostgreSQL: the small demo runs once (embedded, SQLite), then
its rows are copied into a fresh, migrated PostgreSQL database per test. Shared by the 画像,
scope and dashboard tests."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import Integer, create_engine, select, text

import zhengai.warnings.improvement_schema  # noqa: F401 — the tables the copy walks
import zhengai.warnings.notify_schema  # noqa: F401
import zhengai.warnings.scopes  # noqa: F401
from zhengai.warnings.schema import Base
from zhengai.warnings.store import WarningStore

__all__ = ["run_small_demo", "copy_into_postgres", "login"]


def run_small_demo(out: Path):
    from zhengai.demo.run import run_demo

    return run_demo(out, "small", out=io.StringIO(), progress=False)


def copy_into_postgres(sqlite_path: Path, pg_url: str) -> WarningStore:
    """A migrated PostgreSQL store holding every row of the demo's store tables."""
    store = WarningStore(pg_url)
    store.create_schema()
    source = create_engine(f"sqlite:///{sqlite_path}")
    with source.connect() as src, store.engine.begin() as dst:
        for table in Base.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(select(table))]
            if rows:
                dst.execute(table.insert(), rows)
        for table in Base.metadata.sorted_tables:  # keep the id sequences ahead of the copied ids
            if "id" in table.c and isinstance(table.c.id.type, Integer):
                dst.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"GREATEST((SELECT max(id) FROM {table.name}), 1))"
                    )
                )
    source.dispose()
    return store


class login:
    """A database login for one test (dropped after): ``login(store, name, role)`` as a context
    manager yields an engine connected as it."""

    def __init__(self, store: WarningStore, name: str, member_of: str):
        self.store, self.name, self.member_of = store, name, member_of

    def __enter__(self):
        url = self.store.engine.url
        with self.store.engine.begin() as c:
            c.execute(text(f"DROP ROLE IF EXISTS {self.name}"))
            c.execute(text(f"CREATE ROLE {self.name} LOGIN PASSWORD 'scope-test' IN ROLE {self.member_of}"))
            c.execute(text(f"GRANT CONNECT ON DATABASE {url.database} TO {self.name}"))
        self.engine = create_engine(url.set(username=self.name, password="scope-test"))
        return self.engine

    def __exit__(self, *exc) -> None:
        self.engine.dispose()
        with self.store.engine.begin() as c:
            c.execute(text(f"REVOKE CONNECT ON DATABASE {self.store.engine.url.database} FROM {self.name}"))
            c.execute(text(f"DROP ROLE {self.name}"))
