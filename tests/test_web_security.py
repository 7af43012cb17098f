"""Identity and links (issue 12 item 4, issue 9 links): group robots carry no personal action link
(on the loopback DingTalk and WeCom contract servers), links bound to the holder at the time of
use, revocation, the campus proxy's user header, CSRF, headers, limits, inert script; the real
app on uvicorn on 127.0.0.1."""

from __future__ import annotations

import logging
import re
import socket
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Band, Entity
from zhengai.warnings.improvement_schema import EvidenceRow
from zhengai.warnings.improvements import revoke_links
from zhengai.warnings.links import action_url
from zhengai.warnings.notify.config import LinkSettings, NotifyConfig, RoutePolicy
from zhengai.warnings.notify.console import MemorySink
from zhengai.warnings.notify.dingtalk import DingTalkRobotSettings, DingTalkRobotSink
from zhengai.warnings.notify.pipeline import Channel
from zhengai.warnings.notify.testing import DingTalkRobotServer, NotifyWorld, WeComRobotServer
from zhengai.warnings.notify.wecom import WeComRobotSettings, WeComRobotSink
from zhengai.web import ServerThread, WebSettings, create_app

SECRET = b"test-secret-0123456789abcdef"
BASE = "https://zg.example.edu.cn"
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')
NOW = RoutePolicy(group_wait=timedelta(0))
USER = "X-Remote-User"


def test_group_robots_carry_no_personal_action_link_personal_channels_do(tmp_path, monkeypatch):
    monkeypatch.setenv("ZHENGAI_LINK_SECRET", SECRET.decode())
    world = NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=6, channels=("dingtalk", "card", "wecom", "mail"))
    world.warn("course.attendance_rate", world.college.courses, Band.red)
    world.warn("student.attendance_rate", world.college.students[:2], Band.yellow)
    memory = MemorySink(channel="mail")  # stands for a personal channel (email, 工作通知)
    with (
        DingTalkRobotServer("tok", "SECx", clock=world.clock) as ding,
        WeComRobotServer("wkey", clock=world.clock) as wecom,
    ):
        sinks = [
            DingTalkRobotSink(
                channel="dingtalk",
                settings=DingTalkRobotSettings(
                    base_url=ding.base_url, access_token=SecretStr("tok"), secret=SecretStr("SECx")
                ),
            ),
            DingTalkRobotSink(
                channel="card",
                settings=DingTalkRobotSettings(  # buttons: actionCard
                    base_url=ding.base_url,
                    access_token=SecretStr("tok"),
                    secret=SecretStr("SECx"),
                    msgtype="actionCard",
                ),
            ),
            WeComRobotSink(
                channel="wecom", settings=WeComRobotSettings(base_url=wecom.base_url, key=SecretStr("wkey"))
            ),
            memory,
        ]
        pipeline = world.pipeline(
            *[Channel(s, NOW) for s in sinks], config=NotifyConfig(links=LinkSettings(base_url=BASE))
        )
        for _ in range(3):
            pipeline.run(world.clock())
            world.clock.advance(minutes=10)
        robot_payloads = [r.payload for r in ding.received] + [r.payload for r in wecom.received]
    assert len(ding.received) >= 2 and len(wecom.received) >= 1
    for payload in robot_payloads:
        blob = str(payload)
        assert "/ack" not in blob and "/improvement" not in blob and "t=" not in blob and "?p=" not in blob, blob
        assert f"{BASE}/my/warnings" in blob  # at most the page that asks for the reader's own identity
    # the same notices in a personal channel carry links signed for their recipient
    personal = " ".join(m.body for m in memory.messages)
    assert re.search(r"/warnings/\d+/ack\?p=T00\d&e=\d+&t=[\w-]{43}", personal)


@pytest.fixture
def site(tmp_path):
    world = NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=2)
    (a,) = world.warn("course.attendance_rate", "C001", Band.red)  # T001's
    (b,) = world.warn("course.attendance_rate", "C002", Band.red)  # T002's
    app = create_app(
        world.service,
        lambda: world.college.rules,
        SECRET,
        clock=world.clock,
        settings=WebSettings(user_header=USER, header_timeout=0.5),
    )
    with (
        ServerThread(app, settings=WebSettings(user_header=USER, header_timeout=0.5)) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as client,
    ):
        yield world, client, a.warning_id, b.warning_id, server


def _link(world, wid, action, person, days=30):
    return action_url(f"/warnings/{wid}/{action}", wid, person, action, world.clock() + timedelta(days=days), SECRET)


