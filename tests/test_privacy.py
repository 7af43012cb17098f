"""Personal data never leaves in clear: ID-card numbers, mobiles, emails and student IDs planted
in the demo college's source rows (教务 SQLite, 财务 GBK CSV) and typed by people (改进措施) are
masked in every output of a demo run — store tables that are outputs (dead letters, outbox,
notification messages), notifications, report.md, the console, the CLI (`warnings list/show`,
`connectors check`), rejection reports and logs. The stream run on the real broker is in
``test_stream_privacy.py``."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from zhengai.cli import main
from zhengai.demo.college import College
from zhengai.demo.run import run_demo
from zhengai.ingest.logs import ClientLogLimiter
from zhengai.ingest.privacy import mask_payload, mask_row, mask_text
from zhengai.ingest.records import DeadLetter, Level
from zhengai.warnings.notify.console import FileSink

MOBILE = "13912345678"
MOBILE_FORMS = ("13912345678", "139-1234-5678", "+86 13912345678")
ID_CARD = "11010119900101123X"
EMAIL = "cw.zhang@example.edu.cn"
T = "2026-11-30T09:00:00+00:00"

# What may never be seen in clear; student IDs are added from the college.
PLANTED = (MOBILE, "139-1234-5678", ID_CARD, ID_CARD.lower(), EMAIL, "cw.zhang")
STUDENT_ID = re.compile(r"(?<![0-9A-Za-z])\d{10}(?![0-9A-Za-z])")


def leaks(text_: str, student_ids: set[str] = frozenset()) -> list[str]:
    found = [p for p in PLANTED if p in text_]
    found += sorted({m for m in STUDENT_ID.findall(text_) if not student_ids or m in student_ids})
    return found


# --- the masking function -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("待核实 13912345678", "待核实 139****5678"),
        ("电话 139-1234-5678，或 +86 13912345678", "电话 139****5678，或 139****5678"),
        ("身份证 11010119900101123X 号", "身份证 110101********123X 号"),
        ("联系 cw.zhang@example.edu.cn。", "联系 c***@example.edu.cn。"),
        ("学生 2401010001 缺勤", "学生 2401****01 缺勤"),
        ("2401010001@qq.com", "2***@qq.com"),
        # what must stay: dates, times, ids of other shapes, amounts
        ("2026-W39 C0011 K01012401 2026-03-01T08:00:00+08:00 1,200,000.00", None),
    ],
)
def test_mask_text_by_pattern(raw: str, masked: str | None) -> None:
    assert mask_text(raw) == (masked if masked is not None else raw)
    assert mask_text(mask_text(raw)) == mask_text(raw), "masking is idempotent"


def test_rows_are_masked_by_name_and_by_pattern() -> None:
    row = {
        "联系方式": "13912345678",
        "phone": "6123456",
        "邮箱": EMAIL,
        "note": f"见 {ID_CARD}",
        "student": 2401010001,
        "score": 88.5,
        "nested": [{"mobile": MOBILE}],
    }
    masked = mask_row(row)
    assert masked == {
        "联系方式": "139****5678",
        "phone": "*******",
        "邮箱": "c***@example.edu.cn",
        "note": "见 110101********123X",
        "student": "2401****01",
        "score": 88.5,
        "nested": [{"mobile": "139****5678"}],
    }
    assert not leaks(mask_payload(json.dumps(row, ensure_ascii=False)))


def test_dead_letters_keep_a_masked_copy_unless_raw_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.dumps({"student_id": "2401010001", "scheduled": f"待核实 {MOBILE}", "memo": EMAIL}, ensure_ascii=False)
    letter = DeadLetter(
        source="jiaowu.attendance", reason=f"scheduled: '待核实 {MOBILE}' is not a number", raw=raw, at=T
    )
    assert not leaks(letter.reason + letter.raw)
    assert "待核实 139****5678" in letter.reason and json.loads(letter.raw)["student_id"] == "2401****01"
    again = DeadLetter.model_validate_json(letter.model_dump_json())
    assert again == letter, "a masked letter decodes unchanged"
    clean = json.dumps({"id": 7, "week": "2026-W39"})
    assert DeadLetter(source="s", reason="r", raw=clean, at=T).raw == clean, "nothing personal: the bytes as they came"
    monkeypatch.setenv("ZHENGAI_DEAD_LETTER_RAW", "1")
    kept = DeadLetter(source="jiaowu.attendance", reason="r", raw=raw, at=T)
    assert kept.raw == raw, "original bytes only where configured"


def test_log_records_are_masked_whatever_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    from zhengai.ingest.logs import install_log_policy

    install_log_policy()
    with caplog.at_level(logging.INFO):
        logging.getLogger("zhengai.test").info("row %r refused", {"mobile": MOBILE, "who": "2401010001", "mail": EMAIL})
        try:
            raise ValueError(f"bad id card {ID_CARD}")
        except ValueError:
            logging.getLogger("zhengai.test").exception("failed")
    text_ = caplog.text
    assert "139****5678" in text_ and "2401****01" in text_ and "110101********123X" in text_
    assert not leaks(text_)


def test_kafka_client_lines_are_summarised_during_an_outage() -> None:
    now = [0.0]
    limiter = ClientLogLimiter(every=10.0, quiet=30.0, clock=lambda: now[0])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(limiter)
    log = logging.getLogger("aiokafka.conn")
    log.addHandler(handler)
    log.propagate = False
    try:
        for i in range(40 * 29 + 1):  # 40 s of an outage, 2,900 lines/s (sampled 1:100)
            now[0] = i / 29.0
            log.error('Unable connect to "127.0.0.1:19092": [Errno 111] Connect call failed')
    finally:
        log.removeHandler(handler)
        log.propagate = True
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("Unable connect to")  # the first line of an outage as it came
    summaries = [ln for ln in lines[1:] if ln.startswith("Kafka broker unreachable for")]
    assert len(lines) == 1 + len(summaries) and 3 <= len(summaries) <= 4, lines
    assert re.match(
        r"Kafka broker unreachable for 40 s, retrying \(\d+ client log lines suppressed; last: Unable", summaries[-1]
    )
    now[0] += 31.0  # quiet for longer than ``quiet``: the next complaint is a new outage, shown whole
    with_handler = logging.getLogger("aiokafka.conn")
    with_handler.addHandler(handler)
    try:
        with_handler.error("Unable connect again")
    finally:
        with_handler.removeHandler(handler)
    assert stream.getvalue().splitlines()[-1] == "Unable connect again"
    ours = logging.LogRecord("zhengai.worker", logging.ERROR, __file__, 1, "not a client line", None, None)
    assert all(limiter.filter(ours) for _ in range(100)), "zhengai's own lines are never limited"


# --- a demo run with personal data planted in its sources ------------------------------------------


def plant(college: College) -> None:
    """Malformed rows that quote personal data (they must become dead letters), in 教务 and 财务."""
    con = sqlite3.connect(college.jiaowu_db)
    try:
        sid, course, week = con.execute("SELECT student_id, course_id, week FROM attendance LIMIT 1").fetchone()
        stamp = con.execute("SELECT max(updated_at) FROM attendance").fetchone()[0]
        con.execute(
            "INSERT INTO attendance (student_id, course_id, week, scheduled, attended, excused, updated_at)"
            " VALUES (?, ?, ?, ?, 2, 0, ?)",
            (sid, course, week, f"待核实 {MOBILE}", stamp),
        )
        con.execute(
            "INSERT INTO attendance (student_id, course_id, week, scheduled, attended, excused, updated_at)"
            " VALUES (?, ?, ?, 4, ?, 0, ?)",
            (sid, course, week, f"身份证 {ID_CARD}", stamp),
        )
        con.execute(
            "INSERT INTO grades (student_id, course_id, term, score, credits, updated_at) VALUES (?, ?, ?, ?, 2, ?)",
            (sid, course, college.current_term, f"问 {EMAIL}", stamp),
        )
        con.commit()
    finally:
        con.close()
    text_ = college.finance_csv.read_text(encoding="gbk")
    exported = college.finance_csv.stat()
    assert "待核实" in text_
    text_ = text_.replace("待核实,", f"待核实 {MOBILE},", 1).replace(
        "追加预算执行数待财务核对", f"经办人 {EMAIL} 身份证 {ID_CARD}", 1
    )
    college.finance_csv.write_text(text_, encoding="gbk")
    # The export keeps its time (the connector reads it as the rows' time; budget progress is judged as of it).
    os.utime(college.finance_csv, (exported.st_atime, exported.st_mtime))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    out = io.StringIO()
    try:
        run = run_demo(tmp_path_factory.mktemp("privacy") / "out", "small", out=out, progress=False, prepare=plant)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    run.console, run.logs = out.getvalue(), logs.getvalue()
    run.student_ids = (
        {e.id for e in run.pipeline.directory.entities() if e.kind.value == "student"}
        if hasattr(run.pipeline.directory, "entities")
        else set()
    )
    return run


def _student_ids(run) -> set[str]:
    with run.store.session() as s:
        return {r[0] for r in s.execute(text("SELECT id FROM entities WHERE kind = 'student'"))}


def _table_text(run, table: str, columns: str) -> str:
    with run.store.session() as s:
        return "\n".join(" ".join(str(v) for v in row) for row in s.execute(text(f"SELECT {columns} FROM {table}")))


def test_planted_rows_are_dead_letters_masked_in_the_store(demo) -> None:
    dead = _table_text(demo, "dead_letters", "source, reason, raw")
    assert dead.count("\n") + 1 >= 4, dead  # 2 attendance, 1 grade, 1 finance line
    assert "139****5678" in dead and "110101********123X" in dead and "c***@example.edu.cn" in dead
    assert not leaks(dead, _student_ids(demo)), dead
    assert not leaks(" ".join(d.reason + d.raw for d in demo.result.dead_letters), _student_ids(demo))


def test_demo_outputs_are_masked(demo) -> None:
    ids = _student_ids(demo)
    assert len(ids) > 100
    assert any(a.level is Level.student for a in demo.college.planted)
    report = demo.report_path.read_text(encoding="utf-8")
    notifications = (demo.report_path.parent / "notifications.jsonl").read_text(encoding="utf-8")
    outbox = _table_text(demo, "notification_outbox", "subject, body")
    messages = _table_text(demo, "notify_messages", "subject, group_key")
    for name, text_ in (
        ("report.md", report),
        ("notifications.jsonl", notifications),
        ("console", demo.console),
        ("notification_outbox", outbox),
        ("notify_messages", messages),
        ("logs", demo.logs),
    ):
        assert not leaks(text_, ids), (name, leaks(text_, ids))
    assert "****" in report, "the report names students, masked"
    assert demo.all_found


def test_warnings_cli_masks_improvement_text_and_student_ids(demo, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _student_ids(demo)
    url = str(demo.store.engine.url)
    student = next(a for a in demo.college.planted if a.level is Level.student)
    w = next(w for w in demo.store.read.warnings() if w.entity_id == student.entity_id)
    assert main(["warnings", "--store", url, "list"]) == 0
    assert (
        main(
            [
                "warnings",
                "--store",
                url,
                "ack",
                str(w.id),
                "--by",
                student.responsible_person_id,
                "--note",
                f"已电话联系 {MOBILE}",
                "--now",
                "2026-11-30T09:00+08:00",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "warnings",
                "--store",
                url,
                "improve",
                str(w.id),
                "--by",
                student.responsible_person_id,
                "--due",
                "2026-12-20",
                "--now",
                "2026-11-30T10:00+08:00",
                "--text",
                f"约谈学生 {student.entity_id}，家长 {MOBILE}，邮件 {EMAIL}，身份证 {ID_CARD}",
            ]
        )
        == 0
    )
    assert main(["warnings", "--store", url, "show", str(w.id)]) == 0
    out, err = capsys.readouterr()
    assert "约谈学生 " in out and "c***@example.edu.cn" in out and "139****5678" in out
    assert not leaks(out + err, ids), leaks(out + err, ids)
    # The notices these actions cause go out masked too (outbox, then a sink).
    path = demo.report_path.parent / "after-actions.jsonl"
    demo.pipeline.notify([FileSink(path)])
    sent = path.read_text(encoding="utf-8") if path.exists() else ""
    outbox = _table_text(demo, "notification_outbox", "subject, body")
    assert not leaks(sent + outbox, ids), leaks(sent + outbox, ids)


def test_connectors_check_masks_reasons_and_rows(
    demo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy = Path(__file__).resolve().parents[1] / "deploy" / "connectors"
    monkeypatch.setenv("JIAOWU_DB_URL", f"sqlite:///{demo.college.jiaowu_db}")
    monkeypatch.setenv("CAIWU_DROP_DIR", str(demo.college.finance_csv))
    main(["connectors", "check", "jiaowu", "--rows", "400000", "--show", "3", "--config-dir", str(deploy)])
    main(["connectors", "check", "caiwu", "--config-dir", str(deploy)])
    out, err = capsys.readouterr()
    assert "待核实 139****5678" in out, out[-2000:]
    assert not leaks(out + err, _student_ids(demo)), leaks(out + err, _student_ids(demo))


def test_rejection_reports_are_masked(tmp_path: Path) -> None:
    from zhengai.connectors.base import MemoryBookmarks, run_connector
    from zhengai.connectors.caiwu import CaiwuConnector

    drop = tmp_path / "drop"
    drop.mkdir()
    rows = [
        ("年度", "科目代码", "科目名称", "预算数(元)", "执行数(元)", "备注"),
        ("2026", "5003", "日常教学经费", "1,000.00", "900.00", ""),
        ("2026", "5004", f"经办 {EMAIL}", "1,000.00", f"待核实 {MOBILE}", f"身份证 {ID_CARD}"),
    ]
    with open(drop / "caiwu_2026.csv", "w", encoding="gbk", newline="") as fh:
        csv.writer(fh).writerows(rows)

    class Collect:
        records: list = []

        def deliver(self, records):
            self.records.extend(records)

    connector = CaiwuConnector(drop, school_id="SCH")
    try:
        run_connector(connector, Collect(), MemoryBookmarks())
    finally:
        connector.close()
    reports = list(drop.rglob("*.report.csv"))
    assert reports, list(drop.rglob("*"))
    content = "\n".join(r.read_text(encoding="utf-8-sig") for r in reports)
    assert "139****5678" in content and "110101********123X" in content
    assert not leaks(content), content


def test_group_robot_messages_mask_emails_and_numbers(tmp_path: Path) -> None:
    """DingTalk group robot on a real loopback HTTP server: warnings on students (学号 2401000001…)
    whose reason texts quote an email, a mobile and an ID-card number (as a source's free text
    may) reach the group masked, singly and grouped (the issue saw 7 group messages with emails)."""
    from datetime import timedelta as td

    from pydantic import SecretStr

    from zhengai.ingest.records import Band
    from zhengai.warnings.notify.config import RoutePolicy
    from zhengai.warnings.notify.dingtalk import DingTalkRobotSettings, DingTalkRobotSink
    from zhengai.warnings.notify.testing import DingTalkRobotServer, NotifyWorld, verdict

    world = NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", channels=("robot",))
    with DingTalkRobotServer("tok", "SECx", clock=world.clock) as server:
        sink = DingTalkRobotSink(
            channel="robot",
            settings=DingTalkRobotSettings(
                base_url=server.base_url, access_token=SecretStr("tok"), secret=SecretStr("SECx")
            ),
        )
        pipeline = world.pipeline(sink, route=RoutePolicy(group_wait=td(seconds=10)))
        students = world.college.students[:3]
        verdicts = [
            verdict(
                world.college, "student.attendance_rate", sid, Band.red, period="2026-W41", at=world.clock()
            ).model_copy(
                update={
                    "reason": f"个人到课率为80%（红色预警）；家长 {MOBILE}，邮箱 {EMAIL}，身份证 {ID_CARD}，学号 {sid}"
                }
            )
            for sid in students
        ]
        world.service.handle(verdicts)
        for _ in range(6):
            pipeline.run(world.clock())
            world.clock.advance(td(seconds=15))
        texts = "\n".join(r.text + r.title for r in server.received)
    assert server.received, "the warnings reached the group"
    assert "c***@example.edu.cn" in texts and "139****5678" in texts and "2401****01" in texts
    assert not leaks(texts, set(students)), leaks(texts, set(students))
