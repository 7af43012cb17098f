"""人事 (HR): the school with its offices, and every staff member.

Staff are the contact book (Person with DingTalk id, mobile, email) that routing merges into the
directory by id; teachers are also directory entities with the attributes the school- and
major-level indicators need (title, degree, 双师 status …), plus their yearly observations:
training days (or training hours ÷ ``hours_per_training_day``) and enterprise practice in months.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar

import httpx
from pydantic import Field, SecretStr, ValidationError

from zhengai.ingest.records import Entity, EntityKind, Level, Observation, Person

from .base import Connector, Record, Reject, Row, Stream, validation_reason
from .config import (
    ConnectorConfig,
    Endpoint,
    HttpSourceConfig,
    Model,
    PagePaginationConfig,
)
from .errors import MappingError
from .http import ApiClient, PagePagination, Pagination
from .retry import RetryPolicy
from .values import field, normalize_text, parse_bool, parse_int, parse_number, parse_timestamp

__all__ = ["RenshiConnector", "RenshiOptions"]

# The rule teacher.enterprise_practice counts months over a rolling five years (days ÷ 30).
DAYS_PER_MONTH = 30
PRACTICE_WINDOW_YEARS = 5


class RenshiEndpoints(Model):
    school: Endpoint = Endpoint(path="/api/school")
    staff: Endpoint = Endpoint(path="/api/hr/staff", pagination=PagePaginationConfig(kind="page", size=100))


class RenshiOptions(Model):
    """``options:`` of a 人事 configuration."""

    year: Annotated[str, Field(pattern=r"^\d{4}$")]
    hours_per_training_day: Annotated[float, Field(gt=0, le=24)] = 8.0
    endpoints: RenshiEndpoints = RenshiEndpoints()


_MOBILE = re.compile(r"^\+?\d{6,15}$")


def person(data: Any, where: str) -> Person:
    """A Person with contacts from an API object; a mobile that is not a phone number after
    removing separators is a MappingError (the value itself stays out of the reason)."""
    if not isinstance(data, Mapping):
        raise MappingError(f"{where}: is not an object")
    mobile = data.get("mobile")
    if mobile not in (None, ""):
        mobile = re.sub(r"[\s\-()]", "", normalize_text(mobile))
        if not _MOBILE.match(mobile):
            raise MappingError(f"{where}.mobile: is not a phone number (6–15 digits)")
    try:
        person_id, name = str(field(data, "id")), normalize_text(field(data, "name"))
    except MappingError as exc:
        raise MappingError(f"{where}.{exc}") from None
    return Person(
        id=person_id,
        name=name,
        dingtalk_user_id=data.get("dingtalk_user_id") or None,
        mobile=mobile or None,
        email=data.get("email") or None,
    )


class _RenshiStream(Stream):
    connector: ClassVar[str] = "renshi"
    primary_key: ClassVar[tuple[str, ...]] = ("id",)

    def __init__(self, api: ApiClient, year: str, path: str) -> None:
        self.api = api
        self.year = year
        self.path = path


class School(_RenshiStream):
    """``/api/school``: one row; the school entity carries the offices and the quality office."""

    name = "school"

    def read(self, cursor: str | None) -> Iterator[Row]:
        yield self.api.get_json(self.path)

    def map(self, row: Row) -> list[Record]:
        responsible: dict[str, Person] = {}
        offices = row.get("offices") or []
        if not isinstance(offices, list):
            raise MappingError("offices: is not a list")
        for i, office in enumerate(offices):
            office_name = normalize_text(office.get("name")) if isinstance(office, Mapping) else ""
            if not office_name:
                raise MappingError(f"offices[{i}].name: is missing")
            responsible[f"office:{office_name}"] = person(office.get("head"), f"offices[{i}].head")
        if row.get("quality_office") is not None:
            responsible["quality_office"] = person(row["quality_office"], "quality_office")
        # The entity names who is responsible (id, name); contacts travel as Person records.
        school = Entity(
            id=str(field(row, "id")),
            kind=EntityKind.school,
            name=normalize_text(field(row, "name")),
            responsible={k: Person(id=p.id, name=p.name) for k, p in responsible.items()},
        )
        heads = {p.id: p for p in responsible.values()}
        return [school, *heads.values()]


class Staff(_RenshiStream):
    """``/api/hr/staff``: paginated; everyone → Person, teachers → Entity + observations."""

    name = "staff"

    def __init__(
        self,
        api: ApiClient,
        year: str,
        path: str = "/api/hr/staff",
        *,
        pagination: Pagination | None = None,
        hours_per_training_day: float = 8.0,
    ) -> None:
        super().__init__(api, year, path)
        self.pagination = pagination or PagePagination(size=100)
        self.page_size: int = int(
            getattr(self.pagination, "size", None) or getattr(self.pagination, "limit", None) or 100
        )
        self.hours_per_training_day = hours_per_training_day

    def read(self, cursor: str | None) -> Iterator[Row]:
        return self.api.paginate(self.path, self.pagination.with_size(self.page_size))

    def map(self, row: Row) -> list[Record | Reject]:
        records: list[Record | Reject] = []
        try:
            contact = person(row, "staff")
        except (MappingError, ValidationError) as exc:
            # A broken contact field must not drop the teacher from the directory: keep the
            # person without contacts and dead-letter the contact problem on its own.
            why = validation_reason(exc) if isinstance(exc, ValidationError) else str(exc)
            records.append(Reject(f"{why}; person kept without contacts"))
            contact = Person(id=str(field(row, "id")), name=normalize_text(field(row, "name")))
        records.append(contact)
        if row.get("type") != "teacher":
            return records
        updated = field(row, "updated_at", parse_timestamp)
        attributes: dict[str, Any] = {
            "title": normalize_text(row.get("title")) or None,
            "degree": normalize_text(row.get("degree")) or None,
            "dual_qualified": field(row, "dual_qualified", parse_bool, required=False),
            "fulltime": field(row, "fulltime", parse_bool, required=False),
            "birth_year": field(row, "birth_year", parse_int, required=False),
            "major_id": row.get("major_id") or None,
        }
        # Fields not every HR system has: an attribute only where the source gives one.
        for key, parse in (
            ("training_hours", parse_number),
            ("hire_year", parse_int),
            ("enterprise_practice_days", parse_number),
        ):
            value = field(row, key, parse, required=False)
            if value is not None:
                if value < 0:
                    raise MappingError(f"{key}: must not be negative, got {value:g}")
                attributes[key] = value
        teacher = Entity(
            id=contact.id,
            kind=EntityKind.teacher,
            name=contact.name,
            parent_id=field(row, "department_id"),
            responsible={"teacher": Person(id=contact.id, name=contact.name)},
            attributes=attributes,
        )
        records.append(teacher)

        def observation(metric: str, value: float) -> Observation:
            return Observation(
                level=Level.teacher,
                entity_id=teacher.id,
                metric=metric,
                value=round(value, 4),
                period=self.year,
                observed_at=updated,
                source=self.source,
            )

        days = field(row, "training_days", parse_number, required=False)
        if days is None and "training_hours" in attributes:
            days = attributes["training_hours"] / self.hours_per_training_day
        if days is not None:  # unknown is not zero: send no observation
            if days < 0:
                raise MappingError(f"training_days: must not be negative, got {days:g}")
            records.append(observation("teacher.training_days", days))
        practice = attributes.get("enterprise_practice_days")
        if practice is not None:
            try:
                months = self.practice_months(practice, attributes)
            except MappingError as exc:  # the teacher stays in the directory
                records.append(Reject(str(exc)))
            else:
                records.append(observation("teacher.enterprise_practice", months))
        return records

    def practice_months(self, days: float, attributes: Mapping[str, Any]) -> float:
        """Months of enterprise practice over the last five years (days ÷ 30); a teacher hired
        less than five years ago is prorated: months × 5 ÷ years since hiring (rule
        teacher.enterprise_practice)."""
        months = days / DAYS_PER_MONTH
        hired = attributes.get("hire_year")
        if isinstance(hired, int):
            years = int(self.year) - hired
            if years < 0:
                raise MappingError(f"hire_year: {hired} is after the year {self.year}")
            if years < PRACTICE_WINDOW_YEARS:
                months = months * PRACTICE_WINDOW_YEARS / max(years, 1)
        return months


class RenshiConnector(Connector):
    """人事 JSON API (``/api/login``, ``/api/school``, ``/api/hr/staff``). ``api`` replaces
    base_url/username/password with a configured client (other auth kinds, see config.py)."""

    name: ClassVar[str] = "renshi"
    source_kind: ClassVar[str] = "http"
    options_model: ClassVar[type[Model]] = RenshiOptions
    stream_names: ClassVar[tuple[str, ...]] = ("school", "staff")

    def __init__(
        self,
        base_url: str | None,
        username: str | None = None,
        password: str | SecretStr | None = None,
        *,
        client: httpx.Client | None = None,
        year: str = "2026",
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        api: ApiClient | None = None,
        school_path: str = "/api/school",
        staff_path: str = "/api/hr/staff",
        staff_pagination: Pagination | None = None,
        hours_per_training_day: float = 8.0,
    ) -> None:
        self.api = api or ApiClient(
            base_url or "", username, password, client=client, retry=retry, timeout=timeout, name="renshi"
        )
        self.year = year
        self.streams = (
            School(self.api, year, school_path),
            Staff(
                self.api, year, staff_path, pagination=staff_pagination, hours_per_training_day=hours_per_training_day
            ),
        )

    @classmethod
    def from_config(cls, config: ConnectorConfig) -> RenshiConnector:
        assert isinstance(config.source, HttpSourceConfig)
        o: RenshiOptions = config.options
        staff = o.endpoints.staff
        return cls(
            None,
            api=config.source.build(cls.name),
            year=o.year,
            school_path=o.endpoints.school.path,
            staff_path=staff.path,
            staff_pagination=staff.pagination.build() if staff.pagination else None,
            hours_per_training_day=o.hours_per_training_day,
        )

    def close(self) -> None:
        self.api.close()

    def __repr__(self) -> str:
        return f"RenshiConnector({self.api!r}, year={self.year!r})"
