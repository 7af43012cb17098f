"""The 附件4 自我诊改报告, the 质量年度报告 tables and the two diagnoses on the demo college's data in
a real PostgreSQL, delivered through a real SMTP server (aiosmtpd, STARTTLS + AUTH) on loopback.

The expected numbers are recomputed here from the store's own rows (raw SQL, Python), not taken
from the report code."""

from __future__ import annotations

import email
import email.policy
import io
import re
import socket
import ssl
import subprocess
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from statistics import mean

import httpx
import openpyxl
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from docx import Document

from zhengai.commands.report import annual_report, self_report
from zhengai.demo.run import run_demo
from zhengai.ingest.plausibility import period_start
from zhengai.ingest.records import EntityKind
from zhengai.report.diagnosis import assessment_summaries, run_diagnosis, self_digests
from zhengai.report.render import TABLE_HEADER
from zhengai.report.selfreport import build_self_report, count_zi, resolve_unit
from zhengai.rules.diagnosis import load_catalog
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.diagnosis_schema import DiagnosisNoticeRow, SelfDiagnosisRow
from zhengai.warnings.lifecycle import Acknowledge, StartImprovement
from zhengai.warnings.links import action_url
from zhengai.warnings.messages import format_value
from zhengai.web import ServerThread, create_app

pytestmark = pytest.mark.integration

CATALOG = load_catalog()
RULES = load_rulebook()
YEAR = "2026"
USER, PASSWORD = "zhengai@sfzy.edu.cn", "smtp-pw-for-tests"


@pytest.fixture(scope="module")
def demo(pg_module_database, tmp_path_factory):
    """The small demo college run on its own PostgreSQL database (dropped afterwards)."""
    db = pg_module_database()
    run = run_demo(tmp_path_factory.mktemp("demo") / "out", "small", out=io.StringIO(), progress=False, store_url=db)
    run.url = db
    yield run
    run.store.engine.dispose()


def _window():
    return period_start(YEAR), period_start(str(int(YEAR) + 1))


def expected_department(run, dept: str) -> dict[str, dict]:
    """Per 诊断要素: indicators (rule → (entities, mean, band counts)) and warnings, from raw rows."""
    start, end = _window()
    eng = run.store.engine
    with eng.connect() as c:
        ids = {
            r[0] for r in c.execute(sa.text("SELECT id FROM entities WHERE department_id = :d OR id = :d"), {"d": dept})
        }
        verdicts = c.execute(
            sa.text(
                "SELECT rule_id, entity_id, period_start, evaluated_at, id, value, band FROM verdicts "
                "WHERE period_start >= :s AND period_start < :e"
            ),
            {"s": start, "e": end},
        ).all()
        warnings = c.execute(
            sa.text(
                "SELECT rule_id, entity_id FROM warnings "
                "WHERE opened_at < :e AND (closed_at IS NULL OR closed_at >= :s)"
            ),
            {"s": start, "e": end},
        ).all()
    latest: dict[tuple[str, str], tuple] = {}
    for v in verdicts:
        if v.entity_id in ids and RULES.rules[v.rule_id].enabled:
            key = (v.rule_id, v.entity_id)
            if key not in latest or (v.period_start, v.evaluated_at, v.id) > latest[key][:3]:
                latest[key] = (v.period_start, v.evaluated_at, v.id, v.value, v.band)
    out: dict[str, dict] = defaultdict(lambda: {"rules": defaultdict(list), "warnings": 0})
    for (rule_id, _e), (*_, value, band) in latest.items():
        el = CATALOG.element_of(rule_id)
        if el and el.project_code in "23456":
            out[el.code]["rules"][rule_id].append((value, band))
    for w in warnings:
        el = CATALOG.element_of(w.rule_id)
        # the rulebook the report reads: a rule it does not enable (the demo's composite) is not in it
        if w.entity_id in ids and el and el.project_code in "23456" and RULES.rules[w.rule_id].enabled:
            out[el.code]["warnings"] += 1
    return out


