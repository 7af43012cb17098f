"""The wire contract: typed records that flow from connectors to the warning store.

Every record validates at the edge; a validation error names the field and why. Records are
immutable. ``SCHEMA_VERSION`` is carried on the wire (``v``) so a schema can evolve: readers
accept every version they know and reject the rest with a clear reason.

Plausibility (calendar-valid periods, timestamps in a sane range, no booleans for numbers) is
decided once, in ``zhengai.ingest.plausibility``; every text field has a length bound.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from zhengai.ingest.plausibility import (
    EARLIEST,
    FUTURE_SLACK,
    PERIOD_YEARS,
    period_kind,
    period_sort_key,
    period_start,
)
from zhengai.ingest.plausibility import (
    numeric_only as _numeric_only,
)
from zhengai.ingest.plausibility import (
    plausible_time as _plausible,
)
from zhengai.ingest.plausibility import (
    utc as _utc,
)
from zhengai.ingest.privacy import dead_letter_text, mask_text

SCHEMA_VERSION = 1

__all__ = [
    "SCHEMA_VERSION",
    "Level",
    "EntityKind",
    "Band",
    "Direction",
    "Role",
    "Person",
    "Entity",
    "Observation",
    "AttendanceEvent",
    "GradeEvent",
    "FinanceEvent",
    "FinanceCategory",
    "Event",
    "DeadLetter",
    "Thresholds",
    "Verdict",
    "WarningTransition",
    "period_kind",
    "period_sort_key",
    "EARLIEST",
    "FUTURE_SLACK",
    "PERIOD_YEARS",
    "period_start",
]


class Level(str, Enum):  # noqa: UP042 — StrEnum would change str()/format() of members (audit first)
    """The five 诊改 levels (五横)."""

    school = "school"
    major = "major"
    course = "course"
    teacher = "teacher"
    student = "student"

    @property
    def zh(self) -> str:
        return _LEVEL_ZH[self]


_LEVEL_ZH = {
    Level.school: "学校",
    Level.major: "专业",
    Level.course: "课程",
    Level.teacher: "教师",
    Level.student: "学生",
}


class EntityKind(str, Enum):  # noqa: UP042 — StrEnum would change str()/format() of members (audit first)
    """Kinds of entity in the directory. A department (二级学院) and a class (班级) are entities
    that carry responsible people and roll-ups, but they are not 诊改 levels themselves."""

    school = "school"
    department = "department"
    major = "major"
    class_ = "class"
    course = "course"
    teacher = "teacher"
    student = "student"

    @property
    def zh(self) -> str:
        return _KIND_ZH[self]


_KIND_ZH = {
    EntityKind.school: "学校",
    EntityKind.department: "二级学院",
    EntityKind.major: "专业",
    EntityKind.class_: "班级",
    EntityKind.course: "课程",
    EntityKind.teacher: "教师",
    EntityKind.student: "学生",
}


class Band(str, Enum):  # noqa: UP042 — StrEnum would change str()/format() of members (audit first)
    excellent = "excellent"
    normal = "normal"
    yellow = "yellow"
    red = "red"
    stale = "stale"

    @property
    def zh(self) -> str:
        return _BAND_ZH[self]

    @property
    def is_breach(self) -> bool:
        return self in (Band.yellow, Band.red)


_BAND_ZH = {
    Band.excellent: "达成目标",
    Band.normal: "达标",
    Band.yellow: "黄色预警",
    Band.red: "红色预警",
    Band.stale: "数据缺失",
}


class Direction(str, Enum):  # noqa: UP042 — StrEnum would change str()/format() of members (audit first)
    higher_is_better = "higher_is_better"
    lower_is_better = "lower_is_better"
    boolean = "boolean"
    range = "range"


class Role(str, Enum):  # noqa: UP042 — StrEnum would change str()/format() of members (audit first)
    """Responsible roles, as the seeds name them (004:601–607 responsibility chain)."""

    course_teacher = "course_teacher"  # 任课教师
    course_owner = "course_owner"  # 课程负责人
    counsellor = "counsellor"  # 辅导员
    class_teacher = "class_teacher"  # 班主任
    major_leader = "major_leader"  # 专业带头人 / 专业负责人
    dean = "dean"  # 二级学院院长
    teacher = "teacher"  # 教师本人
    office = "office"  # 职能部门 (named by the rule)
    quality_office = "quality_office"  # 质量办

    @property
    def zh(self) -> str:
        return _ROLE_ZH[self]


_ROLE_ZH = {
    Role.course_teacher: "任课教师",
    Role.course_owner: "课程负责人",
    Role.counsellor: "辅导员",
    Role.class_teacher: "班主任",
    Role.major_leader: "专业带头人",
    Role.dean: "二级学院院长",
    Role.teacher: "教师本人",
    Role.office: "职能部门",
    Role.quality_office: "质量办",
}

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
_METRIC = r"^[a-z]+\.[a-z0-9_]{1,63}$"

_TRUSTED_DEFAULTS: dict[type, dict[str, Any]] = {}


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
    _numeric_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def trusted(cls, **values: Any):
        """A record from values this process computed out of validated inputs (the evaluator's
        verdicts): no second validation — a quarter of ``model_construct``'s cost, which matters
        once per observation. Fields not given take their plain defaults; every field must be
        given or have one."""
        defaults = _TRUSTED_DEFAULTS.get(cls)
        if defaults is None:
            defaults = _TRUSTED_DEFAULTS[cls] = {
                name: f.default
                for name, f in cls.model_fields.items()
                if not f.is_required() and f.default_factory is None
            }
        record = cls.__new__(cls)
        object.__setattr__(record, "__dict__", {**defaults, **values})
        object.__setattr__(record, "__pydantic_fields_set__", set(values))
        object.__setattr__(record, "__pydantic_extra__", None)
        object.__setattr__(record, "__pydantic_private__", None)
        return record

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._numeric_fields = frozenset(n for n, f in cls.model_fields.items() if _numeric_only(f.annotation))

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in cls._numeric_fields:
                if isinstance(data.get(name), bool):
                    raise ValueError(f"{name}: a number is expected, not a boolean")
        return data


class Person(_Record):
    """A responsible person. Contact fields are personal data: they never go into logs or
    metric labels, and notifications mask the mobile number."""

    id: Annotated[str, Field(pattern=_ID)]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    dingtalk_user_id: Annotated[str | None, Field(max_length=64)] = None
    mobile: Annotated[str | None, Field(pattern=r"^\+?\d{6,15}$")] = None
    email: Annotated[str | None, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] = None


class Entity(_Record):
    """An entry of the directory: class → major → department → school, with responsible people."""

    v: Literal[1] = 1
    id: Annotated[str, Field(pattern=_ID)]
    kind: EntityKind
    name: Annotated[str, Field(min_length=1, max_length=128)]
    parent_id: Annotated[str | None, Field(pattern=_ID)] = None
    # Keyed by a Role value ("counsellor", "dean" …) or "office:<职能部门>" on the school entity.
    # The Person may carry only id and name; contacts are merged from Person records by id.
    responsible: Annotated[dict[Annotated[str, Field(max_length=64)], Person], Field(max_length=32)] = Field(
        default_factory=dict
    )
    attributes: Annotated[
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)] | int | float | bool | None],
        Field(max_length=64),
    ] = Field(default_factory=dict)

    @field_validator("responsible")
    @classmethod
    def _roles(cls, value: dict[str, Person]) -> dict[str, Person]:
        valid = {r.value for r in Role}
        for key in value:
            if key not in valid and not (key.startswith("office:") and len(key) > 7):
                raise ValueError(
                    f"responsible key {key!r} is not a role ({', '.join(sorted(valid))}) nor office:<name>"
                )
        return value

    @model_validator(mode="after")
    def _parent_rule(self) -> Entity:
        if self.kind is EntityKind.school and self.parent_id is not None:
            raise ValueError("a school has no parent")
        if self.kind is not EntityKind.school and self.parent_id is None:
            raise ValueError(f"a {self.kind.value} needs parent_id")
        return self


class Observation(_Record):
    """One metric value for one entity and period. Keyed by entity on the wire."""

    v: Literal[1] = 1
    level: Level
    entity_id: Annotated[str, Field(pattern=_ID)]
    metric: Annotated[str, Field(pattern=_METRIC)]
    value: bool | float
    period: Annotated[str, Field(max_length=16)]
    observed_at: datetime
    source: Annotated[str, Field(min_length=1, max_length=128)]
    key: Annotated[str, Field(min_length=1, max_length=256)] = ""

    @field_validator("value", mode="before")
    @classmethod
    def _finite(cls, value: object) -> object:
        if isinstance(value, bool) or value is None:
            if value is None:
                raise ValueError("value is missing (null); send no observation instead")
            return value
        if isinstance(value, (int, float)):
            try:
                number = float(value)
            except OverflowError:
                raise ValueError("value is too large for a number") from None
            if not math.isfinite(number):
                raise ValueError(f"value must be a finite number, got {value!r}")
            return number
        raise ValueError(f"value must be a number or a boolean, got {type(value).__name__}")

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        period_kind(value)
        return value

    @field_validator("observed_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return _plausible(value)

    @model_validator(mode="after")
    def _default_key(self) -> Observation:
        if not self.key:
            key = f"{self.source}|{self.metric}|{self.entity_id}|{self.period}"
            object.__setattr__(self, "key", key)
        return self


class _Event(_Record):
    v: Literal[1] = 1
    occurred_at: datetime
    source: Annotated[str, Field(min_length=1, max_length=128)]
    key: Annotated[str, Field(min_length=1, max_length=256)]

    @field_validator("occurred_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return _plausible(value)

    @property
    def entity_id(self) -> str:  # the partitioning key
        raise NotImplementedError


class AttendanceEvent(_Event):
    """Attendance of one student in one course: a single check-in (scheduled=1) or a tally of a
    week's sessions. Aggregation sums ``attended`` over ``scheduled``."""

    kind: Literal["attendance"] = "attendance"
    student_id: Annotated[str, Field(pattern=_ID)]
    course_id: Annotated[str, Field(pattern=_ID)]
    week: Annotated[str, Field(pattern=r"^\d{4}-W\d{2}$")]
    scheduled: Annotated[int, Field(ge=1, le=100)]
    attended: Annotated[int, Field(ge=0, le=100)]
    excused: Annotated[int, Field(ge=0, le=100)] = 0

    @model_validator(mode="after")
    def _counts(self) -> AttendanceEvent:
        if self.attended + self.excused > self.scheduled:
            raise ValueError("attended + excused exceeds scheduled sessions")
        return self

    @property
    def entity_id(self) -> str:
        return self.student_id


