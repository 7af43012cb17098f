"""The pages in a real browser (Debian's chromium, headless, driven by Playwright) on a phone-sized
screen, over PostgreSQL: a teacher acknowledges from the link in a 工作通知, records a 改进措施 with
evidence, sees it in 我的预警; the course owner (signed in through the campus proxy) reviews it.
A screenshot of each page goes to ``test-artifacts/browser/`` (gitignored)."""

from __future__ import annotations

import os
import re
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from zhengai.ingest.records import Band, Level, Observation
from zhengai.warnings.lifecycle import Acknowledge, StartImprovement
from zhengai.warnings.links import action_url
from zhengai.warnings.notify.testing import NotifyWorld
from zhengai.web import ServerThread, WebSettings, create_app

SECRET = b"test-secret-0123456789abcdef"
CHROMIUM = os.environ.get("ZHENGAI_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"
PHONE = dict(
    viewport={"width": 390, "height": 844},
    device_scale_factor=2,
    is_mobile=True,
    has_touch=True,
    locale="zh-CN",
    user_agent="Mozilla/5.0 (Linux; Android 14) Mobile DingTalk",
)


@pytest.fixture
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


@pytest.fixture
def site(pg_url):
    world = NotifyWorld(pg_url, courses=3)
    (opened,) = world.warn("course.attendance_rate", "C001", Band.red)
    settings = WebSettings(user_header="X-Remote-User")
    app = create_app(world.service, lambda: world.college.rules, SECRET, clock=world.clock, settings=settings)
    with ServerThread(app, settings=settings) as server:
        yield world, server.base_url, opened.warning_id


def _link(world, base, wid, action, person="T001"):
    path = "/my/warnings" if action == "mine" else f"/warnings/{wid}/{action}"
    return base + action_url(
        path, wid if action != "mine" else 0, person, action, world.clock() + timedelta(days=30), SECRET
    )


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert (SHOTS / f"{name}.png").stat().st_size > 5000


def _fits_the_phone(page) -> None:
    # mobile first: nothing wider than the screen, buttons large enough to tap
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for box in [b.bounding_box() for b in page.locator("button").all()]:
        assert box["height"] >= 40 and box["width"] >= 300


def test_acknowledge_record_a_measure_with_evidence_and_see_it_in_my_warnings(site, browser):
    world, base, wid = site
    context = browser.new_context(**PHONE)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    # 1. the 确认预警 link from the DingTalk 工作通知
    page.goto(_link(world, base, wid, "ack"))
    assert page.locator("h1").inner_text() == f"预警 W{wid}"
    assert "教师001，您好" in page.content() and "红色预警 · 预警中" in page.inner_text("main")
    _fits_the_phone(page)
    _shot(page, "1-ack")
    page.fill("#note", "已知悉，本周内分析原因")
    page.click("#form-ack button")
    page.wait_for_load_state()
    assert "已确认预警" in page.inner_text("main")
    _shot(page, "2-acknowledged")
    assert world.store.read.warning(wid).status == "acknowledged"

    # 2. the 登记改进措施 link: a measure whose text carries script, with evidence
    page.goto(_link(world, base, wid, "improvement"))
    _fits_the_phone(page)
    page.fill("#text", "课前点名并与辅导员联动<script>alert('x')</script><img src=x onerror=alert(1)>")
    page.fill("#due", "2026-10-30")
    page.fill("#evidence", "https://pan.example.edu.cn/s/sign-in\nhttps://pan.example.edu.cn/s/plan")
    _shot(page, "3-improvement-form")
    page.click("#form-improvement button")
    page.wait_for_load_state()
    assert "已登记预警" in page.inner_text("main") and "2026-10-30" in page.inner_text("main")
    _shot(page, "4-improvement-recorded")
    (imp,) = world.store.read.improvements(wid)
    assert imp.evidence == ["https://pan.example.edu.cn/s/sign-in", "https://pan.example.edu.cn/s/plan"]

    # the warning page shows the measure as text (the script is inert) and the evidence as links
    page.goto(_link(world, base, wid, "improvement"))
    assert "<script>alert('x')</script>" in page.inner_text("main")  # shown, not run
    assert page.locator("main img").count() == 0
    hrefs = [a.get_attribute("href") for a in page.locator("main a").all()]
    assert hrefs == ["https://pan.example.edu.cn/s/sign-in", "https://pan.example.edu.cn/s/plan"]
    assert all(a.get_attribute("rel") == "noopener noreferrer" for a in page.locator("main a").all())
    page.fill("#evidence-more", "javascript:alert(document.cookie)")
    page.click("#form-evidence button")
    page.wait_for_load_state()
    assert "须为 http:// 或 https://" in page.inner_text("main")
    _shot(page, "5-evidence-refused")

    # 3. 我的预警 from the personal digest link
    page.goto(_link(world, base, 0, "mine"))
    main = page.inner_text("main")
    assert "我的预警" in page.locator("h1").inner_text() and f"W{wid} 学生到课率" in main
    assert "改进中" in main and "2026-10-30" in main and "课前点名并与辅导员联动" in main
    assert "https://pan.example.edu.cn/s/sign-in" in main and "登记改进措施、补充支撑材料" in main
    _fits_the_phone(page)
    _shot(page, "6-my-warnings")
    page.click(f"text=W{wid} 学生到课率")  # a personal link to the warning, for this person only
    page.wait_for_load_state()
    assert page.locator("#form-improvement").count() == 1 and "课前点名并与辅导员联动" in page.inner_text("main")
    assert dialogs == []  # no script ran anywhere
    context.close()


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_GET(self) -> None:  # noqa: N802 — http.server's naming
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        body = "支撑材料".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_token_page_never_sends_its_url_as_referer(site, browser):
    world, base, wid = site
    evidence = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=evidence.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{evidence.server_address[1]}/pan/sign-in.xlsx"
        world.service.act(
            wid, StartImprovement("T001", world.clock(), world.clock() + timedelta(days=10), "课前点名"), evidence=[url]
        )
        context = browser.new_context(**PHONE)
        page = context.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r))
        link = _link(world, base, wid, "improvement")
        page.goto(link)
        css = [r for r in requests if r.url.endswith("/static/zhengai.css")]
        assert css and all("referer" not in r.all_headers() for r in css)  # the stylesheet fetch carries no Referer
        with context.expect_page() as popup:
            page.click(f"a[href='{url}']")
        popup.value.wait_for_load_state()
        (hit,) = [h for h in _Recorder.seen if h["path"] == "/pan/sign-in.xlsx"]
        assert "referer" not in hit  # the evidence host never learns the page's signed URL
        token = dict(httpx.URL(link).params)["t"]
        assert all(token not in str(h) for h in _Recorder.seen)
        context.close()
    finally:
        evidence.shutdown()
        evidence.server_close()