def docx_table(path):
    doc = Document(str(path))
    (table,) = [t for t in doc.tables if tuple(c.text for c in t.rows[0].cells) == TABLE_HEADER]
    return doc, [[c.text for c in row.cells] for row in table.rows[1:]]


def test_a_departments_docx_has_one_row_per_element_and_the_stores_numbers(demo, tmp_path):
    dept = "D01"
    as_of = demo.college.as_of.isoformat()
    rc = self_report(demo.url, "department", dept, YEAR, out=str(tmp_path), as_of=as_of)
    assert rc == 0
    (docx_path,) = tmp_path.glob("*.docx")
    doc, rows = docx_table(docx_path)
    expected = expected_department(demo, dept)
    codes = [row[1].split()[0] for row in rows]
    assert codes == sorted(expected, key=lambda c: tuple(map(int, c.split("."))))  # one row each, in 附件4 order
    assert len(codes) == len(set(codes)) >= 5
    for row in rows:
        code, opinion = row[1].split()[0], row[2]
        exp = expected[code]
        for rule_id, vals in exp["rules"].items():
            rule = RULES.rules[rule_id]
            values = [v for v, _ in vals if v is not None]
            if len(vals) == 1:
                assert f"{rule.name} {format_value(values[0], rule.unit)}" in opinion, (code, rule_id)
            else:
                shown = format_value(round(mean(values), 4), rule.unit)
                assert f"{rule.name}：{len(vals)} 个对象，均值 {shown}" in opinion, (code, rule_id)
                bands = Counter(b for _, b in vals)
                assert f"达成目标 {bands['excellent']}、达标 {bands['normal']}" in opinion
        if exp["warnings"]:
            assert f"存在问题：预警 {exp['warnings']} 条" in opinion
        else:
            assert "存在问题：本期无预警" in opinion
        assert "原因分析" in opinion
    text = "\n".join(p.text for p in doc.paragraphs)
    assert doc.sections[0].header.paragraphs[0].text == "部门名称：智能制造学院"
    assert "报 告 人（签字）" in text and "部门负责人（签字）" in text and text.count("年    月    日") == 2
    assert "✓ 全文：" in text and "（要求 ≤ 8000 字）符合" in text
    assert "2401020044" not in docx_path.read_bytes().decode("latin-1")  # student ids masked (docx is zipped XML)
    wb = openpyxl.load_workbook(next(tmp_path.glob("*.xlsx")))
    sheet = wb["自我诊改报告表"]
    assert [c.value for c in sheet[3]] == list(TABLE_HEADER)
    assert [sheet.cell(row=4 + i, column=2).value for i in range(len(rows))] == [r[1] for r in rows]
    md = next(tmp_path.glob("*.md")).read_text(encoding="utf-8")
    assert md.count("\n| ") == len(rows) + 1  # header + one line per element


def test_an_offices_short_draft_fails_the_2000_word_floor(demo):
    unit = resolve_unit(demo.store, "office", "人事处")
    report = build_self_report(demo.store, RULES, unit, YEAR, as_of=demo.college.as_of)
    (check,) = [c for c in report.failed_checks if c.what == "全文"]
    assert check.low == 2000 and check.count < 2000 and "不足" in check.text()
    assert {r.element.code for r in report.rows} <= {
        "2.2",
        "5.2",
        "5.3",
        "5.4",
    }  # 人事处's own indicators only (5.3: 师资 data)


def test_the_annual_tables_carry_the_stores_values(demo, tmp_path):
    assert annual_report(demo.url, YEAR, out=str(tmp_path), as_of=demo.college.as_of.isoformat()) == 0
    wb = openpyxl.load_workbook(next(tmp_path.glob("*.xlsx")))
    assert wb.sheetnames == ["学校层面", "专业层面", "课程层面", "教师层面", "学生层面"]
    with demo.store.engine.connect() as c:
        value = c.execute(
            sa.text(
                "SELECT value FROM verdicts WHERE rule_id = 'school.student_teacher_ratio' ORDER BY period_start DESC"
            )
        ).scalar()
    row = next(r for r in wb["学校层面"].iter_rows(values_only=True) if r[1] == "生师比")
    assert row[2] == 1 and row[3] == format_value(round(value, 4), RULES.rules["school.student_teacher_ratio"].unit)