class GradeEvent(_Event):
    """A final grade of one student in one course for a term (百分制)."""

    kind: Literal["grade"] = "grade"
    student_id: Annotated[str, Field(pattern=_ID)]
    course_id: Annotated[str, Field(pattern=_ID)]
    term: Annotated[str, Field(pattern=r"^\d{4}-\d{4}-[12]$")]
    score: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
    credits: Annotated[float, Field(gt=0, le=20, allow_inf_nan=False)]

    @property
    def entity_id(self) -> str:
        return self.student_id


FinanceCategory = Literal[
    "public_funds",  # 年度公用经费
    "teacher_training",  # 教师培训经费
    "teaching",  # 教学经费（日常教学、实践教学等）
    "tuition",  # 学费收入
    "appropriation",  # 经常性财政拨款
]


class FinanceEvent(_Event):
    """One line of a finance (财务) export, mapped to a category the indicators use (元)."""

    kind: Literal["finance"] = "finance"
    school_id: Annotated[str, Field(pattern=_ID)]
    year: Annotated[str, Field(pattern=r"^\d{4}$")]
    category: FinanceCategory
    item: Annotated[str, Field(min_length=1, max_length=128)]  # the source 科目名称, kept for audit
    budget: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    actual: Annotated[float, Field(ge=0, allow_inf_nan=False)]

    @property
    def entity_id(self) -> str:
        return self.school_id


