"""人事 (HR): the school with its offices, and every staff member.

Staff are the contact book (Person with DingTalk id, mobile, email) that routing merges into the
directory by id; teachers are also directory entities with the attributes the school- and
major-level indicators need, plus their training days for the year.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr, ValidationError

from zhengai.ingest.records import Entity, EntityKind, Level, Observation, Person

from .base import Connector, Record, Reject, Row, Stream, validation_reason
from .errors import MappingError
from .http import ApiClient
from .retry import RetryPolicy
from .values import field, normalize_text, parse_bool, parse_int, parse_number, parse_timestamp

__all__ = ["RenshiConnector"]

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
    return Person(id=person_id, name=name, dingtalk_user_id=data.get("dingtalk_user_id") or None,
                  mobile=mobile or None, email=data.get("email") or None)


class _RenshiStream(Stream):
    connector: ClassVar[str] = "renshi"
    primary_key: ClassVar[tuple[str, ...]] = ("id",)

    def __init__(self, api: ApiClient, year: str) -> None:
        self.api = api
        self.year = year


class School(_RenshiStream):
    """``/api/school``: one row; the school entity carries the offices and the quality office."""

    name = "school"

    def read(self, cursor: str | None) -> Iterator[Row]:
        yield self.api.get_json("/api/school")

    def map(self, row: Row) -> list[Record]:
        responsible: dict[str, Person] = {}
        offices = row.get("offices") or []
        if not isinstance(offices, list):
            raise MappingError("offices: is not a list")
        for i, office in enumerate(offices):
            office_name = normalize_text(office.get("name")) if isinstance(office, Mapping) else ""
            if not office_name:
                raise MappingError(f"offices[{i}].name: is missing")
            responsible[f"office:{office_name}"] = person(office.get("head"),
                                                          f"offices[{i}].head")
        if row.get("quality_office") is not None:
            responsible["quality_office"] = person(row["quality_office"], "quality_office")
        # The entity names who is responsible (id, name); contacts travel as Person records.
        school = Entity(id=str(field(row, "id")), kind=EntityKind.school,
                        name=normalize_text(field(row, "name")),
                        responsible={k: Person(id=p.id, name=p.name)
                                     for k, p in responsible.items()})
        heads = {p.id: p for p in responsible.values()}
        return [school, *heads.values()]


class Staff(_RenshiStream):
    """``/api/hr/staff``: page pagination; everyone → Person, teachers → Entity + training."""

    name = "staff"
    page_size: ClassVar[int] = 100

    def read(self, cursor: str | None) -> Iterator[Row]:
        return self.api.pages("/api/hr/staff", page_size=self.page_size)

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
        teacher = Entity(
            id=contact.id, kind=EntityKind.teacher, name=contact.name,
            parent_id=field(row, "department_id"),
            responsible={"teacher": Person(id=contact.id, name=contact.name)},
            attributes={
                "title": normalize_text(row.get("title")) or None,
                "degree": normalize_text(row.get("degree")) or None,
                "dual_qualified": field(row, "dual_qualified", parse_bool, required=False),
                "fulltime": field(row, "fulltime", parse_bool, required=False),
                "birth_year": field(row, "birth_year", parse_int, required=False),
                "major_id": row.get("major_id") or None,
            },
        )
        records.append(teacher)
        days = field(row, "training_days", parse_number, required=False)
        if days is not None:  # unknown is not zero: send no observation
            if days < 0:
                raise MappingError(f"training_days: must not be negative, got {days:g}")
            records.append(Observation(
                level=Level.teacher, entity_id=teacher.id, metric="teacher.training_days",
                value=days, period=self.year, observed_at=updated, source=self.source))
        return records


class RenshiConnector(Connector):
    """人事 JSON API (``/api/login``, ``/api/school``, ``/api/hr/staff``)."""

    name: ClassVar[str] = "renshi"

    def __init__(self, base_url: str, username: str, password: str | SecretStr, *,
                 client: httpx.Client | None = None, year: str = "2026",
                 retry: RetryPolicy | None = None, timeout: float = 10.0) -> None:
        self.api = ApiClient(base_url, username, password, client=client, retry=retry,
                             timeout=timeout, name="renshi")
        self.year = year
        self.streams = (School(self.api, year), Staff(self.api, year))

    def close(self) -> None:
        self.api.close()

    def __repr__(self) -> str:
        return f"RenshiConnector({self.api!r}, year={self.year!r})"
