"""The store's seams: what people read are frozen domain records that mirror their tables."""

from __future__ import annotations

import dataclasses
from datetime import UTC

import pytest
from sqlalchemy import inspect

from zhengai.warnings.reads import ImprovementRecord, WarningEventRecord, WarningRecord
from zhengai.warnings.schema import ImprovementRow, WarningEventRow, WarningRow
from zhengai.warnings.store import WarningStore


@pytest.mark.parametrize(
    "record, row",
    [(WarningRecord, WarningRow), (WarningEventRecord, WarningEventRow), (ImprovementRecord, ImprovementRow)],
)
def test_records_mirror_their_tables(record, row):
    """A column added to the table must reach the readers too (and a record field must exist)."""
    assert [f.name for f in dataclasses.fields(record)] == [c.key for c in inspect(row).columns]


def test_reads_are_detached_and_frozen(tmp_path):
    from datetime import datetime

    store = WarningStore(f"sqlite:///{tmp_path / 's.db'}")
    store.create_schema()
    at = datetime(2026, 11, 2, tzinfo=UTC)
    with store.session() as s, s.begin():
        s.add(
            WarningRow(
                rule_id="course.attendance_rate",
                rule_name="课程到课率",
                entity_id="C1",
                episode=1,
                level="course",
                metric="course.attendance_rate",
                status="open",
                band="red",
                worst_band="red",
                opened_period="2026-W45",
                last_period="2026-W45",
                value=0.6,
                reason="低于预警值",
                opened_at=at,
                updated_at=at,
            )
        )
    (w,) = store.read.warnings()
    assert isinstance(w, WarningRecord) and (w.rule_name, w.band, w.value) == ("课程到课率", "red", 0.6)
    assert store.read.warning(w.id) == w
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.status = "closed"  # type: ignore[misc]
    assert store.read.warning(w.id + 1) is None
    assert store.read.count(WarningRow) == 1