Event = Annotated[AttendanceEvent | GradeEvent | FinanceEvent, Field(discriminator="kind")]


class DeadLetter(_Record):
    """A record that could not be accepted: the reason, a masked copy of the record (as text) and
    where it came from. Dead letters go to ``zg.dlq``; the stream goes on.

    Personal data is masked here, whoever builds the letter: ``reason`` by pattern, ``raw`` field
    by field and by pattern (``privacy.mask_payload``). The original bytes are kept only where
    ``ZHENGAI_DEAD_LETTER_RAW=1`` is configured (``privacy.dead_letter_raw_kept``)."""

    v: Literal[1] = 1
    source: str
    reason: str
    raw: str
    at: datetime

    @field_validator("reason")
    @classmethod
    def _masked_reason(cls, value: str) -> str:
        return mask_text(value)

    @field_validator("raw")
    @classmethod
    def _bounded(cls, value: str) -> str:
        # Keep dead letters small enough for a Kafka message; the cut says that it was cut.
        return dead_letter_text(value, 64 * 1024)

    @field_validator("source", "reason")
    @classmethod
    def _short(cls, value: str, info: ValidationInfo) -> str:
        # Cut, never refused: a dead letter must always be constructible.
        limit = 256 if info.field_name == "source" else 2000
        return value if len(value) <= limit else value[:limit] + "…"


