"""Observations and dead letters as stored. ``write`` runs inside a caller's transaction (the
judge's one-hop batch); ``add`` is its own transaction. A key seen before with a different value is
a correction and replaces it (latest wins); the same key and value is a no-op."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from zhengai.ingest.records import DeadLetter, Observation, period_start
from zhengai.warnings.batch import chunks
from zhengai.warnings.schema import DeadLetterRow, ObservationRow

__all__ = ["ObservationStore"]


class ObservationStore:
    def __init__(self, sessions: sessionmaker[Session], insert: Callable, dialect: str):
        self._session = sessions
        self._insert = insert
        self._dialect = dialect

    def add(self, observations: Sequence[Observation]) -> int:
        """Store observations; a key seen before with a different value is a correction and
        replaces it (latest wins), the same key and value is a no-op. Returns rows written."""
        with self._session() as s, s.begin():
            return self.write(s, observations)

    def write(self, s: Session, observations: Sequence[Observation]) -> int:
        latest: dict[str, Observation] = {}
        for o in observations:
            latest[o.key] = o
        if not latest:
            return 0
        if self._dialect == "postgresql":
            return self._copy(s, list(latest.values()))
        stored: dict[str, tuple[int, float]] = {}
        for chunk in chunks(list(latest)):
            for rid, key, value in s.execute(
                select(ObservationRow.id, ObservationRow.key, ObservationRow.value).where(ObservationRow.key.in_(chunk))
            ):
                stored[key] = (rid, value)
        new, changed = [], []
        for o in latest.values():
            row = dict(
                key=o.key,
                level=o.level.value,
                entity_id=o.entity_id,
                metric=o.metric,
                period=o.period,
                value=float(o.value),
                is_bool=isinstance(o.value, bool),
                observed_at=o.observed_at,
                source=o.source,
                period_start=period_start(o.period),
            )
            if o.key not in stored:
                new.append(row)
            elif stored[o.key][1] != float(o.value):
                changed.append({"id": stored[o.key][0], **row})
        if new:
            s.execute(self._insert(ObservationRow).on_conflict_do_nothing(index_elements=["key", "period_start"]), new)
        if changed:
            s.execute(update(ObservationRow), changed)
        return len(new) + len(changed)

    _OBS_COLUMNS = (
        "key",
        "level",
        "entity_id",
        "metric",
        "period",
        "value",
        "is_bool",
        "observed_at",
        "source",
        "period_start",
    )

    def _copy(self, s: Session, observations: list[Observation]) -> int:
        """PostgreSQL: COPY into a temporary table, then one upsert that writes only new keys and
        changed values (latest wins) — replays cost one round trip and write nothing."""
        if not observations:
            return 0
        cols = ", ".join(self._OBS_COLUMNS)
        s.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS observations_in (LIKE observations INCLUDING DEFAULTS)"
                " ON COMMIT DELETE ROWS"
            )
        )
        buf = io.StringIO()
        writer = csv.writer(buf)
        for o in observations:
            writer.writerow(
                [
                    o.key,
                    o.level.value,
                    o.entity_id,
                    o.metric,
                    o.period,
                    repr(float(o.value)),
                    "t" if isinstance(o.value, bool) else "f",
                    o.observed_at.isoformat(),
                    o.source,
                    period_start(o.period).isoformat(),
                ]
            )
        buf.seek(0)
        cur = s.connection().connection.cursor()  # the driver's (psycopg2) cursor: COPY needs it
        try:
            cur.copy_expert(f"COPY observations_in ({cols}) FROM STDIN WITH (FORMAT csv)", buf)
        finally:
            cur.close()
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self._OBS_COLUMNS if c not in ("key", "period_start"))
        written = s.execute(
            text(
                f"INSERT INTO observations ({cols}) SELECT {cols} FROM observations_in"
                f" ON CONFLICT (key, period_start) DO UPDATE SET {updates} "
                "WHERE observations.value IS DISTINCT FROM EXCLUDED.value RETURNING 1"
            )
        ).all()
        s.execute(text("TRUNCATE observations_in"))
        return len(written)

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        with self._session() as s, s.begin():
            s.execute(
                insert(DeadLetterRow), [dict(source=d.source, reason=d.reason, raw=d.raw, at=d.at) for d in letters]
            )