def _hidden(text: str, form_id: str) -> dict[str, str]:
    return dict(HIDDEN.findall(text.split(f'id="{form_id}"', 1)[1].split("</form>", 1)[0]))


def test_person_b_cannot_use_a_s_link_or_act_on_a_s_warning(site):
    world, client, a, b, _ = site
    link = _link(world, a, "ack", "T001")
    q = dict(httpx.URL(link).params)
    assert client.get(f"/warnings/{a}/ack", params=q | {"p": "T002"}).status_code == 403  # the name swapped
    assert client.get(_link(world, a, "ack", "T002")).status_code == 403  # a valid signature, but not T002's warning
    # B signed in through the proxy, holding A's link: acts as B, and B does not hold A's warning
    page = client.get(link, headers={USER: "T002"})
    assert page.status_code == 200 and "确认预警" not in page.text.split("</dl>", 1)[1]
    own = _hidden(client.get(f"/warnings/{b}", headers={USER: "T002"}).text, "form-ack")
    r = client.post(f"/warnings/{a}/ack", data=own | q, headers={USER: "T002"})
    assert r.status_code == 403 and world.store.read.warning(a).status == "open"


def test_a_revoked_link_is_refused_and_a_newer_one_works(site):
    world, client, a, _, _ = site
    old = _link(world, a, "ack", "T001", days=29)  # issued a day ago
    assert client.get(old).status_code == 200
    revoke_links(world.store, "T001", by="P-QO", reason="手机遗失", at=world.clock())
    r = client.get(old)
    assert r.status_code == 403 and "撤销" in r.text
    assert client.get(_link(world, a, "ack", "T001")).status_code == 200  # issued now, after the revocation


def test_reassignment_and_escalation_invalidate_the_old_holder_s_links(site):
    world, client, a, _, _ = site
    t001 = _link(world, a, "ack", "T001", days=60)
    # escalation: level 1 is the course owner P-CO; at level 2 (专业带头人) P-CO's link is void
    world.service.tick(world.clock() + timedelta(days=7))
    p_co = _link(world, a, "ack", "P-CO", days=60)
    assert client.get(p_co).status_code == 200 and client.get(t001).status_code == 200  # the owner still holds it
    world.service.tick(world.clock() + timedelta(days=14))
    assert world.store.read.warning(a).escalation_level == 2
    r = client.get(p_co)
    assert r.status_code == 403 and "已转由他人负责或已升级" in r.text
    assert client.get(_link(world, a, "ack", "P-ML", days=60)).status_code == 200
    # reassignment: C001 goes to T002 in the directory; T001's link is void, T002's works
    t002 = world.college.directory.person("T002")
    records = [
        r.model_copy(update={"responsible": r.responsible | {"course_teacher": t002}})
        if isinstance(r, Entity) and r.id == "C001"
        else r
        for r in world.college.records
    ]
    world.college.directory = Directory(records)
    assert client.get(t001).status_code == 403
    assert client.get(_link(world, a, "ack", "T002", days=60)).status_code == 200


def test_the_proxy_header_is_an_identity_only_when_configured(site, tmp_path):
    world, client, a, _, _ = site
    mine = client.get("/my/warnings", headers={USER: "T001"})
    assert mine.status_code == 200 and f"W{a}" in mine.text and "确认预警" in mine.text
    assert client.get("/my/warnings").status_code == 403  # nobody signed in, no link
    assert client.get("/my/warnings", headers={USER: "T001<script>"}).status_code == 403  # not a person id
    # the same header sent to an app that was not told about a proxy is ignored
    app = create_app(world.service, lambda: world.college.rules, SECRET, clock=world.clock)
    with ServerThread(app) as other:
        assert httpx.get(f"{other.base_url}/my/warnings", headers={USER: "T001"}).status_code == 403


