"""The 填报 page in a real browser (Debian's chromium, headless, Playwright) on a phone-sized
screen, over PostgreSQL: the head of 教务处, signed in through the campus proxy, downloads the
template, fills it (one good row, one bad), uploads it and sees the bad row located in Chinese;
then enters a correction on the online form; 督导处 registers a 质量事故. Every value is audited
and reaches the store as an observation through the embedded pipeline."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook
from playwright.sync_api import sync_playwright
from sqlalchemy import select
from streamkit import college

from zhengai.embedded import Pipeline
from zhengai.forms.spec import FormsConfig, FormSpec
from zhengai.ingest.records import Entity, EntityKind, Person
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.forms_schema import FormValueRow, IncidentRow
from zhengai.warnings.service import WarningService
from zhengai.warnings.store import WarningStore
from zhengai.web import ServerThread, WebSettings, create_app

SECRET = b"test-secret-0123456789abcdef"
CHROMIUM = os.environ.get("ZHENGAI_CHROMIUM", "/usr/bin/chromium")
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
PHONE = dict(
    viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
)
FORM = FormSpec(
    id="jiaowu.lessons", name="授课计划提交情况填报表", office="教务处", metrics=["course.lesson_plan_ontime"]
)


@pytest.fixture
def site(pg_url):
    store = WarningStore(pg_url)
    store.create_schema()
    rules = load_rulebook()
    pipeline = Pipeline(store, rules, clock=lambda: NOW)
    heads = {
        "quality_office": Person(id="Q01", name="质量办"),
        "office:教务处": Person(id="OF02", name="教务处长"),
        "office:督导处": Person(id="OF11", name="督导处长"),
    }
    records = [
        r
        if not (isinstance(r, Entity) and r.kind is EntityKind.school)
        else r.model_copy(update={"responsible": heads})
        for r in college(students_per_class=1, classes=2)
    ]
    pipeline.deliver(records)
    service = WarningService(store, lambda: rules, lambda: pipeline.directory, channels=("console",))
    settings = WebSettings(user_header="X-Remote-User")
    app = create_app(
        service,
        lambda: rules,
        SECRET,
        clock=lambda: NOW,
        settings=settings,
        forms=FormsConfig(forms=[FORM]),
        forms_delivery=pipeline,
    )
    with ServerThread(app, settings=settings) as server:
        yield store, server.base_url


@pytest.fixture
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


def _values(store, metric):
    from sqlalchemy import text

    with store.engine.connect() as c:
        return {
            (e, v)
            for e, v in c.execute(text("SELECT entity_id, value FROM observations WHERE metric = :m"), {"m": metric})
        }


def test_download_fill_upload_and_correct_online(site, browser, tmp_path):
    store, base = site
    context = browser.new_context(**PHONE, extra_http_headers={"X-Remote-User": "OF02"})
    page = context.new_page()
    page.goto(base + "/forms")
    assert page.locator("h1").inner_text() == "填报" and "您可为 教务处 填报" in page.inner_text("main")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    with page.expect_download() as dl:
        page.click("text=下载 Excel 模板")
    path = tmp_path / "filled.xlsx"
    dl.value.save_as(path)
    wb = load_workbook(path)
    ws = wb["填报"]
    assert [ws.cell(r, 3).value for r in (5, 6)] == ["C1", "C2"] and ws["E5"].value == "2026-2027-1"
    ws["H5"], ws["H6"] = 97, "九十"
    wb.save(path)

    page.set_input_files("#file", str(path))
    page.click("button:has-text('上传')")
    main = page.inner_text("main")
    assert "部分接收：有效 1 行，有误 1 行" in main
    assert "工作表“填报”第 6 行 H 列（填报值）：“九十”不是数字" in main
    assert _values(store, "course.lesson_plan_ontime") == {("C1", 97.0)}

    # the online form: C2's value, then a correction of C1
    page.fill("[name='v:course.lesson_plan_ontime:C2']", "150")
    page.click("button:has-text('提交 授课计划提交情况填报表')")
    assert "开学两周内教案/授课计划提交率 · 课程2：150 超出允许范围（0–100 的数值）" in page.inner_text("main")
    page.fill("[name='v:course.lesson_plan_ontime:C2']", "88")
    page.fill("[name='v:course.lesson_plan_ontime:C1']", "99")
    page.click("button:has-text('提交 授课计划提交情况填报表')")
    assert "已接收：有效 2 行" in page.inner_text("main")
    assert {("C2", 88.0), ("C1", 99.0)} <= _values(store, "course.lesson_plan_ontime")
    with store.session() as s:
        audit = [
            (a.entity_id, a.value, a.previous, a.entered_by, a.source_file)
            for a in s.scalars(select(FormValueRow).order_by(FormValueRow.id))
        ]
    assert audit == [
        ("C1", 97.0, None, "OF02", "filled.xlsx"),
        ("C1", 99.0, 97.0, "OF02", None),
        ("C2", 88.0, None, "OF02", None),
    ]
    context.close()


def test_incident_form_and_who_may_use_the_page(site, browser):
    store, base = site
    anonymous = browser.new_context(**PHONE).new_page()
    anonymous.goto(base + "/forms")
    assert "请先登录" in anonymous.inner_text("main")

    page = browser.new_context(**PHONE, extra_http_headers={"X-Remote-User": "OF11"}).new_page()
    page.goto(base + "/forms")
    assert "登记质量事故" in page.inner_text("main") and "在线填报" not in page.inner_text("main")
    page.fill("#inc-id", "JX-2026-09")
    page.fill("#inc-at", "2026-11-10T08:15")
    page.fill("#inc-unit", "D1")
    page.select_option("#inc-cat", "教学事故")
    page.click("button:text-is('登记')")
    assert "课程编号：教学事故须填写课程编号" in page.inner_text("main")
    page.fill("#inc-course", "C1")
    page.fill("#inc-desc", "上课迟到 20 分钟")
    page.click("button:text-is('登记')")
    assert "已登记质量事故 JX-2026-09（一般教学事故）" in page.inner_text("main")
    with store.session() as s:
        row = s.get(IncidentRow, "JX-2026-09")
    assert (row.course_id, row.grade, row.registered_by) == ("C1", "一般", "OF11")
    assert ("C1", 1.0) in _values(store, "course.teaching_incidents")
