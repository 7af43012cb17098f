"""The directory as stored: entities (with their department and major denormalised for
dashboards) and persons. Written by the worker's directory agent and the embedded runner, read by
routing outside a streaming worker (the CLI, the notifier, the web pages)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Entity, EntityKind, Person
from zhengai.warnings.batch import chunks
from zhengai.warnings.schema import EntityRow, PersonRow

__all__ = ["DirectoryStore"]


class DirectoryStore:
    def __init__(self, sessions: sessionmaker[Session], insert: Callable):
        self._session = sessions
        self._insert = insert

    def upsert(self, records: Iterable[Entity | Person], directory: Directory | None = None) -> int:
        """Store entities and persons (latest wins; a person's missing contact field keeps the stored
        one). With the directory, each entity also gets its department and major, denormalised for
        dashboards — and so do the entities below the ones given, whose department or major may be
        known only now (a teacher from 人事 before their department from 教务). Entities whose row
        would not change are not written. Returns the number of entities new or changed."""
        given: dict[str, Entity] = {}
        persons: dict[str, dict] = {}
        for r in records:
            if isinstance(r, Person):
                persons[r.id] = dict(
                    id=r.id, name=r.name, dingtalk_user_id=r.dingtalk_user_id, mobile=r.mobile, email=r.email
                )
            else:
                given[r.id] = r
        if directory is not None:
            todo = list(given)
            while todo:
                for child in directory.children(todo.pop()):
                    if child.id not in given:
                        given[child.id] = child
                        todo.append(child.id)
        entities: dict[str, dict] = {}
        for r in given.values():
            dept = major = None
            if directory is not None:
                d = directory.ancestor(r.id, EntityKind.department)
                m = directory.ancestor(r.id, EntityKind.major)
                dept, major = (d.id if d else None), (m.id if m else None)
            entities[r.id] = dict(
                id=r.id,
                kind=r.kind.value,
                name=r.name,
                parent_id=r.parent_id,
                department_id=dept,
                major_id=major,
                responsible={role: p.id for role, p in r.responsible.items()},
                attributes=dict(r.attributes),
            )
        columns = ("kind", "name", "parent_id", "department_id", "major_id", "responsible", "attributes")
        with self._session() as s, s.begin():
            for chunk in chunks(sorted(entities)):
                for row in s.execute(
                    select(EntityRow.id, *(getattr(EntityRow, c) for c in columns)).where(EntityRow.id.in_(chunk))
                ):
                    if tuple(row[1:]) == tuple(entities[row[0]][c] for c in columns):
                        del entities[row[0]]  # stored as it is: nothing to write, nothing changed
            for rows in chunks([entities[k] for k in sorted(entities)], 1000):
                stmt = self._insert(EntityRow)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["id"], set_={c: getattr(stmt.excluded, c) for c in columns}
                )
                s.execute(stmt, list(rows))
            for rows in chunks([persons[k] for k in sorted(persons)], 1000):
                stmt = self._insert(PersonRow)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["id"],
                    set_={
                        "name": stmt.excluded.name,
                        **{
                            c: func.coalesce(getattr(stmt.excluded, c), getattr(PersonRow, c))
                            for c in ("dingtalk_user_id", "mobile", "email")
                        },
                    },
                )
                s.execute(stmt, list(rows))
        return len(entities)

    def load(self) -> Directory:
        """The directory as stored (for routing outside a streaming worker, e.g. the CLI)."""
        with self._session() as s:
            persons = {
                p.id: Person(id=p.id, name=p.name, dingtalk_user_id=p.dingtalk_user_id, mobile=p.mobile, email=p.email)
                for p in s.scalars(select(PersonRow))
            }
            records: list[Entity | Person] = list(persons.values())
            for e in s.scalars(select(EntityRow)):
                responsible = {
                    role: persons.get(pid) or Person(id=pid, name=pid) for role, pid in (e.responsible or {}).items()
                }
                records.append(
                    Entity(
                        id=e.id,
                        kind=e.kind,
                        name=e.name,
                        parent_id=e.parent_id,
                        responsible=responsible,
                        attributes=e.attributes or {},
                    )
                )
        return Directory(records)
