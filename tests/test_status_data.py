"""The yearly 状态数据 tables derived from the store (PostgreSQL), through the command line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime

from zhengai.commands.status_data import periods_of_year
from zhengai.embedded import Pipeline
from zhengai.ingest.records import Entity, EntityKind, Level, Observation, Person
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.store import WarningStore

AT = datetime(2026, 10, 20, 2, 0, tzinfo=UTC)


def test_periods_of_an_academic_year():
    assert (
        periods_of_year(2026, "2026") and periods_of_year(2026, "2026-2027-1") and periods_of_year(2026, "2025-2026-2")
    )
    assert (
        periods_of_year(2026, "2026-W44") and periods_of_year(2026, "2026-10") and periods_of_year(2026, "2026-10-31")
    )
    assert not periods_of_year(2026, "2025") and not periods_of_year(2026, "2025-2026-1")


def test_export_writes_one_table_per_level_from_the_latest_values(pg_url, tmp_path):
    store = WarningStore(pg_url)
    store.create_schema()
    pipeline = Pipeline(store, load_rulebook(), clock=lambda: AT)
    pipeline.deliver(
        [
            Entity(
                id="SCH",
                kind=EntityKind.school,
                name="测试学院",
                responsible={"quality_office": Person(id="Q", name="质量办")},
            ),
            Entity(id="D1", kind=EntityKind.department, name="机电学院", parent_id="SCH"),
            Entity(id="M1", kind=EntityKind.major, name="数控技术", parent_id="D1"),
        ]
    )

    def obs(level, entity, metric, value, period, at=AT):
        return Observation(
            level=level,
            entity_id=entity,
            metric=metric,
            value=value,
            period=period,
            observed_at=at,
            source="zhaojiu.majors",
        )

    later = datetime(2026, 10, 25, tzinfo=UTC)
    pipeline.deliver(
        [
            obs(Level.major, "M1", "major.employment_rate", 90.0, "2026"),
            obs(Level.major, "M1", "major.employment_rate", 93.5, "2026", later),  # a correction: the latest wins
            obs(Level.major, "M1", "major.starting_salary", 4800, "2026"),
            obs(Level.major, "M1", "major.employment_rate", 80.0, "2025", datetime(2025, 10, 1, tzinfo=UTC)),
            obs(Level.school, "SCH", "school.books_per_student", 82.5, "2026"),
        ]
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "zhengai",
            "status-data",
            "export",
            "--year",
            "2026",
            "--out",
            str(out),
            "--store",
            pg_url,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rows"]["major"] == 1 and summary["rows"]["school"] == 1
    with open(out / "状态数据_2026_专业.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert header[:2] == ["对象代码", "对象名称"]
    row = dict(zip(header, rows[1], strict=True))
    assert row["对象代码"] == "M1" and row["对象名称"] == "数控技术"
    employment = next(h for h in header if h.startswith("毕业生就业率") or "就业率" in h and "本地" not in h)
    assert row[employment] == "93.5"
    assert any(row[h] == "4800" for h in header if "起薪" in h or "薪" in h)
    with open(out / "状态数据_2026_学校.csv", encoding="utf-8-sig", newline="") as fh:
        school = list(csv.reader(fh))
    assert school[1][0] == "SCH" and "82.5" in school[1]
