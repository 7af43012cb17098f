"""画像 pages in a real browser (Debian's chromium, headless) over the demo college on PostgreSQL,
signed in through the campus proxy's header: a dean reads a major's 画像 (charts drawn on the
server as SVG, percentiles as in ``reporting.indicator_portrait``), is refused another department's
course; a counsellor reads a student of their own class in clear and the other classes' students
masked. Screenshots go to ``test-artifacts/browser/`` (gitignored)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
from demopg import copy_into_postgres, run_small_demo
from playwright.sync_api import sync_playwright
from sqlalchemy import text

from zhengai.rules.loader import load_rulebook
from zhengai.warnings.service import WarningService
from zhengai.web import ServerThread, WebSettings, create_app

pytestmark = pytest.mark.integration
SECRET = b"test-secret-0123456789abcdef"
CHROMIUM = os.environ.get("ZHENGAI_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"
PHONE = dict(
    viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    run_small_demo(out)
    return out / "zhengai.sqlite"


@pytest.fixture
def site(demo, pg_url):
    store = copy_into_postgres(demo, pg_url)
    rules = load_rulebook()
    directory = store.directory.load()
    service = WarningService(store, lambda: rules, lambda: directory, channels=("memory",))
    settings = WebSettings(user_header="X-Remote-User")
    with ServerThread(create_app(service, lambda: rules, SECRET, settings=settings), settings=settings) as server:
        yield store, server.base_url
    store.engine.dispose()


@pytest.fixture
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


def _page(browser, person: str):
    context = browser.new_context(**PHONE, extra_http_headers={"X-Remote-User": person})
    return context.new_page()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert (SHOTS / f"{name}.png").stat().st_size > 5000


def test_a_dean_reads_a_majors_portrait(site, browser):
    store, base = site
    with store.engine.connect() as c:
        expected = c.execute(
            text(
                "SELECT DISTINCT ON (rule_id) rule_id, value, pct_department, pct_school, n_school, band "
                "FROM reporting.indicator_portrait WHERE entity_id = 'M0101' ORDER BY rule_id, period_start DESC"
            )
        ).all()
    assert len(expected) >= 3
    page = _page(browser, "DN01")
    page.goto(f"{base}/portrait")
    assert "院长" in page.inner_text("main")
    page.goto(f"{base}/portrait/M0101")
    assert page.locator("h1").inner_text() == "画像 · 机电一体化技术"
    assert "智能制造学院" in page.inner_text("main")
    cards = page.locator("section.card")
    assert cards.count() == len(expected)
    for row in expected:
        card = page.locator(f"section[id='{row.rule_id}']")
        assert card.get_attribute("class").endswith(f"band-{row.band}")
        assert card.locator("svg.chart circle").count() >= 1  # the trend, one point per period
        bars = [float(b.get_attribute("data-pct")) for b in card.locator("rect[data-pct]").all()]
        wanted = [round(v, 1) for v in (row.pct_department, row.pct_school) if v is not None]
        assert bars == pytest.approx(wanted, abs=0.05), row.rule_id
        assert card.locator("tr.me").count() == 1  # the major among its department's peers
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # fits the phone
    _shot(page, "portrait-major-dean")
    # another department's course: refused, nothing of it shown
    page.goto(f"{base}/portrait/C0040")
    assert page.locator("h1").inner_text() == "无权查看"
    assert httpx.get(f"{base}/portrait/C0040", headers={"X-Remote-User": "DN01"}).status_code == 403
    assert httpx.get(f"{base}/portrait/M0101").status_code == 403  # not signed in


def test_a_counsellor_sees_their_students_in_clear_and_others_masked(site, browser):
    store, base = site
    page = _page(browser, "FD001")
    page.goto(f"{base}/portrait/2401010001")  # class K0101241: FD001's own
    main = page.inner_text("main")
    assert "2401010001" in main
    peers = [t.inner_text() for t in page.locator("table.peers td:first-child").all()]
    assert peers, "a student's 画像 lists department peers"
    directory = store.directory.load()
    for cell in peers:
        ref = re.search(r"（(.+?)）", cell).group(1)
        if "*" in ref:
            assert re.fullmatch(r"\d{4}\*{4}\d{2}", ref) and cell.split("（")[0].endswith("*")
        else:  # in clear: only students of FD001's classes
            assert directory.get(ref).parent_id in {"K0101241", "K0101242", "K0101251", "K0101252", "K0101261"}
    assert any("*" in c for c in peers) and any("*" not in c for c in peers)
    _shot(page, "portrait-student-counsellor")
    # a dean reads the same student masked in the title, and no 学号 in clear anywhere
    dean = _page(browser, "DN01")
    dean.goto(f"{base}/portrait/2401010001")
    assert "2401010001" not in dean.content() and "2401****01" in dean.inner_text("main")
