"""The entity directory: class → major → department → school, with responsible people.

Built from ``Entity`` and ``Person`` records as they arrive (later records for the same id win;
a person's contact fields are merged so that a reference carrying only id and name picks up the
DingTalk id, mobile and email that HR supplied). Roll-ups and routing both read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from zhengai.ingest.records import Entity, EntityKind, Person

__all__ = ["Directory"]


class Directory:
    def __init__(self, records: Iterable[Entity | Person] = ()):
        self._entities: dict[str, Entity] = {}
        self._persons: dict[str, Person] = {}
        self._children: dict[str, set[str]] = {}
        self._lineages: dict[str, tuple[str, ...]] = {}  # cleared by every change
        for record in records:
            self.add(record)

    # --- building -------------------------------------------------------------------------
    def add(self, record: Entity | Person) -> None:
        self._lineages.clear()
        if isinstance(record, Person):
            self._merge_person(record)
            return
        old = self._entities.get(record.id)
        if old is not None and old.parent_id:
            self._children.get(old.parent_id, set()).discard(record.id)
        self._entities[record.id] = record
        if record.parent_id:
            self._children.setdefault(record.parent_id, set()).add(record.id)
        for person in record.responsible.values():
            self._merge_person(person)

    def _merge_person(self, person: Person) -> None:
        old = self._persons.get(person.id)
        if old is None:
            self._persons[person.id] = person
            return
        update = {k: v for k, v in person.model_dump().items() if v is not None}
        self._persons[person.id] = old.model_copy(update=update)

    # --- reading --------------------------------------------------------------------------
    def __contains__(self, entity_id: str) -> bool:
        return entity_id in self._entities

    def __len__(self) -> int:
        return len(self._entities)

    def get(self, entity_id: str) -> Entity | None:
        return self._entities.get(entity_id)

    def person(self, person_id: str) -> Person | None:
        return self._persons.get(person_id)

    def of_kind(self, kind: EntityKind) -> Iterator[Entity]:
        return (e for e in self._entities.values() if e.kind is kind)

    def children(self, entity_id: str) -> list[Entity]:
        return [self._entities[c] for c in sorted(self._children.get(entity_id, ()))]

    def lineage(self, entity_id: str) -> tuple[str, ...]:
        """Entity ids from the school down to ``entity_id`` (inclusive). Unknown parents end the
        chain; cycles are cut."""
        cached = self._lineages.get(entity_id)
        if cached is not None:
            return cached
        chain: list[str] = []
        current: str | None = entity_id
        while current is not None and current not in chain:
            chain.append(current)
            entity = self._entities.get(current)
            current = entity.parent_id if entity else None
        self._lineages[entity_id] = lineage = tuple(reversed(chain))
        return lineage

    def placed(self, entity_id: str) -> bool:
        """Is the entity known with its whole line up to the school? Only then are its overrides,
        roll-ups and responsible people complete — an entity whose department has not arrived
        yet would be judged and routed as if it belonged to the school directly."""
        lineage = self.lineage(entity_id)
        head = self._entities.get(lineage[0]) if lineage else None
        return entity_id in self._entities and head is not None and head.kind is EntityKind.school

    def ancestor(self, entity_id: str, kind: EntityKind) -> Entity | None:
        for eid in reversed(self.lineage(entity_id)):
            entity = self._entities.get(eid)
            if entity is not None and entity.kind is kind:
                return entity
        return None

    def responsible(self, entity_id: str, role: str) -> tuple[Person, str] | None:
        """The person holding ``role`` for the entity, walking up the directory (a student's
        counsellor is the class's). Returns the person (contacts merged) and the entity id that
        named them."""
        for eid in reversed(self.lineage(entity_id)):
            entity = self._entities.get(eid)
            if entity is not None and role in entity.responsible:
                ref = entity.responsible[role]
                return self._persons.get(ref.id, ref), eid
        return None

    def school(self) -> Entity | None:
        return next(self.of_kind(EntityKind.school), None)
