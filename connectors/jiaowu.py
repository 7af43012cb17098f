"""教务 (academic affairs): the teaching database — directory, attendance, grades, enrollments,
teaching plans, teaching progress (授课计划 vs. 教学日志).

Dimension tables are read in full each run (they feed the compacted entity directory);
attendance, grades and course progress are incremental by (updated_at, id) with a lookback
window. Student
身份证号 and mobile are never selected: personal data stays in the source database.

Soft deletes (a ``deleted``/``is_deleted``/``deleted_at`` column): a deleted directory row still
becomes its Entity, with ``attributes.status = "deleted"``, so the directory learns that the
department, class, student … is gone; a deleted attendance or grade row is skipped (the v1 wire
contract has no retraction record — see ADDING.md).
See SOURCES.md for the schema and ADDING.md for the field mapping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, ClassVar

from pydantic import Field

from zhengai.ingest.records import (
    AttendanceEvent,
    Entity,
    EntityKind,
    GradeEvent,
    Level,
    Observation,
    Person,
    period_kind,
)

from .base import Connector, Record, Row
from .config import ConnectorConfig, Duration, Model, SqlSourceConfig
from .errors import MappingError
from .retry import RetryPolicy
from .sql import FullRefreshSqlStream, IncrementalSqlStream, SqlSource
from .values import field, normalize_text, parse_int, parse_number, parse_timestamp

__all__ = ["JiaowuConnector", "JiaowuOptions"]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"


class JiaowuOptions(Model):
    """``options:`` of a 教务 configuration."""

    school_id: Annotated[str, Field(pattern=_ID)]
    lookback: Duration = timedelta(hours=1)


def _responsible(row: Row, role: str, id_key: str, name_key: str) -> dict[str, Person]:
    """``{role: Person(id, name)}``, or nothing when the post is vacant (no id)."""
    person_id = row.get(id_key)
    if person_id in (None, ""):
        return {}
    name = normalize_text(row.get(name_key)) or str(person_id)
    return {role: Person(id=str(person_id), name=name)}


class _Dimension(FullRefreshSqlStream):
    connector: ClassVar[str] = "jiaowu"
    primary_key: ClassVar[tuple[str, ...]] = ("id",)

    def __init__(self, db: SqlSource, school_id: str) -> None:
        super().__init__(db)
        self.school_id = school_id

    def map(self, row: Row) -> list[Record]:
        entities = self.entities(row)
        if self.soft_deleted(row):
            return [e.model_copy(update={"attributes": {**e.attributes, "status": "deleted"}}) for e in entities]
        return [*entities]

    def entities(self, row: Row) -> list[Entity]:
        raise NotImplementedError


class Departments(_Dimension):
    name = table = "departments"

    def entities(self, row: Row) -> list[Entity]:
        return [
            Entity(
                id=row["id"],
                kind=EntityKind.department,
                name=row["name"],
                parent_id=self.school_id,
                responsible=_responsible(row, "dean", "dean_id", "dean_name"),
            )
        ]


class Majors(_Dimension):
    name = table = "majors"

    def entities(self, row: Row) -> list[Entity]:
        return [
            Entity(
                id=row["id"],
                kind=EntityKind.major,
                name=row["name"],
                parent_id=field(row, "department_id"),
                responsible=_responsible(row, "major_leader", "leader_id", "leader_name"),
            )
        ]


class Classes(_Dimension):
    name = table = "classes"

    def entities(self, row: Row) -> list[Entity]:
        cohort = field(row, "cohort", parse_int, required=False)
        return [
            Entity(
                id=row["id"],
                kind=EntityKind.class_,
                name=row["name"],
                parent_id=field(row, "major_id"),
                responsible=_responsible(row, "counsellor", "counsellor_id", "counsellor_name"),
                attributes={"cohort": cohort},
            )
        ]


class Students(_Dimension):
    name = table = "students"
    # id_card and mobile are deliberately absent: they are not needed for any indicator.
    columns = ("id", "name", "class_id", "status", "updated_at")

    def entities(self, row: Row) -> list[Entity]:
        return [
            Entity(
                id=str(row["id"]),
                kind=EntityKind.student,
                name=row["name"],
                parent_id=field(row, "class_id"),
                attributes={"status": normalize_text(row.get("status")) or None},
            )
        ]


class Courses(_Dimension):
    name = table = "courses"

    def entities(self, row: Row) -> list[Entity]:
        return [
            Entity(
                id=row["id"],
                kind=EntityKind.course,
                name=row["name"],
                parent_id=field(row, "major_id"),
                responsible=_responsible(row, "course_teacher", "teacher_id", "teacher_name"),
                attributes={
                    "teacher_id": row.get("teacher_id"),
                    "weekly_hours": field(row, "weekly_hours", parse_number, required=False),
                    "credits": field(row, "credits", parse_number, required=False),
                },
            )
        ]


class _Fact(IncrementalSqlStream):
    connector: ClassVar[str] = "jiaowu"
    primary_key: ClassVar[tuple[str, ...]] = ("id",)

    def key(self, row: Row) -> str:
        return f"jiaowu:{self.name}:{row['id']}"

    def map(self, row: Row) -> list[Record]:
        if self.soft_deleted(row):
            return []  # no retraction record in the v1 contract: see the module docstring
        return self.events(row)

    def events(self, row: Row) -> list[Record]:
        raise NotImplementedError


class Attendance(_Fact):
    name = table = "attendance"

    def events(self, row: Row) -> list[Record]:
        return [
            AttendanceEvent(
                occurred_at=field(row, "updated_at", parse_timestamp),
                source=self.source,
                key=self.key(row),
                student_id=str(field(row, "student_id")),
                course_id=field(row, "course_id"),
                week=normalize_text(field(row, "week")),
                scheduled=field(row, "scheduled", parse_int),
                attended=field(row, "attended", parse_int),
                excused=field(row, "excused", parse_int, required=False) or 0,
            )
        ]


class Grades(_Fact):
    name = table = "grades"

    def events(self, row: Row) -> list[Record]:
        return [
            GradeEvent(
                occurred_at=field(row, "updated_at", parse_timestamp),
                source=self.source,
                key=self.key(row),
                student_id=str(field(row, "student_id")),
                course_id=field(row, "course_id"),
                term=normalize_text(field(row, "term")),
                score=field(row, "score", parse_number),
                credits=field(row, "credits", parse_number),
            )
        ]


class CourseProgress(_Fact):
    """教学进度: one row per course × teaching week with the sessions (课次) the 授课计划
    plans up to that week and those the 教学日志 records as taught. The deviation is how many
    weeks of the plan are still untaught; a course ahead of its plan counts 0."""

    name = table = "course_progress"
    columns = (
        "id",
        "course_id",
        "week",
        "sessions_per_week",
        "planned_sessions_cum",
        "taught_sessions_cum",
        "updated_at",
    )

    def events(self, row: Row) -> list[Record]:
        per_week = field(row, "sessions_per_week", parse_number)
        planned = field(row, "planned_sessions_cum", parse_number)
        taught = field(row, "taught_sessions_cum", parse_number)
        if per_week <= 0:
            raise MappingError(f"sessions_per_week: must be positive to count weeks, got {per_week:g}")
        for key, value in (("planned_sessions_cum", planned), ("taught_sessions_cum", taught)):
            if value < 0:
                raise MappingError(f"{key}: must not be negative, got {value:g}")
        week = normalize_text(field(row, "week"))
        try:
            kind = period_kind(week)
        except ValueError as exc:
            raise MappingError(f"week: {exc}") from None
        if kind != "week":
            raise MappingError(f"week: {week!r} is not an ISO week such as 2026-W37")
        updated = field(row, "updated_at", parse_timestamp)
        return [
            Observation(
                level=Level.course,
                entity_id=str(field(row, "course_id")),
                metric="course.schedule_deviation",
                value=round(max(0.0, planned - taught) / per_week, 1),
                period=week,
                observed_at=updated,
                source=self.source,
            )
        ]


class TeachingPlans(FullRefreshSqlStream):
    """Only the newest cohort's plan of each major counts (the plan now being taught)."""

    connector: ClassVar[str] = "jiaowu"
    name = "teaching_plans"
    primary_key: ClassVar[tuple[str, ...]] = ("major_id", "cohort")
    query = (
        "SELECT p.major_id, p.cohort, p.total_hours, p.practice_hours, p.updated_at "
        "FROM teaching_plans p WHERE p.cohort = "
        "(SELECT MAX(n.cohort) FROM teaching_plans n WHERE n.major_id = p.major_id)"
    )

    def map(self, row: Row) -> list[Record]:
        total = field(row, "total_hours", parse_number)
        practice = field(row, "practice_hours", parse_number)
        if total <= 0:
            raise MappingError(f"total_hours: must be positive to compute a ratio, got {total:g}")
        if not 0 <= practice <= total:
            raise MappingError(f"practice_hours: {practice:g} is outside 0..total_hours ({total:g})")
        updated = field(row, "updated_at", parse_timestamp)
        return [
            Observation(
                level=Level.major,
                entity_id=field(row, "major_id"),
                metric="major.practice_hours_ratio",
                value=round(100 * practice / total, 4),
                period=str(updated.year),
                observed_at=updated,
                source=self.source,
            )
        ]


