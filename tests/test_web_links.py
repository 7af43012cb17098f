"""Signed action links and the pages behind them: a teacher acknowledges a warning, or records an
improvement (改进措施), from the link in a notification; the real app on uvicorn on 127.0.0.1."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from zhengai.ingest.records import Band
from zhengai.warnings.links import InvalidLink, SecretError, action_url, load_secret, sign, verify
from zhengai.warnings.notify.config import LinkSettings, NotifyConfig, RoutePolicy
from zhengai.warnings.notify.console import MemorySink
from zhengai.warnings.notify.testing import NotifyWorld
from zhengai.web import ServerThread, WebSettings, create_app

SECRET = b"test-secret-0123456789abcdef"
BASE = "https://zg.example.edu.cn"
CHINA = ZoneInfo("Asia/Shanghai")


# --- sign / verify --------------------------------------------------------------------------------


def test_sign_and_verify_round_trip_and_rejections(tmp_path):
    world_now = NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=1).clock()
    exp = world_now + timedelta(days=1)
    token = sign(7, "T001", "ack", exp, SECRET)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 32 bytes, URL-safe base64, no padding
    verify(7, "T001", "ack", exp, token, SECRET, now=world_now)
    verify(7, "T001", "ack", str(int(exp.timestamp())), token, SECRET, now=world_now)  # as read from a query

    def reason(*args, now=world_now, secret=SECRET) -> str:
        with pytest.raises(InvalidLink) as exc:
            verify(*args, secret, now=now)
        return exc.value.reason

    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert reason(7, "T001", "ack", exp, tampered) == "bad_signature"
    assert reason(8, "T001", "ack", exp, token) == "bad_signature"  # another warning
    assert reason(7, "T002", "ack", exp, token) == "bad_signature"  # another person
    assert reason(7, "T001", "improvement", exp, token) == "bad_signature"  # another action
    assert reason(7, "T001", "ack", exp + timedelta(days=30), token) == "bad_signature"  # a stretched expiry
    assert reason(7, "T001", "ack", exp, token, secret=b"another-secret-0123456789") == "bad_signature"
    assert reason(7, "T001", "ack", exp, token, now=exp) == "expired"
    assert reason(7, "T001", "delete", exp, token) == "unknown_action"
    assert reason(7, "T001", "ack", "soon", token) == "malformed"
    assert reason(7, "T001", "ack", exp, "") == "malformed"
    assert reason(7, "T001", "ack", exp, "令牌") == "malformed"
    with pytest.raises(InvalidLink) as exc:
        verify(7, "T001", "ack", exp, token, SECRET, now=exp + timedelta(seconds=1))
    assert "过期" in exc.value.zh


def test_secret_from_the_environment_or_a_file(tmp_path):
    assert load_secret({}) is None
    assert load_secret({"ZHENGAI_LINK_SECRET": "x" * 32}) == b"x" * 32
    f = tmp_path / "secret"
    f.write_text("y" * 20 + "\n", encoding="utf-8")
    assert load_secret({"ZHENGAI_LINK_SECRET_FILE": str(f)}) == b"y" * 20
    with pytest.raises(SecretError) as exc:
        load_secret({"ZHENGAI_LINK_SECRET": "short-secret"})
    assert "short-secret" not in str(exc.value)  # the secret is never part of a message
    with pytest.raises(SecretError):
        load_secret({"ZHENGAI_LINK_SECRET_FILE": str(tmp_path / "missing")})


# --- the composer -----------------------------------------------------------------------------------


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_composer_signs_links_for_the_recipient_when_a_secret_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("ZHENGAI_LINK_SECRET", SECRET.decode())
    world = NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=2)
    sink = MemorySink()
    pipeline = world.pipeline(
        sink, config=NotifyConfig(links=LinkSettings(base_url=BASE)), route=RoutePolicy(group_wait=timedelta(0))
    )
    t0 = world.clock()
    student = world.college.students[0]
    world.warn("student.attendance_rate", student, Band.red)  # routed to the counsellor P-CS
    pipeline.run(t0)
    (message,) = sink.messages
    urls = re.findall(r"\]\((https://[^)]+)\)", message.body)
    assert [urlsplit(u).path for u in urls] == ["/warnings/1/ack", "/warnings/1/improvement"]
    for url, action in zip(urls, ("ack", "improvement"), strict=True):
        q = _query(url)
        assert q["p"] == "P-CS" and int(q["e"]) == int((t0 + timedelta(days=30)).timestamp())  # not masked
        verify(1, q["p"], action, q["e"], q["t"], SECRET, now=t0)
    assert student not in message.body and "2401****01" in message.body  # the rest is still masked

    # a grouped message (one teacher, two courses) keeps the signed links whole too
    sink2 = MemorySink()
    world2 = NotifyWorld(f"sqlite:///{tmp_path / 'w2.sqlite'}", courses=2, teachers=1)
    world2.warn("course.attendance_rate", ["C001", "C002"], Band.red)
    world2.pipeline(
        sink2, config=NotifyConfig(links=LinkSettings(base_url=BASE)), route=RoutePolicy(group_wait=timedelta(0))
    ).run(world2.clock())
    (grouped,) = sink2.messages
    assert grouped.kind == "group"
    for url in re.findall(r"\]\((https://[^)]+/ack[^)]*)\)", grouped.body):
        q = _query(url)
        wid = int(urlsplit(url).path.split("/")[2])
        verify(wid, "T001", "ack", q["e"], q["t"], SECRET, now=world2.clock())


def test_composer_keeps_unsigned_links_without_a_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("ZHENGAI_LINK_SECRET", raising=False)
    monkeypatch.delenv("ZHENGAI_LINK_SECRET_FILE", raising=False)
    world = NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=1)
    sink = MemorySink()
    world.warn("course.attendance_rate", "C001", Band.red)
    world.pipeline(
        sink, config=NotifyConfig(links=LinkSettings(base_url=BASE)), route=RoutePolicy(group_wait=timedelta(0))
    ).run(world.clock())
    assert f"({BASE}/warnings/1/ack)" in sink.messages[0].body


# --- the pages, on a real server -------------------------------------------------------------------

HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


@pytest.fixture
def site(tmp_path):
    world = NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=2)
    (opened,) = world.warn("course.attendance_rate", "C001", Band.red)  # teacher T001, due in 7 days
    (student,) = world.warn("student.attendance_rate", world.college.students[0], Band.red)  # counsellor P-CS
    app = create_app(
        world.service,
        lambda: world.college.rules,
        SECRET,
        clock=world.clock,
        settings=WebSettings(user_header="X-Remote-User"),
    )
    with ServerThread(app) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield world, client, opened.warning_id, student.warning_id


def _link(world, warning_id: int, action: str, person: str = "T001", days: int = 30) -> str:
    return action_url(
        f"/warnings/{warning_id}/{action}", warning_id, person, action, world.clock() + timedelta(days=days), SECRET
    )


def _hidden(page_text: str, form_id: str) -> dict[str, str]:
    form = page_text.split(f'id="{form_id}"', 1)[1].split("</form>", 1)[0]
    return dict(HIDDEN.findall(form))


def test_ack_page_shows_the_warning_in_chinese_and_post_acknowledges(site):
    world, client, wid, _ = site
    url = _link(world, wid, "ack")
    page = client.get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    text = page.text
    assert 'name="viewport"' in text and 'lang="zh-CN"' in text
    assert "教师001，您好" in text  # the person's own name, nothing else of theirs
    for expected in (
        "学生到课率",
        "课程 课程001（C001）",
        "80%",
        "目标值 98%",
        "标准值 90%",
        "预警值 95%",
        "红色预警",
        "2026-10-19",
        "确认预警",
        'method="post"',
    ):
        assert expected in text, expected
    assert "139" not in text and "@example.edu.cn" not in text  # no contacts
    form = _hidden(text, "form-ack")
    assert set(form) == {"csrf", "p", "e", "t"}

    done = client.post(f"/warnings/{wid}/ack", data=form | {"note": "已知悉"})
    assert done.status_code == 200 and "已确认预警" in done.text
    assert world.store.read.warning(wid).status == "acknowledged"
    (event,) = [e for e in world.store.read.events(wid) if e.kind == "acknowledged"]
    assert event.actor == "T001" and event.reason == "已知悉"

    again = client.post(f"/warnings/{wid}/ack", data=form)
    assert again.status_code == 409 and "已确认" in again.text
    assert len([e for e in world.store.read.events(wid) if e.kind == "acknowledged"]) == 1


def test_improvement_post_records_text_due_date_and_evidence(site):
    world, client, wid, _ = site
    url = _link(world, wid, "improvement")
    page = client.get(url)
    assert page.status_code == 200 and "改进措施" in page.text and "限期" in page.text and "支撑材料" in page.text
    evidence = "https://pan.example.edu.cn/s/abc\nhttps://pan.example.edu.cn/s/def"
    done = client.post(
        f"/warnings/{wid}/improvement",
        data=_hidden(page.text, "form-improvement")
        | dict(text="调整上课时间，课前点名<script>alert(1)</script>", due="2026-11-15", evidence=evidence),
    )
    assert done.status_code == 200 and "2026-11-15" in done.text
    w = world.store.read.warning(wid)
    assert w.status == "improving"
    (imp,) = world.store.read.improvements(wid)
    assert imp.owner_id == "T001" and imp.text == "调整上课时间，课前点名<script>alert(1)</script>"
    assert imp.evidence == ["https://pan.example.edu.cn/s/abc", "https://pan.example.edu.cn/s/def"]
    assert f"{imp.due_date.astimezone(CHINA):%Y-%m-%d}" == "2026-11-15" and w.due_date == imp.due_date
    (event,) = [e for e in world.store.read.events(wid) if e.kind == "improvement_started"]
    assert event.actor == "T001"
    # the page escapes what people typed, and lists the evidence as links
    page = client.get(url)
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert 'href="https://pan.example.edu.cn/s/abc" rel="noopener noreferrer"' in page.text


def test_improvement_form_errors_are_400_and_change_nothing(site):
    world, client, wid, _ = site
    url = _link(world, wid, "improvement")
    form = _hidden(client.get(url).text, "form-improvement")
    for bad in (
        dict(text="", due="2026-11-15"),
        dict(text="措施", due="明天"),
        dict(text="措施", due="2026-10-01"),
        dict(text="措施", due="9999-12-31"),  # past the rule's maximum due date
        dict(text="措施", due="2026-11-15", evidence="javascript:alert(1)"),
        dict(text="</textarea><script>x</script>", due="2026-11-15", evidence="ftp://x/</textarea><script>"),
    ):
        r = client.post(f"/warnings/{wid}/improvement", data=form | bad)
        assert r.status_code == 400 and "<script>" not in r.text, bad  # re-shown, escaped
    assert world.store.read.improvements(wid) == [] and world.store.read.warning(wid).status == "open"


def test_bad_links_are_403_and_change_nothing(site):
    world, client, wid, _ = site
    url = _link(world, wid, "ack")
    q = _query(url)
    csrf = _hidden(client.get(url).text, "form-ack")["csrf"]
    tampered = q | {"t": q["t"][:-2] + ("AA" if q["t"][-2:] != "AA" else "BB")}
    cases = [
        ("get", f"/warnings/{wid}/ack", dict(params=tampered)),
        ("get", f"/warnings/{wid}/ack", dict(params=q | {"p": "T002"})),  # someone else's id
        ("get", f"/warnings/{wid}/improvement", dict(params=q)),  # the ack token for another action
        ("get", f"/warnings/{wid + 1}/ack", dict(params=q)),  # another warning
        ("get", _link(world, wid, "ack", days=-1), {}),  # expired
        ("get", f"/warnings/{wid}/ack", {}),  # no token
        ("post", f"/warnings/{wid}/ack", dict(data=tampered | {"csrf": csrf})),
        ("post", url, dict(data={"note": "x", "csrf": csrf})),  # the token only in the URL, not in the form: refused
    ]
    for method, path, kwargs in cases:
        r = getattr(client, method)(path, **kwargs)
        assert r.status_code == 403, (method, path, kwargs)
        assert "课程001" not in r.text
    assert "过期" in client.get(_link(world, wid, "ack", days=-1)).text
    assert world.store.read.warning(wid).status == "open"
    assert [e.kind for e in world.store.read.events(wid)] == ["opened"]
    assert client.get("/anything").status_code == 404
    assert client.get(f"/warnings/{wid}/delete").status_code == 404


def test_a_student_entity_is_shown_masked(site):
    world, client, _, sid = site
    student = world.college.students[0]
    page = client.get(_link(world, sid, "ack", person="P-CS"))
    assert page.status_code == 200
    assert "李辅导，您好" in page.text and "2401****01" in page.text and student not in page.text