def test_over_long_measures_and_report_fire_the_length_checks(demo, tmp_path):
    service, now = demo.pipeline.service, demo.college.as_of
    w = next(
        w
        for w in demo.store.read.warnings(status="open")
        if w.responsible_person_id and w.rule_id.startswith("major.") and w.entity_id.startswith("M01")
    )
    long_measure = "针对在校生数不足，联合招生就业处走访生源中学并开展专业开放日，" * 8
    assert count_zi(long_measure) > 200
    service.act(w.id, Acknowledge(w.responsible_person_id, now, "已知悉"))
    service.act(w.id, StartImprovement(w.responsible_person_id, now, now + timedelta(days=14), long_measure))
    code = CATALOG.element_of(w.rule_id).code
    with demo.store.session() as s, s.begin():  # a dean who wrote far too much 原因分析
        s.add(
            SelfDiagnosisRow(
                entity_id="D01",
                element_code=code,
                period="2026-11",
                author_id="DN01",
                cause="生源结构变化导致报到率下降。" * 700,
                opinion="",
                written_at=now,
            )
        )
    rc = self_report(demo.url, "department", "D01", YEAR, out=str(tmp_path), as_of=now.isoformat())
    assert rc == 3
    doc, rows = docx_table(next(tmp_path.glob("*.docx")))
    (row,) = [r for r in rows if r[1].startswith(code)]
    assert long_measure.strip() in row[3] and "尚未复评" in row[4]  # effect not yet measured: said so
    assert "生源结构变化导致报到率下降" in row[2]
    text = "\n".join(p.text for p in doc.paragraphs)
    assert f"✗ {code} 改进措施：" in text and "（要求 ≤ 200 字）超出" in text
    assert "✗ 全文：" in text and "（要求 ≤ 8000 字）超出" in text


# --- routing: digests to owners, assessment summaries to the assessing bodies --------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)  # fmt: skip
    return str(crt), str(key)


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 — aiosmtpd's hook name
        self.envelopes.append(envelope)
        return "250 OK"

    def by_recipient(self) -> dict[str, email.message.EmailMessage]:
        out = {}
        for e in self.envelopes:
            (to,) = e.rcpt_tos
            out[to] = email.message_from_bytes(e.original_content or e.content, policy=email.policy.default)
        return out