def test_the_course_owner_reviews_through_the_campus_proxy(site, browser):
    world, base, wid = site
    world.store.observations.add(
        [
            Observation(
                level=Level.course,
                entity_id=c,
                metric="course.attendance_rate",
                value=v,
                period=f"2026-W{w}",
                observed_at=world.clock(),
                source="test",
                key=f"o|{c}|{w}",
            )
            for c, values in (("C001", (80.0, 97.0)), ("C002", (93.0, 94.0)), ("C003", (92.0, 92.5)))
            for w, v in zip((41, 42), values, strict=True)
        ]
    )
    t = world.clock()
    world.service.act(wid, Acknowledge("T001", t))
    world.service.act(wid, StartImprovement("T001", t, t + timedelta(days=14), "课前点名"))
    world.warn("course.attendance_rate", "C001", Band.excellent, period="2026-W42", at=t + timedelta(days=7))
    assert world.store.read.warning(wid).status == "recovered"
    context = browser.new_context(**PHONE, extra_http_headers={"X-Remote-User": "P-CO"})  # what CAS/SSO adds
    page = context.new_page()
    page.goto(base + "/my/warnings")
    assert "孙课程，您好" in page.inner_text("main") and "复评" in page.inner_text("main")
    _shot(page, "7-owner-my-warnings")
    page.click(f"text=W{wid} 学生到课率")
    page.wait_for_load_state()
    assert re.search(rf"/warnings/{wid}$", page.url)
    _fits_the_phone(page)
    main = page.inner_text("main")
    assert "改进效果" in main and "由 80%（2026-W41，预警时）变为 97%" in main and "当前测算" in main  # before deciding
    _shot(page, "8-review-form")
    page.fill("#review-note", "连续达标，措施有效")
    page.click("#form-review button")
    page.wait_for_load_state()
    assert "已复评关闭" in page.inner_text("main")
    _shot(page, "9-reviewed")
    assert world.store.read.warning(wid).status == "closed"
    context.close()


def test_quality_office_backtests_an_uploaded_rulebook_in_a_browser(pg_url, browser, tmp_path):
    """质量办 uploads a course file with a raised standard and sees the two more warnings, by name;
    a broken file shows its located errors in Chinese; a teacher is refused."""
    from test_backtest import _history  # the planted term with known answers

    from zhengai.rules.loader import default_rulebook_path, load_rulebook

    world = NotifyWorld(pg_url, courses=6)
    rules = load_rulebook()
    world.store.observations.add(_history())
    settings = WebSettings(user_header="X-Remote-User")
    app = create_app(world.service, lambda: rules, SECRET, clock=world.clock, settings=settings)
    text = (default_rulebook_path() / "course.yaml").read_text(encoding="utf-8")
    good, bad = tmp_path / "course.yaml", tmp_path / "broken.yaml"
    good.write_text(
        text.replace("    standard: 90\n    warning: 95\n", "    standard: 97\n    warning: 95\n", 1), encoding="utf-8"
    )
    bad.write_text(
        text.replace("    standard: 90\n    warning: 95\n", "    standard: 九十\n    warning: 95\n", 1),
        encoding="utf-8",
    )
    with ServerThread(app, settings=settings) as server:
        context = browser.new_context(extra_http_headers={"X-Remote-User": "P-QO"}, **{**PHONE, "is_mobile": False})
        page = context.new_page()
        page.goto(server.base_url + "/rules/backtest")
        page.fill("input[name=term]", "2025-2026-1")
        page.set_input_files("input[name=file]", str(good))
        page.click("button[type=submit]")
        report = page.locator("#report").inner_text()
        assert "候选规则库多开的预警：2 条" in report
        assert "course.attendance_rate · C003 · 2025-W37 · 黄色预警" in report
        assert "course.attendance_rate · C005 · 2025-W37 · 黄色预警" in report
        assert page.locator("#report td").nth(1).inner_text() == "2 → 4"
        _shot(page, "backtest_report")

        page.fill("input[name=term]", "2025-2026-1")
        page.set_input_files("input[name=file]", str(bad))
        page.click("button[type=submit]")
        alert = page.locator("[role=alert]").inner_text()
        assert (
            "broken.yaml:" in alert and "规则 course.attendance_rate「学生到课率」：标准值 standard 为 '九十'" in alert
        )
        _shot(page, "backtest_errors")
        context.close()

        teacher = httpx.get(server.base_url + "/rules/backtest", headers={"X-Remote-User": "T001"})
        assert teacher.status_code == 403 and "仅限质量办" in teacher.text