class Thresholds(_Record):
    """The thresholds that applied to one evaluation, after overrides.

    For ``range`` rules each value is a ``[low, high]`` pair; for ``boolean`` rules only
    ``expected`` matters. ``inclusive`` says whether a value exactly on a threshold meets it.
    """

    direction: Direction
    target: float | tuple[float, float] | None = None
    standard: float | tuple[float, float] | None = None
    warning: float | tuple[float, float] | None = None
    expected: bool | None = None
    inclusive: dict[str, bool] = Field(default_factory=lambda: {"target": True, "standard": True, "warning": True})
    applied_from: tuple[str, ...] = ()  # e.g. ("school", "department:D01") — the override chain
    floored: bool = False  # an override below the floor was raised to the school's standard


class Verdict(_Record):
    """The result of evaluating one rule on one observation."""

    v: Literal[1] = 1
    rule_id: Annotated[str, Field(max_length=80)]
    rule_version: Annotated[str, Field(max_length=64)]
    level: Level
    entity_id: Annotated[str, Field(max_length=64)]
    metric: Annotated[str, Field(max_length=80)]
    period: Annotated[str, Field(max_length=16)]
    value: bool | float | None
    thresholds: Thresholds
    band: Band
    reason: Annotated[str, Field(max_length=2000)]
    observed_at: datetime | None
    evaluated_at: datetime
    observation_key: Annotated[str, Field(max_length=512)]

    @field_validator("observed_at", "evaluated_at")
    @classmethod
    def _tz(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        period_kind(value)  # consumers sort verdicts by period: an unknown form must not get that far
        return value

    @property
    def key(self) -> str:
        """Idempotency key: re-evaluating the same observation (same key, same value) under the
        same rule version yields the same key; a corrected value under the same observation key
        is a new verdict."""
        return f"{self.rule_id}@{self.rule_version}|{self.observation_key}|{self.value!r}"


_NAME = r"^[a-z_]{1,24}$"  # a lifecycle TransitionKind or Status value (zhengai.warnings.lifecycle)


class WarningTransition(_Record):
    """One committed transition of a warning (opened, severity_up, recovered …), published on
    ``zg.warnings`` for other systems (a campus portal, the DingTalk app). Keyed by entity.

    Delivery is at least once: a crash between the store's commit and the send repeats a
    transition, so consumers dedupe by ``(warning_id, kind, at)``. No responsible person and no
    contact data travel here; ``reason`` is masked of ID-card, mobile and student numbers.
    """

    v: Literal[1] = 1
    warning_id: Annotated[int, Field(ge=1)]
    rule_id: Annotated[str, Field(max_length=80)]
    entity_id: Annotated[str, Field(pattern=_ID)]
    level: Level
    episode: Annotated[int, Field(ge=1)]
    kind: Annotated[str, Field(pattern=_NAME)]
    from_status: Annotated[str | None, Field(pattern=_NAME)] = None
    to_status: Annotated[str, Field(pattern=_NAME)]
    from_band: Band | None = None
    to_band: Band
    period: Annotated[str, Field(max_length=16)]
    value: bool | float | None = None
    reason: Annotated[str, Field(max_length=2000)]
    actor: Annotated[str | None, Field(max_length=64)] = None
    at: datetime

    @field_validator("reason")
    @classmethod
    def _masked(cls, value: str) -> str:
        return mask_text(value)

    @field_validator("at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return _utc(value)
