"""评教 (student evaluation of teaching): one term's section results, cursor-paginated.

Each section gives the course's evaluation score and its participation (答卷率). A course taught
in several sections (several teachers) gets one observation per section; the keys carry the
teacher so that sections never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import httpx
from pydantic import SecretStr

from zhengai.ingest.records import Level, Observation

from .base import Connector, Record, Row, Stream
from .errors import MappingError
from .http import ApiClient
from .retry import RetryPolicy
from .values import field, normalize_text, parse_int, parse_number, parse_timestamp

__all__ = ["PingjiaoConnector"]


class Sections(Stream):
    connector: ClassVar[str] = "pingjiao"
    name = "sections"
    primary_key: ClassVar[tuple[str, ...]] = ("course_id", "teacher_id", "term")
    limit: ClassVar[int] = 200

    def __init__(self, api: ApiClient, term: str) -> None:
        self.api = api
        self.term = term

    def read(self, cursor: str | None) -> Iterator[Row]:
        # The API cursor is a page pointer for this read, not a replication key: each run reads
        # the whole term (it is small, and scores are revised until the term closes).
        return self.api.cursor_pages("/api/eval/sections", {"term": self.term}, limit=self.limit)

    def map(self, row: Row) -> list[Record]:
        term = normalize_text(field(row, "term"))
        if term != self.term:
            raise MappingError(f"term: {term!r} is not the requested term {self.term!r}")
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
            return Observation(
                level=Level.course, entity_id=course_id, metric=metric, value=value,
                period=term, observed_at=updated, source=self.source,
                key=f"{self.source}|{metric}|{course_id}|{teacher_id}|{term}",
            )

        records: list[Record] = [observation("course.evaluation_participation",
                                             round(100 * respondents / enrolled, 4))]
        if respondents > 0:  # nobody answered: there is no score, which is not a score of 0
            score = field(row, "score_avg", parse_number)
            if not 0 <= score <= 100:
                raise MappingError(f"score_avg: {score:g} is outside 0..100")
            records.insert(0, observation("course.student_evaluation_score", score))
        return records


class PingjiaoConnector(Connector):
    """评教 JSON API (``/api/login``, ``/api/eval/sections``) for one term."""

    name: ClassVar[str] = "pingjiao"

    def __init__(self, base_url: str, username: str, password: str | SecretStr, *, term: str,
                 client: httpx.Client | None = None, retry: RetryPolicy | None = None,
                 timeout: float = 10.0) -> None:
        self.api = ApiClient(base_url, username, password, client=client, retry=retry,
                             timeout=timeout, name="pingjiao")
        self.term = term
        self.streams = (Sections(self.api, term),)

    def close(self) -> None:
        self.api.close()

    def __repr__(self) -> str:
        return f"PingjiaoConnector({self.api!r}, term={self.term!r})"