class Enrollments(FullRefreshSqlStream):
    """选课: the number of students enrolled in each course per term (``enrollments`` has one
    row per student × course × term and no timestamp, so it is counted whole each run)."""

    connector: ClassVar[str] = "jiaowu"
    name = "enrollments"
    primary_key: ClassVar[tuple[str, ...]] = ("course_id", "term")
    query = (
        "SELECT e.course_id, e.term, COUNT(DISTINCT e.student_id) AS students "
        "FROM enrollments e GROUP BY e.course_id, e.term"
    )

    def map(self, row: Row) -> list[Record]:
        students = field(row, "students", parse_int)
        return [
            Observation(
                level=Level.course,
                entity_id=str(field(row, "course_id")),
                metric="course.enrolled_students",
                value=students,
                period=normalize_text(field(row, "term")),
                # The table has no time of its own: the count is as of this read.
                observed_at=datetime.now(UTC),
                source=self.source,
            )
        ]


class JiaowuConnector(Connector):
    """教务 over any SQLAlchemy URL (the demo: ``sqlite:///…/jiaowu.sqlite``)."""

    name: ClassVar[str] = "jiaowu"
    source_kind: ClassVar[str] = "sql"
    options_model: ClassVar[type[Model]] = JiaowuOptions
    stream_names: ClassVar[tuple[str, ...]] = (
        "departments",
        "majors",
        "classes",
        "students",
        "courses",
        "enrollments",
        "attendance",
        "grades",
        "teaching_plans",
        "course_progress",
    )

    def __init__(
        self,
        url: str | SqlSource,
        school_id: str,
        lookback: timedelta = timedelta(hours=1),
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.db = url if isinstance(url, SqlSource) else SqlSource(url, retry=retry)
        self.school_id = school_id
        self.streams = (
            Departments(self.db, school_id),
            Majors(self.db, school_id),
            Classes(self.db, school_id),
            Students(self.db, school_id),
            Courses(self.db, school_id),
            Enrollments(self.db),
            Attendance(self.db, lookback=lookback),
            Grades(self.db, lookback=lookback),
            TeachingPlans(self.db),
            CourseProgress(self.db, lookback=lookback),
        )

    @classmethod
    def from_config(cls, config: ConnectorConfig) -> JiaowuConnector:
        assert isinstance(config.source, SqlSourceConfig)
        options: JiaowuOptions = config.options
        return cls(config.source.build(), options.school_id, options.lookback)

    def close(self) -> None:
        self.db.close()

    def __repr__(self) -> str:
        return f"JiaowuConnector({self.db!r}, school_id={self.school_id!r})"
