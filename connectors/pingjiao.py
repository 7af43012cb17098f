"""评教 (evaluation of teaching): one term's student evaluation per course section, and the
supervisors' (督导/同行) lesson-observation ratings.

Each section gives the course's student evaluation score and its participation (答卷率). A course
taught in several sections (several teachers) gets one observation per section; the keys carry
the teacher so that sections never overwrite each other. Supervisor ratings come one per
observed lesson; they are averaged per section (course × teacher × term) into
``course.supervisor_rating``, a bad rating dead-lettered on its own. Sections that name the
teacher (``teacher_name``) also feed the directory a Person for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

import httpx
from pydantic import Field, SecretStr

from zhengai.ingest.records import Level, Observation, Person

from .base import Connector, Record, Reject, Row, Stream
from .config import (
    ConnectorConfig,
    CursorPaginationConfig,
    Endpoint,
    HttpSourceConfig,
    Model,
    OffsetPaginationConfig,
)
from .errors import MappingError
from .http import ApiClient, CursorPagination, OffsetPagination, Pagination
from .retry import RetryPolicy
from .values import field, normalize_text, parse_int, parse_number, parse_timestamp

__all__ = ["PingjiaoConnector", "PingjiaoOptions"]


class PingjiaoEndpoints(Model):
    sections: Endpoint = Endpoint(
        path="/api/eval/sections", pagination=CursorPaginationConfig(kind="cursor", limit=200)
    )
    supervisor: Endpoint = Endpoint(
        path="/api/eval/supervisor", pagination=OffsetPaginationConfig(kind="offset", limit=200)
    )


class PingjiaoOptions(Model):
    """``options:`` of a 评教 configuration."""

    term: Annotated[str, Field(pattern=r"^\d{4}-\d{4}-[12]$")]
    endpoints: PingjiaoEndpoints = PingjiaoEndpoints()


class _TermStream(Stream):
    connector: ClassVar[str] = "pingjiao"
    primary_key: ClassVar[tuple[str, ...]] = ("course_id", "teacher_id", "term")

    def __init__(self, api: ApiClient, term: str, path: str, pagination: Pagination) -> None:
        self.api, self.term, self.path = api, term, path
        self.pagination = pagination
        self.limit: int = int(getattr(pagination, "limit", None) or getattr(pagination, "size", None) or 200)

    def pages(self) -> Iterator[dict[str, Any]]:
        # The API's cursor/offset is a page pointer for this read, not a replication key: each
        # run reads the whole term (it is small, and scores are revised until the term closes).
        return self.api.paginate(self.path, self.pagination.with_size(self.limit), {"term": self.term})

    def check_term(self, row: Row) -> str:
        term = normalize_text(field(row, "term"))
        if term != self.term:
            raise MappingError(f"term: {term!r} is not the requested term {self.term!r}")
        return term

    def observation(self, metric: str, course_id: str, teacher_id: str, value: float, updated: Any) -> Observation:
        return Observation(
            level=Level.course,
            entity_id=course_id,
            metric=metric,
            value=value,
            period=self.term,
            observed_at=updated,
            source=self.source,
            key=f"{self.source}|{metric}|{course_id}|{teacher_id}|{self.term}",
        )


class Sections(_TermStream):
    name = "sections"

    def __init__(
        self, api: ApiClient, term: str, path: str = "/api/eval/sections", pagination: Pagination | None = None
    ) -> None:
        super().__init__(api, term, path, pagination or CursorPagination(limit=200))

    def read(self, cursor: str | None) -> Iterator[Row]:
        return self.pages()

    def map(self, row: Row) -> list[Record]:
        self.check_term(row)  # a row of another term is refused (the observations carry self.term)
        course_id = str(field(row, "course_id"))
        teacher_id = str(field(row, "teacher_id"))
        respondents = field(row, "respondents", parse_int)
        enrolled = field(row, "enrolled", parse_int)
        if enrolled <= 0:
            raise MappingError(f"enrolled: is {enrolled}, so participation is undefined")
        if not 0 <= respondents <= enrolled:
            raise MappingError(f"respondents: {respondents} is outside 0..enrolled ({enrolled})")
        updated = field(row, "updated_at", parse_timestamp)

        def observation(metric: str, value: float) -> Observation:
            return self.observation(metric, course_id, teacher_id, value, updated)

        records: list[Record] = [observation("course.evaluation_participation", round(100 * respondents / enrolled, 4))]
        if respondents > 0:  # nobody answered: there is no score, which is not a score of 0
            score = field(row, "score_avg", parse_number)
            if not 0 <= score <= 100:
                raise MappingError(f"score_avg: {score:g} is outside 0..100")
            records.insert(0, observation("course.student_evaluation_score", score))
        teacher_name = normalize_text(row.get("teacher_name"))
        if teacher_name:
            records.append(Person(id=teacher_id, name=teacher_name))
        return records


class Supervisor(_TermStream):
    """督导/同行听课评分: one item per observed lesson (``id``, ``course_id``, ``teacher_id``,
    ``term``, ``score``, ``observer_type``, ``observed_at``), averaged per section."""

    name = "supervisor"

    def __init__(
        self, api: ApiClient, term: str, path: str = "/api/eval/supervisor", pagination: Pagination | None = None
    ) -> None:
        super().__init__(api, term, path, pagination or OffsetPagination(limit=200))

    def read(self, cursor: str | None) -> Iterator[Row]:
        # A section's mean needs all its ratings: group the whole term, then map per section.
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for item in self.pages():
            key = (str(item.get("course_id")), str(item.get("teacher_id")), str(item.get("term")))
            groups.setdefault(key, []).append(item)
        for (course_id, teacher_id, term), ratings in groups.items():
            yield {"course_id": course_id, "teacher_id": teacher_id, "term": term, "ratings": ratings}

    def map(self, row: Row) -> list[Record | Reject]:
        self.check_term(row)
        course_id, teacher_id = str(field(row, "course_id")), str(field(row, "teacher_id"))
        scores, times, rejects = [], [], []
        for rating in row["ratings"]:
            rid = rating.get("id", "?")
            try:
                score = field(rating, "score", parse_number)
                if not 0 <= score <= 100:
                    raise MappingError(f"score: {score:g} is outside 0..100")
                at = field(rating, "observed_at", parse_timestamp)
            except MappingError as exc:
                rejects.append(Reject(f"rating {rid}: {exc}"))
                continue
            scores.append(score)
            times.append(at)
        if not scores:
            raise MappingError(f"ratings: none of {len(row['ratings'])} is usable")
        mean = round(sum(scores) / len(scores), 4)
        return [self.observation("course.supervisor_rating", course_id, teacher_id, mean, max(times)), *rejects]


class PingjiaoConnector(Connector):
    """评教 JSON API (``/api/login``, ``/api/eval/sections``, optionally
    ``/api/eval/supervisor``) for one term. ``api`` replaces base_url/username/password with a
    configured client; ``supervisor_path`` adds the supervisor stream."""

    name: ClassVar[str] = "pingjiao"
    source_kind: ClassVar[str] = "http"
    options_model: ClassVar[type[Model]] = PingjiaoOptions
    stream_names: ClassVar[tuple[str, ...]] = ("sections", "supervisor")

    def __init__(
        self,
        base_url: str | None,
        username: str | None = None,
        password: str | SecretStr | None = None,
        *,
        term: str,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        api: ApiClient | None = None,
        sections_path: str = "/api/eval/sections",
        sections_pagination: Pagination | None = None,
        supervisor_path: str | None = None,
        supervisor_pagination: Pagination | None = None,
    ) -> None:
        self.api = api or ApiClient(
            base_url or "", username, password, client=client, retry=retry, timeout=timeout, name="pingjiao"
        )
        self.term = term
        streams: list[Stream] = [Sections(self.api, term, sections_path, sections_pagination)]
        if supervisor_path is not None:
            streams.append(Supervisor(self.api, term, supervisor_path, supervisor_pagination))
        self.streams = tuple(streams)

    @classmethod
    def from_config(cls, config: ConnectorConfig) -> PingjiaoConnector:
        assert isinstance(config.source, HttpSourceConfig)
        o: PingjiaoOptions = config.options
        sec, sup = o.endpoints.sections, o.endpoints.supervisor
        return cls(
            None,
            api=config.source.build(cls.name),
            term=o.term,
            sections_path=sec.path,
            sections_pagination=sec.pagination.build() if sec.pagination else None,
            supervisor_path=sup.path,
            supervisor_pagination=sup.pagination.build() if sup.pagination else None,
        )

    def close(self) -> None:
        self.api.close()

    def __repr__(self) -> str:
        return f"PingjiaoConnector({self.api!r}, term={self.term!r})"