def test_csrf_on_every_form(site):
    world, client, a, b, _ = site
    page = client.get(f"/warnings/{a}", headers={USER: "T001"})
    form = _hidden(page.text, "form-ack")
    assert set(form) == {"csrf"}  # signed in through the proxy: no link fields
    for bad in (
        {"note": "x"},
        {"csrf": "x"},
        {"csrf": _hidden(client.get(f"/warnings/{b}", headers={USER: "T002"}).text, "form-ack")["csrf"]},
    ):
        assert client.post(f"/warnings/{a}/ack", data=bad, headers={USER: "T001"}).status_code == 403
    cross = client.post(f"/warnings/{a}/ack", data=form, headers={USER: "T001", "Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert (
        client.post(f"/warnings/{a}/ack", data=form, headers={USER: "T001", "Sec-Fetch-Site": "cross-site"}).status_code
        == 403
    )
    assert world.store.read.warning(a).status == "open"
    ok = client.post(f"/warnings/{a}/ack", data=form, headers={USER: "T001"})
    assert ok.status_code == 200 and world.store.read.warning(a).status == "acknowledged"


def test_script_and_javascript_evidence_are_inert(site):
    world, client, a, _, _ = site
    with world.store.session() as s, s.begin():  # as if stored by an older version or by hand
        s.add(
            EvidenceRow(
                warning_id=a,
                url="javascript:alert(document.cookie)",
                note="<img src=x onerror=alert(1)>",
                added_by="T001",
                added_at=world.clock(),
            )
        )
    page = client.get(f"/warnings/{a}", headers={USER: "T001"}).text
    assert 'href="javascript:' not in page and "javascript:alert(document.cookie)" in page  # shown as text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    mine = client.get("/my/warnings", headers={USER: "T001"}).text
    assert 'href="javascript:' not in mine


def test_security_headers_on_every_response_and_limits(site):
    world, client, a, _, server = site
    responses = [
        client.get(_link(world, a, "ack", "T001")),
        client.get("/my/warnings"),
        client.get("/nothing"),
        client.get("/static/zhengai.css"),
        client.post(
            f"/warnings/{a}/ack", content=b"x" * 70_000, headers={"content-type": "application/x-www-form-urlencoded"}
        ),
    ]
    assert [r.status_code for r in responses] == [200, 403, 404, 200, 413]
    for r in responses:
        h = r.headers
        assert (
            "frame-ancestors 'none'" in h["content-security-policy"]
            and "script-src" not in h["content-security-policy"]
        )
        assert h["referrer-policy"] == "no-referrer" and h["cache-control"] == "no-store"
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    # a client that sends its request head slowly is disconnected (header_timeout 0.5 s here)
    host, port = httpx.URL(server.base_url).host, httpx.URL(server.base_url).port
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(b"GET /my/warnings HTTP/1.1\r\nHost: x\r\n")  # ... and never finishes the head
        assert sock.recv(1024) == b""  # closed by the server


def test_tokens_never_reach_the_logs(site, caplog):
    world, client, a, _, _ = site
    caplog.set_level(logging.DEBUG)
    link = _link(world, a, "ack", "T001")
    token = dict(httpx.URL(link).params)["t"]
    page = client.get(link)
    client.post(f"/warnings/{a}/ack", data=_hidden(page.text, "form-ack"))
    client.get(link + "x")  # a bad one is logged as refused, without the token
    # the server's loggers (the test's own HTTP client logs its requests too: not ours)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("zhengai", "uvicorn", "starlette")))
    assert f"/warnings/{a}/ack" in text and token not in text and "t=" not in text


def test_the_quality_office_waives_with_a_reason_then_reviews_on_the_web(site):
    world, client, a, _, _ = site
    world.warn(
        "course.attendance_rate", "C001", Band.excellent, period="2026-W42", at=world.clock() + timedelta(days=1)
    )
    assert world.store.read.warning(a).status == "recovered"
    teacher = client.get(f"/warnings/{a}", headers={USER: "T001"}).text
    assert (
        'id="form-waive"' not in teacher and 'id="form-review"' not in teacher
    )  # the owner neither waives nor reviews
    page = client.get(f"/warnings/{a}", headers={USER: "P-QO"}).text
    waive = _hidden(page, "form-waive")
    assert client.post(f"/warnings/{a}/waive", data=waive | {"reason": " "}, headers={USER: "P-QO"}).status_code == 400
    assert (
        client.post(
            f"/warnings/{a}/waive", data=waive | {"reason": "考勤机故障所致"}, headers={USER: "P-QO"}
        ).status_code
        == 200
    )
    review = _hidden(client.get(f"/warnings/{a}", headers={USER: "P-QO"}).text, "form-review")
    done = client.post(f"/warnings/{a}/review", data=review | {"note": "免于登记后复评"}, headers={USER: "P-QO"})
    assert done.status_code == 200 and world.store.read.warning(a).status == "closed"
    assert [e.kind for e in world.store.read.events(a)][-2:] == ["waived", "reviewed"]
