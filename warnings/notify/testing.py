"""Fakes shipped with the code, for tests of the notification pipeline and its channels.

- ``FakeClock``: a controllable ``now``, shared by the pipeline and the fake servers, so a test
  fast-forwards minutes or days without sleeping.
- ``DingTalkRobotServer``: a real HTTP server on 127.0.0.1 that implements the custom robot
  contract — access token, 加签 signature and timestamp freshness (errcode 310000), 20 messages in
  any 60 seconds then errcode 130101 and a ten-minute throttle, message shape (40035) — records
  what it accepted, and can be taken down (HTTP 503 or a dropped connection) and brought back.
- ``WeComRobotServer``: the same for the WeCom (企业微信) group robot — webhook key (93000),
  markdown of at most 4096 bytes (40058), 20 messages a minute then 45009.
- ``sample_college``: a small directory (school → department → major → courses, a class with
  students) with contacts, and a handful of rules, for tests that need warnings to notify;
  ``verdict`` makes a verdict of one of its rules.
- ``NotifyWorld``: that college in a SQLite warning store behind a ``WarningService``, with a
  ``FakeClock`` — ``warn(...)`` opens warnings, ``pipeline(...)`` builds a pipeline over it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Band, Entity, EntityKind, Level, Person, Thresholds, Verdict
from zhengai.rules.loader import RuleSet
from zhengai.rules.model import Rule
from zhengai.warnings.notify.config import NotifyConfig, RoutePolicy
from zhengai.warnings.notify.pipeline import Channel, NotifyPipeline
from zhengai.warnings.routing import EscalationChains
from zhengai.warnings.service import WarningService
from zhengai.warnings.store import AppliedTransition, WarningStore

__all__ = [
    "FakeClock",
    "DingTalkRobotServer",
    "WeComRobotServer",
    "Received",
    "SampleCollege",
    "sample_college",
    "verdict",
    "NotifyWorld",
]


class FakeClock:
    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("a FakeClock needs an aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    now = __call__

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        with self._lock:
            self._now += delta if delta is not None else timedelta(**kwargs)
            return self._now

    def set(self, at: datetime) -> None:
        with self._lock:
            self._now = at


@dataclass(frozen=True)
class Received:
    at: datetime
    payload: dict[str, Any]

    @property
    def text(self) -> str:
        p = self.payload
        part = p.get("markdown") or p.get("actionCard") or p.get("text") or {}
        return str(part.get("text") or part.get("content") or "")

    @property
    def title(self) -> str:
        p = self.payload
        part = p.get("markdown") or p.get("actionCard") or {}
        return str(part.get("title", ""))


_MSGTYPES = {"text", "link", "markdown", "actionCard", "feedCard"}


class DingTalkRobotServer:
    """``with DingTalkRobotServer(token, secret, clock=clock) as robot:`` then point the sink's
    ``base_url`` at ``robot.base_url``."""

    def __init__(
        self,
        access_token: str,
        secret: str | None,
        *,
        clock: Callable[[], datetime] | None = None,
        limit: int = 20,
        window: timedelta = timedelta(minutes=1),
        throttle: timedelta = timedelta(minutes=10),
        max_skew: timedelta = timedelta(hours=1),
    ):
        self.access_token, self.secret = access_token, secret
        self.clock = clock or (lambda: datetime.now(UTC))
        self.limit, self.window, self.throttle, self.max_skew = limit, window, throttle, max_skew
        self.received: list[Received] = []
        self.answers: list[tuple[datetime, int]] = []  # every errcode answered, with the time
        self.down: Literal["503", "reset"] | None = None
        self.refused_while_down = 0
        self._accepted_at: list[datetime] = []
        self._throttled_until: datetime | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> DingTalkRobotServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's naming
                server._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-dingtalk", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first (use it as a context manager)"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- what arrived ---------------------------------------------------------------------------
    @property
    def rate_limited(self) -> int:
        return sum(1 for _, code in self.answers if code == 130101)

    def max_in_any_window(self) -> int:
        """The most messages accepted within any ``window`` (sliding), by the server's clock."""
        times = sorted(r.at for r in self.received)
        best = 0
        for i, t in enumerate(times):
            best = max(best, bisect_right(times, t + self.window - timedelta(microseconds=1)) - i)
        return best

    def per_minute(self) -> dict[str, int]:
        """Accepted messages per calendar minute (UTC), by the server's clock."""
        out: dict[str, int] = {}
        for r in self.received:
            key = f"{r.at:%Y-%m-%d %H:%M}"
            out[key] = out.get(key, 0) + 1
        return out

    # --- the contract -------------------------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, code: int, msg: str, now: datetime) -> None:
        self.answers.append((now, code))
        body = json.dumps({"errcode": code, "errmsg": msg}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _expected_sign(self, timestamp: str) -> str:
        assert self.secret is not None
        mac = hmac.new(self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256).digest()
        return base64.b64encode(mac).decode()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        with self._lock:
            now = self.clock()
            if self.down == "503":
                self.refused_while_down += 1
                h.send_response(503)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            if self.down == "reset":
                self.refused_while_down += 1
                h.close_connection = True
                return
            url = urlsplit(h.path)
            query = parse_qs(url.query)  # decodes exactly once, as DingTalk does
            if url.path != "/robot/send":
                h.send_response(404)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            if query.get("access_token", [""])[0] != self.access_token:
                return self._answer(h, 300001, "token is not exist", now)
            if self.secret is not None:
                ts, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
                if not ts.isdigit() or abs(now.timestamp() * 1000 - int(ts)) > self.max_skew.total_seconds() * 1000:
                    return self._answer(h, 310000, "invalid timestamp", now)
                if not hmac.compare_digest(sign, self._expected_sign(ts)):
                    return self._answer(h, 310000, "sign not match", now)
            try:
                payload = json.loads(raw.decode("utf-8"))
                kind = payload["msgtype"]
                part = payload[kind]
                ok = (
                    kind in _MSGTYPES
                    and (kind != "markdown" or (part.get("title") and part.get("text")))
                    and (
                        kind != "actionCard"
                        or (part.get("title") and part.get("text") and (part.get("singleURL") or part.get("btns")))
                    )
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                ok, payload = False, {}
            if not ok:
                return self._answer(h, 40035, "缺少参数 json", now)
            if self._throttled_until is not None and now < self._throttled_until:
                return self._answer(h, 130101, "send too fast, exceed 20 times per minute", now)
            recent = [t for t in self._accepted_at if t > now - self.window]
            if len(recent) >= self.limit:
                self._throttled_until = now + self.throttle
                return self._answer(h, 130101, "send too fast, exceed 20 times per minute", now)
            self._accepted_at.append(now)
            self.received.append(Received(now, payload))
            return self._answer(h, 0, "ok", now)


class WeComRobotServer:
    """``with WeComRobotServer(key, clock=clock) as robot:`` then point the sink's ``base_url`` at
    ``robot.base_url``; ``received`` holds what it accepted."""

    def __init__(self, key: str, *, clock: Callable[[], datetime] | None = None, limit: int = 20):
        self.key, self.limit = key, limit
        self.clock = clock or (lambda: datetime.now(UTC))
        self.received: list[Received] = []
        self.answers: list[tuple[datetime, int]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> WeComRobotServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's naming
                server._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-wecom", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first (use it as a context manager)"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self._lock:
            now = self.clock()
            url = urlsplit(h.path)
            code, msg, payload = 0, "ok", {}
            if url.path != "/cgi-bin/webhook/send" or parse_qs(url.query).get("key", [""])[0] != self.key:
                code, msg = 93000, "invalid webhook url"
            else:
                try:
                    payload = json.loads(raw.decode("utf-8"))
                    content = (
                        payload["markdown"]["content"]
                        if payload["msgtype"] == "markdown"
                        else payload["text"]["content"]
                    )
                    if len(content.encode("utf-8")) > 4096:
                        code, msg = 40058, "markdown.content exceed max length 4096"
                except (ValueError, KeyError, TypeError):
                    code, msg = 40008, "invalid message type"
            if (
                code == 0
                and len([t for t, c in self.answers if c == 0 and t > now - timedelta(minutes=1)]) >= self.limit
            ):
                code, msg = 45009, "api freq out of limit"
            self.answers.append((now, code))
            if code == 0:
                self.received.append(Received(now, payload))
            body = json.dumps({"errcode": code, "errmsg": msg}).encode()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)


# --- a small college ----------------------------------------------------------------------------


def _person(pid: str, name: str, n: int) -> Person:
    return Person(
        id=pid,
        name=name,
        dingtalk_user_id=f"dt{pid.lower()}",
        mobile=f"139{n:08d}",
        email=f"{pid.lower()}@example.edu.cn",
    )


_RULES = [
    dict(
        id="course.attendance_rate",
        name="学生到课率",
        metric="course.attendance_rate",
        level="course",
        unit="%",
        direction="higher_is_better",
        target=98,
        standard=90,
        warning=95,
        cycle="week",
        responsible="course_teacher",
    ),
    dict(
        id="student.attendance_rate",
        name="个人到课率",
        metric="student.attendance_rate",
        level="student",
        unit="%",
        direction="higher_is_better",
        target=98,
        standard=85,
        warning=90,
        cycle="week",
        responsible="counsellor",
    ),
    dict(
        id="major.enrollment_fill_rate",
        name="专业招生计划完成率",
        metric="major.enrollment_fill_rate",
        level="major",
        unit="%",
        direction="higher_is_better",
        target=100,
        standard=90,
        warning=95,
        cycle="year",
        responsible="major_leader",
    ),
    dict(
        id="school.attendance_rate",
        name="全校学生到课率",
        metric="school.attendance_rate",
        level="school",
        unit="%",
        direction="higher_is_better",
        target=98,
        standard=90,
        warning=95,
        cycle="week",
        responsible="office",
        office="教务处",
    ),
    dict(
        id="school.enrollment_plan_completion",
        name="招生计划完成率",
        metric="school.enrollment_plan_completion",
        level="school",
        unit="%",
        direction="higher_is_better",
        target=100,
        standard=90,
        warning=95,
        cycle="year",
        responsible="office",
        office="招生就业处",
    ),
]
# Notification tests look at one good period recovering a warning; the shipped rulebook's cycle
# defaults (a weekly metric holds four weeks) are tested in test_lifecycle.
for _r in _RULES:
    _r.setdefault("lifecycle", {"recovery_periods": 1})
_VALUES = {Band.excellent: 99.0, Band.normal: 96.0, Band.yellow: 92.0, Band.red: 80.0}


@dataclass
class SampleCollege:
    directory: Directory
    rules: RuleSet
    courses: list[str]
    teachers: list[str]
    students: list[str]
    records: list[Entity | Person]  # for WarningStore.upsert_directory


def sample_college(courses: int = 10, teachers: int | None = None, students: int = 5) -> SampleCollege:
    """School SCH → department D01 → major M01 → courses C001… (teacher T001…, owner 课程负责人
    P-CO), class K01 (counsellor P-CS) with students 2401000001…; the school names the quality
    office P-QO and offices 教务处 / 招生就业处. Everyone has a DingTalk id, a mobile and an email."""
    teachers = teachers or courses
    qo, dean, leader = _person("P-QO", "王质量", 1), _person("P-DEAN", "赵院长", 2), _person("P-ML", "钱专业", 3)
    owner, counsellor = _person("P-CO", "孙课程", 4), _person("P-CS", "李辅导", 5)
    jiaowu, zhaosheng = _person("P-JW", "周教务", 6), _person("P-ZS", "吴招生", 7)
    tids = [f"T{i:03d}" for i in range(1, teachers + 1)]
    staff = {t: _person(t, f"教师{t[1:]}", 100 + i) for i, t in enumerate(tids)}
    records: list[Entity | Person] = [
        Entity(
            id="SCH",
            kind=EntityKind.school,
            name="示范职业技术学院",
            responsible={"quality_office": qo, "office:教务处": jiaowu, "office:招生就业处": zhaosheng},
        ),
        Entity(id="D01", kind=EntityKind.department, name="智能制造学院", parent_id="SCH", responsible={"dean": dean}),
        Entity(id="M01", kind=EntityKind.major, name="数控技术", parent_id="D01", responsible={"major_leader": leader}),
        Entity(
            id="K01", kind=EntityKind.class_, name="数控2401班", parent_id="M01", responsible={"counsellor": counsellor}
        ),
    ]
    cids = [f"C{i:03d}" for i in range(1, courses + 1)]
    for i, cid in enumerate(cids):
        records.append(
            Entity(
                id=cid,
                kind=EntityKind.course,
                name=f"课程{cid[1:]}",
                parent_id="M01",
                responsible={"course_teacher": staff[tids[i % teachers]], "course_owner": owner},
            )
        )
    sids = [f"2401{i:06d}" for i in range(1, students + 1)]
    for i, sid in enumerate(sids):
        records.append(Entity(id=sid, kind=EntityKind.student, name=f"学生{i + 1}", parent_id="K01"))
    rules = {str(r["id"]): Rule(**r) for r in _RULES}
    by_metric: dict[str, tuple[Rule, ...]] = {}
    for r in rules.values():
        by_metric[r.metric] = by_metric.get(r.metric, ()) + (r,)
    people = [qo, dean, leader, owner, counsellor, jiaowu, zhaosheng, *staff.values()]
    return SampleCollege(
        Directory(records),
        RuleSet(rules=rules, overrides={}, version="test", by_metric=by_metric),
        cids,
        tids,
        sids,
        [*records, *people],
    )


def verdict(
    college: SampleCollege,
    rule_id: str,
    entity_id: str,
    band: Band,
    *,
    period: str,
    at: datetime,
    value: float | None = None,
) -> Verdict:
    rule = college.rules.rules[rule_id]
    value = _VALUES[band] if value is None else value
    return Verdict(
        rule_id=rule.id,
        rule_version=rule.version,
        level=Level(rule.level),
        entity_id=entity_id,
        metric=rule.metric,
        period=period,
        value=value,
        band=band,
        reason=f"{rule.name}为{value:g}{rule.unit}（{band.zh}）",
        thresholds=Thresholds(
            direction=rule.direction, target=rule.target, standard=rule.standard, warning=rule.warning
        ),
        observed_at=at,
        evaluated_at=at,
        observation_key=f"test|{rule.metric}|{entity_id}|{period}",
    )


class NotifyWorld:
    """A sample college in a warning store, a service writing outbox rows for ``channels``, and a
    fake clock (default start: Monday 2026-10-12 09:00 in Shanghai)."""

    def __init__(
        self,
        url: str,
        *,
        courses: int = 10,
        teachers: int | None = None,
        students: int = 5,
        channels: tuple[str, ...] = ("memory",),
        start: datetime | None = None,
        escalation: EscalationChains | None = None,
    ):
        self.college = sample_college(courses, teachers, students)
        self.store = WarningStore(url)
        self.store.create_schema()
        self.store.directory.upsert(self.college.records, self.college.directory)
        self.clock = FakeClock(start or datetime(2026, 10, 12, 1, 0, tzinfo=UTC))
        self.service = WarningService(
            self.store,
            lambda: self.college.rules,
            lambda: self.college.directory,
            channels=channels,
            escalation=escalation,
        )

    def warn(
        self,
        rule_id: str,
        entities: list[str] | str,
        band: Band,
        *,
        period: str = "2026-W41",
        at: datetime | None = None,
        value: float | None = None,
    ) -> list[AppliedTransition]:
        at = at or self.clock()
        ids = [entities] if isinstance(entities, str) else entities
        return self.service.handle(
            [verdict(self.college, rule_id, e, band, period=period, at=at, value=value) for e in ids]
        )

    def pipeline(
        self, *channels: Channel | Any, config: NotifyConfig | None = None, route: RoutePolicy | None = None
    ) -> NotifyPipeline:
        """Channels, or bare sinks (given ``route``, default ``RoutePolicy()``)."""
        built = [c if isinstance(c, Channel) else Channel(c, route or RoutePolicy()) for c in channels]
        return NotifyPipeline(
            self.store, built, config, directory=lambda: self.college.directory, rules=lambda: self.college.rules
        )

    def outbox_status(self) -> dict[str, int]:
        from sqlalchemy import func, select

        from zhengai.warnings.schema import OutboxRow

        with self.store.session() as s:
            return {
                status: n for status, n in s.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status))
            }
