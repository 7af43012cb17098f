"""人事 and 评教 against a real HTTP server on loopback that behaves badly on purpose."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from zhengai.connectors import (
    FatalSourceError,
    MemoryBookmarks,
    PingjiaoConnector,
    RenshiConnector,
    RetryPolicy,
    run_connector,
)
from zhengai.connectors.http import ApiClient
from zhengai.connectors.testing import ListDelivery
from zhengai.ingest.records import DeadLetter, Entity, EntityKind, Observation, Person

USER, PASSWORD = "zg-reader", "s3cr3t-P@ss-不可见"
TERM = "2026-2027-1"


def staff(i: int, **kw: object) -> dict:
    row = {
        "id": f"T{i:04d}",
        "name": f"教师{i}",
        "type": "teacher",
        "department_id": "D01",
        "major_id": "M0101",
        "title": "副教授",
        "degree": "硕士",
        "dual_qualified": True,
        "fulltime": True,
        "birth_year": 1980 + i,
        "training_days": 5 + i,
        "dingtalk_user_id": f"ding{i}",
        "mobile": f"1381234{i:04d}",
        "email": f"t{i}@college.edu.cn",
        "updated_at": "2026-09-01T08:00:00+08:00",
    }
    row.update(kw)
    return row


STAFF = [
    staff(1),
    staff(2, type="counsellor", title=None, training_days=None),
    staff(3, training_days=None),  # unknown training: no observation
    staff(4, department_id=None),  # bad: a teacher without a department
    staff(5, mobile="138-1234-x005"),  # bad contact: kept without it, dead letter beside
]
SCHOOL = {
    "id": "SCH",
    "name": "示范职业技术学院",
    "offices": [
        {"name": "人事处", "head": {"id": "P0001", "name": "人事处长", "mobile": "13900000001"}},
        {"name": "教务处", "head": {"id": "P0002", "name": "教务处长"}},
    ],
    "quality_office": {"id": "P0003", "name": "质量办主任", "email": "zlb@college.edu.cn"},
}


def section(i: int, **kw: object) -> dict:
    row = {
        "course_id": f"C{i:04d}",
        "teacher_id": f"T{i:04d}",
        "term": TERM,
        "score_avg": 90 - i,
        "respondents": 30 + i,
        "enrolled": 40,
        "updated_at": "2026-12-20T09:00:00+08:00",
    }
    row.update(kw)
    return row


SECTIONS = [section(i) for i in range(1, 6)] + [
    section(6, enrolled=0, respondents=0),  # bad: participation undefined
    section(7, respondents=0, score_avg=None),  # nobody answered: participation only
]


@dataclass
class Api:
    """The server's state and the failures it injects (each once)."""

    tokens: set[str] = field(default_factory=set)
    logins: int = 0
    hits: Counter = field(default_factory=Counter)
    inject: set[str] = field(default_factory=lambda: {"429", "500", "slow", "expire"})
    always_500: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def once(self, name: str) -> bool:
        with self.lock:
            if name in self.inject:
                self.inject.discard(name)
                return True
            return False


