"""The one entry point to the stream processors, for both runtimes.

:class:`Aggregator` owns the stream state in the store's database: the facts of every processor
(``zhengai.ingest.processors``), the dirty units (``zhengai.ingest.units``) and the observations
parked until the directory knows their entity. The Faust worker calls it from its agents and
timers, the embedded runner from its in-process delivery; nothing else computes a derived metric.

    record(records)           facts in, units marked — one transaction
    directory_changed()       units that read the directory marked again
    claim() → emit() → release()
    park() / unpark() / expire()   observations that arrived before their directory entry
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import Column, Index, String, Table, Text, create_engine, delete, select
from sqlalchemy.engine import Engine

from zhengai.ingest.directory import Directory
from zhengai.ingest.processors import PROCESSORS, Processor, Timing
from zhengai.ingest.records import Observation
from zhengai.ingest.sqltypes import UTCDateTime
from zhengai.ingest.systems import INPUT_METRICS, SYSTEM_PROCESSORS
from zhengai.ingest.units import UnitRef, UnitStore, chunks, insert_for, metadata

__all__ = ["Aggregator", "Emitted", "parked"]

parked = Table(
    "parked_observations",
    metadata,
    Column("key", String(256), primary_key=True),
    Column("entity_id", String(64), nullable=False),
    Column("record", Text, nullable=False),  # the observation as JSON (validated when it arrived)
    Column("source", String(160), nullable=False),  # where it came from (kafka:topic/partition/offset)
    Column("parked_at", UTCDateTime(), nullable=False),
    Index("ix_parked_observations_entity", "entity_id"),
)


@dataclass
class Emitted:
    """What a flush step produced: the claimed units and their observations."""

    refs: list[UnitRef]
    observations: list[Observation]


class Aggregator:
    def __init__(
        self, url_or_engine: str | Engine, *, timing: Timing | None = None, clock: Callable[[], datetime] | None = None
    ):
        self.engine = create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self.timing = timing or Timing()
        upsert = insert_for(self.engine)
        self._insert = upsert
        self.processors: tuple[Processor, ...] = tuple(
            cls(self.timing, upsert) for cls in (*PROCESSORS, *SYSTEM_PROCESSORS)
        )
        self._by_kind = {kind: p for p in self.processors for kind in p.kinds}
        self.units = UnitStore(self.engine)
        self.clock = clock or (lambda: datetime.now(UTC))

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    # --- facts in --------------------------------------------------------------------------------
    def accepts(self, record: BaseModel) -> bool:
        return any(p.accepts(record) for p in self.processors)

    def input_only(self, observation: Observation) -> bool:
        """An observation that is only a processor's input (一卡通 activity, 学籍 dropouts): a fact
        here, never judged by a rule (``zhengai.ingest.systems.INPUT_METRICS``)."""
        return observation.metric in INPUT_METRICS

    def record(self, records: Sequence[BaseModel], now: datetime | None = None) -> int:
        """Store the facts among ``records`` and mark their units, in one transaction. Records no
        processor takes are ignored (an observation is a fact only for some metrics). Returns the
        number of units marked."""
        now = now or self.clock()
        groups = [(p, [r for r in records if p.accepts(r)]) for p in self.processors]
        groups = [(p, rs) for p, rs in groups if rs]
        if not groups:
            return 0
        with self.engine.begin() as conn:
            marks = {}
            for processor, rs in groups:
                marks.update(processor.record(conn, rs, now))
            return self.units.mark(conn, marks, now)

    def directory_changed(self, now: datetime | None = None) -> int:
        """The directory changed: every unit that reads it is computed again once it settles."""
        now = now or self.clock()
        with self.engine.begin() as conn:
            marks = {}
            for processor in self.processors:
                marks.update(processor.directory_changed(conn, now))
            return self.units.mark(conn, marks, now)

    # --- observations out ------------------------------------------------------------------------
    def claim(
        self, now: datetime | None = None, *, lease: timedelta = timedelta(seconds=15), limit: int = 500
    ) -> list[UnitRef]:
        return self.units.claim(now or self.clock(), lease=lease, limit=limit)

    def emit(self, refs: Sequence[UnitRef], directory: Directory, as_of: datetime | None = None) -> list[Observation]:
        """The observations the claimed units stand for now, from the committed facts."""
        as_of = as_of or self.clock()
        by_processor: dict[str, list[UnitRef]] = {}
        for r in refs:
            processor = self._by_kind.get(r.kind)
            if processor is not None:  # a kind from a newer version: left for it
                by_processor.setdefault(processor.name, []).append(r)
        out: list[Observation] = []
        with self.engine.connect() as conn:
            for processor in self.processors:
                if processor.name in by_processor:
                    out += processor.observations(conn, by_processor[processor.name], directory, as_of)
        return out

    def release(self, refs: Sequence[UnitRef], now: datetime | None = None) -> None:
        self.units.release(refs, now or self.clock())

    def step(
        self,
        directory: Directory,
        now: datetime | None = None,
        *,
        lease: timedelta = timedelta(seconds=15),
        limit: int = 500,
    ) -> Emitted:
        """Claim due units and compute their observations (release after they were handled)."""
        refs = self.claim(now, lease=lease, limit=limit)
        return Emitted(refs, self.emit(refs, directory) if refs else [])

    def pending(self) -> int:
        return self.units.pending()

    # --- observations waiting for the directory ----------------------------------------------------
    def park(self, observations: Iterable[tuple[Observation, str]], now: datetime | None = None) -> int:
        """Keep observations whose entity the directory cannot place yet (with their source)."""
        rows = {
            o.key: dict(
                key=o.key,
                entity_id=o.entity_id,
                record=o.model_dump_json(),
                source=source[:160],
                parked_at=now or self.clock(),
            )
            for o, source in observations
        }
        if not rows:
            return 0
        ins = self._insert(parked)
        stmt = ins.on_conflict_do_update(
            index_elements=[parked.c.key], set_={"record": ins.excluded.record, "source": ins.excluded.source}
        )
        with self.engine.begin() as conn:
            for chunk in chunks(sorted(rows)):
                conn.execute(stmt, [rows[k] for k in chunk])
        return len(rows)

    def parked_entities(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(parked.c.entity_id).distinct()).scalars())

    def take_parked(self, entity_ids: Iterable[str]) -> list[tuple[Observation, str]]:
        """The parked observations of these entities (they stay parked until :meth:`unpark`)."""
        out: list[tuple[Observation, str]] = []
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(entity_ids))):
                for row in conn.execute(
                    select(parked).where(parked.c.entity_id.in_(list(chunk))).order_by(parked.c.key)
                ):
                    out.append((Observation.model_validate(json.loads(row.record)), row.source))
        return out

    def unpark(self, keys: Iterable[str]) -> None:
        keys = sorted(set(keys))
        with self.engine.begin() as conn:
            for chunk in chunks(keys):
                conn.execute(delete(parked).where(parked.c.key.in_(list(chunk))))

    def expired(self, before: datetime) -> list[tuple[Observation, str]]:
        """Observations parked since before ``before`` (their entity never arrived)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(parked).where(parked.c.parked_at < before).order_by(parked.c.key).limit(5000)
            ).all()
        return [(Observation.model_validate(json.loads(r.record)), r.source) for r in rows]