def _auth(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def notify_yaml(tmp_path, cert, port: int):
    path = tmp_path / "notify.yaml"
    path.write_text(
        "links: {base_url: https://zg.sfzy.edu.cn}\n"
        "channels:\n"
        "  email:\n    type: email\n    host: 127.0.0.1\n"
        f"    port: {port}\n    tls: starttls\n    username: {USER}\n"
        f"    from_addr: 诊改平台 <{USER}>\n    ca_file: {cert[0]}\n    timeout: 5\n",
        encoding="utf-8",
    )
    return path


def smtp(inbox, cert, port):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return Controller(inbox, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                      authenticator=_auth, auth_require_tls=True)  # fmt: skip


def emails(run) -> dict[str, str]:
    with run.store.engine.connect() as c:
        return {r.id: r.email for r in c.execute(sa.text("SELECT id, email FROM persons"))}


def test_monthly_digests_reach_each_owner_with_their_own_indicators_once(demo, tmp_path, cert, monkeypatch):
    monkeypatch.setenv("ZHENGAI_NOTIFY_EMAIL_PASSWORD", PASSWORD)
    monkeypatch.setenv("ZHENGAI_LINK_SECRET", "a-test-link-secret-of-some-length")
    as_of = (demo.college.as_of + timedelta(days=20)).isoformat()
    month = demo.college.as_of.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m")
    digests = self_digests(demo.store, RULES, month, as_of=datetime.fromisoformat(as_of))
    inbox, port = Inbox(), free_port()
    config = notify_yaml(tmp_path, cert, port)
    # the server is down first: nothing is lost, the rows wait
    assert run_diagnosis(demo.url, "digest", month, notify=str(config), as_of=as_of) == 1
    server = smtp(inbox, cert, port)
    server.start()
    try:
        assert run_diagnosis(demo.url, "digest", month, notify=str(config), as_of=as_of) == 0
        assert run_diagnosis(demo.url, "digest", month, notify=str(config), as_of=as_of) == 0  # nothing twice
    finally:
        server.stop()
    mails = inbox.by_recipient()
    addresses = emails(demo)
    assert len(inbox.envelopes) == len(digests) == len(mails) >= 10
    directory = demo.store.directory.load()
    major_leader = directory.get("M0102").responsible["major_leader"].id
    mail = mails[addresses[major_leader]]
    body = mail.get_body(("plain",)).get_content()
    assert mail["Subject"].startswith(f"【自主诊断】{month}")
    assert "数控技术（专业）" in body and "专业在校生数" in body
    assert "https://zg.sfzy.edu.cn/diagnosis/self?period=" in body and f"p={major_leader}" in body
    teacher = "T0009"  # 杨艳雅: her own red warning, nobody else's indicators
    tbody = mails[addresses[teacher]].get_body(("plain",)).get_content()
    assert "55岁以下教授、副教授每学期授课门数" in tbody and "红色预警" in tbody
    assert "数控技术（专业）" not in tbody
    assert not any(addresses.get(p) in mails for p in ("QA01",))  # 质量办 gets no digest of its own
    with demo.store.session() as s:
        rows = s.scalars(sa.select(DiagnosisNoticeRow).where(DiagnosisNoticeRow.kind == "self")).all()
    assert {r.status for r in rows} == {"sent"} and all(r.attempts == 2 for r in rows)


def test_assessment_summaries_go_to_the_assessing_body_not_the_owner(demo, tmp_path, cert, monkeypatch):
    monkeypatch.setenv("ZHENGAI_NOTIFY_EMAIL_PASSWORD", PASSWORD)
    term = "2026-2027-1"
    as_of = (demo.college.as_of + timedelta(days=40)).isoformat()
    summaries = assessment_summaries(demo.store, RULES, term, as_of=datetime.fromisoformat(as_of))
    inbox, port = Inbox(), free_port()
    server = smtp(inbox, cert, port)
    server.start()
    try:
        assert run_diagnosis(demo.url, "assess", term, notify=str(notify_yaml(tmp_path, cert, port)), as_of=as_of) == 0
    finally:
        server.stop()
    mails = inbox.by_recipient()
    addresses = emails(demo)
    directory = demo.store.directory.load()
    deans = {d.id: d.responsible["dean"].id for d in directory.of_kind(EntityKind.department)}
    jiaowu = directory.school().responsible["office:教务处"].id
    assert {addresses[p] for p in (*deans.values(), jiaowu)} == set(mails) and len(summaries) == len(mails)
    # the dean of D01 assesses D01's teachers and students (per term, 004:449, 004:484): counted from the store
    t0, t1 = period_start(term), period_start("2026-2027-2")
    now = datetime.fromisoformat(as_of)
    with demo.store.engine.connect() as c:
        rows = c.execute(
            sa.text(
                "SELECT w.status, w.due_date FROM warnings w JOIN entities e ON e.id = w.entity_id "
                "WHERE w.level IN ('teacher', 'student') AND e.department_id = 'D01' "
                "AND w.opened_at < :e AND (w.closed_at IS NULL OR w.closed_at >= :s)"
            ),
            {"s": t0, "e": t1},
        ).all()
    active = {"open", "acknowledged", "improving", "escalated"}
    closed = sum(r.status == "closed" for r in rows)
    overdue = sum(r.status in active and r.due_date is not None and r.due_date < now for r in rows)
    assert overdue > 0
    subject = mails[addresses[deans["D01"]]]["Subject"]
    still_open = len(rows) - overdue - closed
    assert (
        subject == f"【考核性诊断】{term} 智能制造学院：逾期 {overdue} 条、未关闭 {still_open} 条、已关闭 {closed} 条"
    )
    body = mails[addresses[deans["D01"]]].get_body(("plain",)).get_content()
    assert "2401****44" in body and "2401020044" not in body  # students masked
    # 教务处 gets the courses by 二级学院; the owners (teachers, counsellors) get nothing
    jbody = mails[addresses[jiaowu]].get_body(("plain",)).get_content()
    assert "智能制造学院：" in jbody and "信息工程学院：" in jbody
    owners = {w.responsible_person_id for w in demo.store.read.warnings()} - set(deans.values()) - {jiaowu}
    assert owners and not {addresses.get(p) for p in owners} & set(mails)


# --- the 自主诊断 form: what an owner writes reaches the 附件4 report ------------------------------

HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')
SECRET = b"test-secret-0123456789abcdef"


def test_the_owner_writes_the_cause_through_the_digest_link_and_the_report_quotes_it(demo, tmp_path):
    now = demo.college.as_of + timedelta(days=20)
    month = now.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m")
    leader = demo.store.directory.load().get("M0201").responsible["major_leader"].id
    link = action_url(f"/diagnosis/self?period={month}", 0, leader, "diagnose", now + timedelta(days=30), SECRET)
    app = create_app(demo.pipeline.service, lambda: RULES, SECRET, clock=lambda: now)
    with ServerThread(app) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        page = client.get(link)
        assert page.status_code == 200 and "计算机应用技术（专业） · 3.2 专业设置" in page.text
        assert "专业在校生数" in page.text and "红色预警" in page.text
        hidden = dict(HIDDEN.findall(page.text))
        assert set(hidden) == {"period", "csrf", "p", "e", "t"}
        cause = "本专业面向的区域产业岗位收缩，招生宣传未覆盖新兴生源地。"
        done = client.post("/diagnosis/self", data=hidden | {"cause:M0201:3.2": cause, "opinion:M0201:3.2": ""})
        assert done.status_code == 200 and "已保存 1 条自我诊断意见" in done.text
        # another major's element is not this person's to write: refused, nothing saved
        other = client.post("/diagnosis/self", data=hidden | {"cause:M0101:3.2": "越权"})
        assert other.status_code == 400 and "不属于您负责范围" in other.text
        forged = client.post("/diagnosis/self", data=hidden | {"t": "x" + hidden["t"][1:], "cause:M0201:3.2": "x"})
        assert forged.status_code == 403
        assert client.get(f"/diagnosis/self?period={month}").status_code == 403  # no link, no login
    with demo.store.session() as s:
        rows = s.scalars(sa.select(SelfDiagnosisRow).where(SelfDiagnosisRow.author_id == leader)).all()
    assert [(r.entity_id, r.element_code, r.cause) for r in rows] == [("M0201", "3.2", cause)]
    report = build_self_report(demo.store, RULES, resolve_unit(demo.store, "major", "M0201"), YEAR, as_of=now)
    (row,) = [r for r in report.rows if r.element.code == "3.2"]
    assert f"原因分析：{cause}" in row.opinion_text


def test_bad_units_and_periods_are_refused_in_chinese_first(demo, tmp_path, capsys):
    assert self_report(demo.url, "department", "D99", YEAR, out=str(tmp_path)) == 2
    assert capsys.readouterr().err.startswith("没有二级学院 'D99'；例如：D01、D02")
    assert self_report(demo.url, "office", "宣传部", YEAR, out=str(tmp_path)) == 2
    assert "没有职能部门 '宣传部'；已知：" in capsys.readouterr().err
    assert self_report(demo.url, "major", "M0101", "2026-13", out=str(tmp_path)) == 2
    assert capsys.readouterr().err.startswith("周期无效：")
    assert run_diagnosis(demo.url, "digest", YEAR) == 2
    assert capsys.readouterr().err.startswith("自主诊断按月进行")
    assert run_diagnosis(demo.url, "assess", "2026-11") == 2
    assert capsys.readouterr().err.startswith("考核性诊断按学期或学年进行")
    assert list(tmp_path.iterdir()) == []  # nothing written