def make_handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if urlparse(self.path).path != "/api/login":
                return self.reply(404, {})
            if body != {"username": USER, "password": PASSWORD}:
                return self.reply(401, {"error": "bad credentials"})
            with api.lock:
                api.logins += 1
                token = f"tok-{api.logins}-9f8e7d"
                api.tokens.add(token)
            self.reply(200, {"token": token})

        def do_GET(self) -> None:
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            auth = self.headers.get("Authorization", "")
            if auth.removeprefix("Bearer ") not in api.tokens:
                return self.reply(401, {"error": "login required"})
            api.hits[url.path, q.get("page") or q.get("cursor")] += 1
            if api.always_500:
                return self.reply(503, {"error": "down"})
            if url.path == "/api/school":
                return self.reply(200, SCHOOL)
            if url.path == "/api/hr/staff":
                page, size = int(q["page"]), int(q["page_size"])
                if page == 2 and api.once("429"):
                    return self.reply(429, {}, {"Retry-After": "3"})
                if page == 3 and api.once("500"):
                    return self.reply(500, {"error": "boom"})
                if page == 2 and api.once("expire"):
                    api.tokens.clear()  # the token expires mid-run
                    return self.reply(401, {"error": "token expired"})
                items = STAFF[(page - 1) * size : page * size]
                return self.reply(200, {"items": items, "page": page, "page_size": size, "total": len(STAFF)})
            if url.path == "/api/eval/sections":
                if q.get("term") != TERM:
                    return self.reply(400, {"error": "term"})
                start, limit = int(q.get("cursor", "0")), int(q["limit"])
                if start > 0 and api.once("slow"):
                    time.sleep(0.6)  # longer than the client's timeout
                end = start + limit
                nxt = str(end) if end < len(SECTIONS) else None
                return self.reply(200, {"items": SECTIONS[start:end], "next_cursor": nxt})
            self.reply(404, {"error": "no such path"})

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Api]]:
    api = Api()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(api))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", api
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def retry(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(attempts=4, base_delay=0.5, jitter=0, sleep=sleeps.append)


def run(connector, **kw) -> tuple[ListDelivery, object]:  # type: ignore[no-untyped-def]
    delivery = ListDelivery()
    with connector:
        report = run_connector(connector, delivery, MemoryBookmarks(), **kw)
    return delivery, report


def test_renshi_maps_school_and_staff_through_429_500_and_expiry(
    server: tuple[str, Api], retry: RetryPolicy, sleeps: list[float]
) -> None:
    base, api = server
    renshi = RenshiConnector(base, USER, PASSWORD, retry=retry)
    renshi.streams[1].page_size = 2  # three pages
    delivery, report = run(renshi)
    assert report.ok, report.errors

    # 429 honoured its Retry-After (3 s); the 500 backed off by the policy (0.5 s, first retry);
    # the expired token cost one fresh login, not a failure.
    assert sleeps == [3.0, 0.5]
    assert api.logins == 2
    assert not api.inject - {"slow"}
    # page 2: 429, then 401 (expired), then served; page 3: 500, then served
    assert api.hits["/api/hr/staff", "2"] == 3 and api.hits["/api/hr/staff", "3"] == 2

    entities = {e.id: e for e in delivery.of(Entity)}
    school = entities["SCH"]
    assert school.kind is EntityKind.school and school.parent_id is None
    assert school.responsible["office:人事处"] == Person(id="P0001", name="人事处长")
    assert school.responsible["quality_office"].id == "P0003"
    persons = {p.id: p for p in delivery.of(Person)}
    assert persons["P0001"].mobile == "13900000001"  # contacts travel as Person records
    assert persons["P0003"].email == "zlb@college.edu.cn"

    t1 = entities["T0001"]
    assert (t1.kind, t1.parent_id) == (EntityKind.teacher, "D01")
    assert t1.responsible["teacher"].id == "T0001"
    assert t1.attributes == {
        "title": "副教授",
        "degree": "硕士",
        "dual_qualified": True,
        "fulltime": True,
        "birth_year": 1981,
        "major_id": "M0101",
    }
    assert "T0002" not in entities and persons["T0002"].dingtalk_user_id == "ding2"
    assert "T0004" not in entities  # dead-lettered: no department
    assert "T0005" in entities and persons["T0005"].mobile is None

    training = {o.entity_id: o for o in delivery.of(Observation)}
    assert set(training) == {"T0001", "T0005"}
    assert training["T0001"].metric == "teacher.training_days"
    assert (training["T0001"].value, training["T0001"].period) == (6.0, "2026")

    reasons = sorted(d.reason for d in delivery.dead_letters)
    assert reasons == [
        "department_id: is missing",
        "staff.mobile: is not a phone number (6–15 digits); person kept without contacts",
    ]


def test_dead_letters_mask_staff_mobile(server: tuple[str, Api], retry: RetryPolicy) -> None:
    base, _ = server
    delivery, _ = run(RenshiConnector(base, USER, PASSWORD, retry=retry))
    dead = {json.loads(d.raw)["id"]: d for d in delivery.dead_letters}
    assert json.loads(dead["T0004"].raw)["mobile"] == "138****0004"
    assert json.loads(dead["T0005"].raw)["mobile"] == "138******x005"
    for d in dead.values():
        assert "13812340004" not in d.model_dump_json()
        assert "1234-x" not in d.model_dump_json()


def test_pingjiao_cursor_pages_and_slow_response(
    server: tuple[str, Api], retry: RetryPolicy, sleeps: list[float]
) -> None:
    base, api = server
    pj = PingjiaoConnector(base, USER, PASSWORD, term=TERM, retry=retry, timeout=0.2)
    pj.streams[0].limit = 3
    delivery, report = run(pj)
    assert report.ok, report.errors
    assert sleeps == [0.5]  # the timed-out page was retried once
    assert api.hits["/api/eval/sections", "3"] == 2  # the slow page, asked twice

    obs = {(o.metric, o.entity_id): o for o in delivery.of(Observation)}
    score = obs["course.student_evaluation_score", "C0001"]
    assert (score.value, score.period, score.level.value) == (89.0, TERM, "course")
    assert score.key == f"pingjiao.sections|course.student_evaluation_score|C0001|T0001|{TERM}"
    assert obs["course.evaluation_participation", "C0001"].value == pytest.approx(77.5)
    assert obs["course.evaluation_participation", "C0007"].value == 0
    assert ("course.student_evaluation_score", "C0007") not in obs
    assert not any(k[1] == "C0006" for k in obs)
    [dead] = delivery.dead_letters
    assert dead.reason == "enrolled: is 0, so participation is undefined"
    assert dead.source == "pingjiao.sections"


def test_retries_run_out_into_a_stream_error(server: tuple[str, Api], retry: RetryPolicy, sleeps: list[float]) -> None:
    base, api = server
    api.always_500 = True
    _, report = run(PingjiaoConnector(base, USER, PASSWORD, term=TERM, retry=retry))
    assert report.errors == {"sections": "source failed (retryable): pingjiao GET /api/eval/sections: HTTP 503"}
    assert sleeps == [0.5, 1.0, 2.0]  # exponential, 4 attempts in all


def test_wrong_password_is_fatal_and_secret(server: tuple[str, Api], retry: RetryPolicy, sleeps: list[float]) -> None:
    base, _ = server
    renshi = RenshiConnector(base, USER, "wrong-" + PASSWORD, retry=retry)
    _, report = run(renshi)
    assert report.errors["staff"] == (f"source failed (fatal): renshi: login rejected for user '{USER}' (HTTP 401)")
    assert sleeps == []  # retrying bad credentials would only lock the account
    assert PASSWORD not in str(report)


def test_secrets_never_shown(server: tuple[str, Api], retry: RetryPolicy, caplog: pytest.LogCaptureFixture) -> None:
    base, api = server
    caplog.set_level(logging.DEBUG)
    renshi = RenshiConnector(base, USER, PASSWORD, retry=retry)
    pj = PingjiaoConnector(base, USER, PASSWORD, term=TERM, retry=retry)
    delivery, report = run(renshi)
    run(pj)
    api.always_500 = True
    with pytest.raises(Exception) as err:
        ApiClient(base, USER, PASSWORD, retry=retry).get_json("/api/school")
    shown = [
        repr(renshi),
        str(renshi),
        repr(pj),
        str(pj),
        repr(renshi.api),
        repr(renshi.api.__dict__),
        repr(pj.streams),
        str(err.value),
        repr(err.value),
        str(report),
        caplog.text,
        *(r.model_dump_json() for r in delivery.records),
    ]
    tokens = set(api.tokens)
    assert tokens
    for text in shown:
        assert PASSWORD not in text
        for token in tokens:
            assert token not in text
    assert "password=**********" in repr(renshi)


def test_fatal_on_unexpected_status() -> None:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/login":
            return httpx.Response(200, json={"token": "t"})
        return httpx.Response(404, json={})

    api = ApiClient(
        "http://campus.invalid", USER, PASSWORD, client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    with pytest.raises(FatalSourceError, match=r"api GET /api/school: HTTP 404"):
        api.get_json("/api/school")


def test_dead_letter_type_is_exported() -> None:
    assert DeadLetter.model_fields["raw"]
