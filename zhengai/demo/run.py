"""`zhengai demo`: generate the demo college as real sources, read it back through the connectors,
and run the whole loop embedded. Prints a Chinese summary and writes a report.

The generator plants known anomalies and healthy reference entities (``College.planted`` /
``College.healthy``); the run checks that every planted anomaly produced its warning with the right
band, level, entity and responsible person, and that the healthy references produced none.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from zhengai.connectors.caiwu import CaiwuConnector
from zhengai.connectors.jiaowu import JiaowuConnector
from zhengai.connectors.pingjiao import PingjiaoConnector
from zhengai.connectors.renshi import RenshiConnector
from zhengai.demo.api import DemoApi
from zhengai.demo.college import SIZES, College, CollegeSize, PlantedAnomaly, generate
from zhengai.demo.kinds import demo_rulebook
from zhengai.demo.systems import SystemsApi, system_connectors
from zhengai.embedded import Pipeline, PipelineResult
from zhengai.ingest.logs import install_log_policy
from zhengai.ingest.privacy import mask_text
from zhengai.report import Summary, render_report, render_summary, summarize
from zhengai.rules.loader import RuleSet
from zhengai.warnings.notify.console import ConsoleSink, FileSink
from zhengai.warnings.store import WarningStore

__all__ = ["DemoRun", "run_demo", "check_planted"]


@dataclass
class PlantedCheck:
    anomaly: PlantedAnomaly
    found: bool
    detail: str


@dataclass
class DemoRun:
    college: College
    store: WarningStore
    pipeline: Pipeline
    result: PipelineResult
    summary: Summary
    planted: list[PlantedCheck] = field(default_factory=list)
    healthy_breaches: dict[str, list[str]] = field(default_factory=dict)  # entity → rule ids
    report_path: Path | None = None
    seconds: float = 0.0

    @property
    def all_found(self) -> bool:
        return all(c.found for c in self.planted) and not self.healthy_breaches


class _Progress:
    """Progress on stderr: one updating line on a terminal, a line per step otherwise."""

    def __init__(self, stream: TextIO, enabled: bool):
        self.stream, self.enabled = stream, enabled
        self.tty = stream.isatty()
        self._last_step, self._last_t = "", 0.0

    def __call__(self, step: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        text = f"  {step} {done}/{total}" if total else f"  {step} {done}"
        if self.tty:
            print("\r" + text.ljust(60), end="", file=self.stream, flush=True)
            if total and done >= total:
                print(file=self.stream)
        elif step != self._last_step or now - self._last_t > 2 or (total and done >= total):
            print(text, file=self.stream, flush=True)
            self._last_step, self._last_t = step, now


def check_planted(store: WarningStore, college: College) -> tuple[list[PlantedCheck], dict[str, list[str]]]:
    warnings = store.read.warnings()
    by_pair: dict[tuple[str, str], list] = {}
    for w in warnings:
        by_pair.setdefault((w.rule_id, w.entity_id), []).append(w)
    checks = []
    for a in college.planted:
        rows = by_pair.get((a.rule_id, a.entity_id), [])
        match = [
            w
            for w in rows
            if w.level == a.level.value
            and w.worst_band == a.band.value
            and w.responsible_person_id == a.responsible_person_id
            and (a.period is None or w.opened_period <= a.period <= w.last_period)
        ]
        if match:
            checks.append(PlantedCheck(a, True, f"预警 #{match[0].id}（{match[0].status}）"))
        else:
            seen = (
                ", ".join(
                    f"#{w.id} {w.worst_band} {w.opened_period}..{w.last_period} → {w.responsible_person_id}"
                    for w in rows
                )
                or "无预警"
            )
            checks.append(PlantedCheck(a, False, seen))
    healthy = {e: sorted({w.rule_id for w in warnings if w.entity_id == e}) for e in college.healthy}
    return checks, {e: r for e, r in healthy.items() if r}


def college_connectors(college, api: DemoApi, systems_api: SystemsApi | None = None) -> list:
    """The four connectors of a generated college, on its sources (教务 SQLite, 人事/评教 on the
    demo API, 财务 CSV) — the same for the demo, the parity tests and the stream benchmark —
    and, given the 招就/科研 API, the other systems' connectors from their shipped configuration."""
    connectors = [
        JiaowuConnector(f"sqlite:///{college.jiaowu_db}", school_id=college.school_id),
        RenshiConnector(api.base_url, api.username, api.password),
        PingjiaoConnector(api.base_url, api.username, api.password, term=college.current_term),
        CaiwuConnector(college.finance_csv, school_id=college.school_id),
    ]
    if systems_api is not None and college.systems is not None:
        connectors += system_connectors(college.systems, systems_api)
    return connectors


def read_college(college) -> list:
    """Every record the college's connectors deliver, in their order (read whole, no bookmarks)."""
    from zhengai.connectors.base import MemoryBookmarks, run_connector

    class _List:
        def __init__(self) -> None:
            self.records: list = []

        def deliver(self, records) -> None:
            self.records += records

    delivery = _List()
    with DemoApi(college.api_data) as api, SystemsApi(college.systems.api_data if college.systems else {}) as sapi:
        connectors = college_connectors(college, api, sapi)
        try:
            for c in connectors:
                run_connector(c, delivery, MemoryBookmarks())
        finally:
            for c in connectors:
                c.close()
    return delivery.records


def run_demo(
    out_dir: Path,
    size: CollegeSize | str = "default",
    *,
    seed: int = 2026,
    rules: RuleSet | None = None,
    out: TextIO | None = None,
    progress: bool = True,
    console_limit: int = 5,
    prepare: Callable[[College], None] | None = None,
    store_url: str | None = None,
) -> DemoRun:
    """``prepare(college)`` runs after the sources are generated and before any connector reads
    them (tests plant rows there: personal data, malformed values). ``store_url``: another store
    than the output folder's SQLite file (tests run the demo on PostgreSQL)."""
    out = out or sys.stdout
    install_log_policy()  # also when called as a library, not through the CLI
    started = time.monotonic()
    size = SIZES[size] if isinstance(size, str) else size
    show = _Progress(sys.stderr, progress)
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    print(
        f"[1/5] 生成示范学院数据（{size.departments} 个二级学院、{size.majors} 个专业、{size.courses} 门课程、"
        f"{size.teachers} 名教师、{size.students} 名学生）",
        file=out,
        flush=True,
    )
    college = generate(out_dir / "sources", size, seed=seed, progress=show)
    if prepare is not None:
        prepare(college)
    rules = rules or demo_rulebook()  # the shipped rulebook, plus the rules the demo enables (demo/kinds.py)
    store = WarningStore(store_url or f"sqlite:///{out_dir / 'zhengai.sqlite'}")
    store.create_schema()
    pipeline = Pipeline(store, rules, clock=lambda: college.as_of, progress=show)
    result = pipeline.result

    print(
        "[2/5] 连接器读取数据源：教务（SQLite）、人事/评教（HTTP API）、财务（GBK CSV）；"
        "学工、招就、实习、资产、图书、科研、一卡通、课程平台、督导、师资（按配置映射）",
        file=out,
        flush=True,
    )
    with DemoApi(college.api_data) as api, SystemsApi(college.systems.api_data if college.systems else {}) as sapi:
        connectors = college_connectors(college, api, sapi)
        try:
            pipeline.ingest(connectors)
        finally:
            for c in connectors:
                c.close()

    from zhengai.demo.forms import take_in

    take_in(college.out_dir / "forms", pipeline, rules, lambda: college.as_of)  # 填报: the offices' drop folder
    print(
        "[3/5] 汇总派生指标（到课率、成绩、评教、师资、经费）并评估；连接器送来的观测值已在读取时评估",
        file=out,
        flush=True,
    )
    pipeline.flush()

    print(
        f"[4/5] 共评估 {result.observations} 条观测值（{len(rules.rules)} 条规则），判定 {result.verdicts} 条，"
        f"预警状态变化 {len(result.transitions)} 次",
        file=out,
        flush=True,
    )

    print("[5/5] 发送通知（控制台 + 文件）", file=out, flush=True)
    pipeline.notify([ConsoleSink(out, limit=console_limit), FileSink(out_dir / "notifications.jsonl")])

    summary = summarize(store, pipeline.directory)
    run = DemoRun(college, store, pipeline, result, summary)
    run.planted, run.healthy_breaches = check_planted(store, college)
    run.seconds = time.monotonic() - started
    _print_summary(run, out)
    _close_one_loop(run, out)
    run.report_path = out_dir / "report.md"
    run.report_path.write_text(
        render_report(
            summary,
            pipeline.directory,
            title=f"{college.school_name} 诊改监测预警报告（示范运行）",
            as_of=college.as_of,
            extra=_planted_section(run),
        ),
        encoding="utf-8",
    )
    print(
        f"\n报告：{run.report_path}\n通知：{out_dir / 'notifications.jsonl'}\n数据库：{out_dir / 'zhengai.sqlite'}",
        file=out,
    )
    _self_report(run, rules, out_dir, out)
    return run


def _self_report(run: DemoRun, rules: RuleSet, out_dir: Path, out: TextIO) -> None:
    """The 附件4 自我诊改报告 of the first 二级学院 for the demo's year (``zhengai report self``)."""
    from zhengai.ingest.records import EntityKind
    from zhengai.report.render import write_report
    from zhengai.report.selfreport import build_self_report, resolve_unit

    dept = next(run.pipeline.directory.of_kind(EntityKind.department), None)
    if dept is None:
        return
    year = f"{run.college.as_of.year}"
    unit = resolve_unit(run.store, "department", dept.id)
    report = build_self_report(run.store, rules, unit, year, as_of=run.college.as_of)
    paths = write_report(report, out_dir / "自我诊改报告")
    print(f"自我诊改报告（{dept.name}，{year}，附件4）：{paths[1]}（另有 .md、.xlsx）", file=out)


def _close_one_loop(run: DemoRun, out: TextIO) -> None:
    """The improve half of the loop on one recovered warning: its owner acknowledges and records a
    改进措施 with evidence, the assessing body (the level above, or 质量办) reviews it, and the
    measured 改进效果 is printed. A warning closes only this way (or with 质量办's waiver)."""
    from datetime import timedelta

    from zhengai.ingest.privacy import mask_text
    from zhengai.warnings.improvements import effects_of
    from zhengai.warnings.lifecycle import Acknowledge, Review, StartImprovement
    from zhengai.warnings.routing import assessors

    service, now = run.pipeline.service, run.college.as_of
    recovered = [w for w in run.store.read.warnings(status="recovered") if w.responsible_person_id]
    if not recovered:
        return
    w = recovered[0]
    rule = service.rule(w.rule_id)
    reviewer = next(iter(assessors(rule, w.entity_id, service.directory(), service.escalation)), None) if rule else None
    if reviewer is None:
        return
    owner = w.responsible_person_id
    assert owner is not None  # the demo's warnings all have a responsible person
    service.act(w.id, Acknowledge(owner, now, "已知悉"))
    service.act(
        w.id,
        StartImprovement(owner, now, now + timedelta(days=14), "分析缺勤原因，课前点名并与辅导员联动跟进"),
        evidence=["https://pan.example.edu.cn/demo/sign-in-sheets"],
    )
    service.act(w.id, Review(reviewer, now + timedelta(hours=1), "连续达标，措施有效，复评通过"))
    effects = effects_of(run.store, w.id)  # measured and stored with the review
    print(
        f"\n━━ 改进闭环示范：预警 #{w.id}（{w.rule_name} · {mask_text(w.entity_id)}）━━\n"
        f"  负责人 {owner} 确认预警并登记改进措施（含支撑材料）→ {reviewer} 复评关闭",
        file=out,
    )
    if effects:
        print(f"  改进效果：{mask_text(effects[0].summary)}", file=out)
    print(f"  查看：zhengai warnings show {w.id}", file=out)


def _planted_section(run: DemoRun) -> str:
    lines = ["## 三、预置异常核对", "", "| 结果 | 层面 | 对象 | 指标 | 预期色带 | 说明 |", "|---|---|---|---|---|---|"]
    for c in run.planted:
        a = c.anomaly
        lines.append(
            f"| {'✓' if c.found else '✗'} | {a.level.zh} | {a.entity_id} | {a.rule_id} | {a.band.zh} | {a.note} |"
        )
    return "\n".join(lines)


def _print_summary(run: DemoRun, out: TextIO) -> None:
    r = run.result
    read = sum(rep.total("read") for rep in r.connector_reports.values())
    bands = " · ".join(f"{k} {v}" for k, v in sorted(r.bands.items()))
    print(
        f"\n━━ 运行概况 ━━\n读取源数据 {read} 行；新观测值 {r.observations} 条；判定 {r.verdicts} 条（{bands}）；"
        f"预警状态变化 {len(r.transitions)} 次；死信 {len(r.dead_letters)} 条；用时 {run.seconds:.1f} 秒",
        file=out,
    )
    print(render_summary(run.summary, run.pipeline.directory), file=out)
    found = sum(c.found for c in run.planted)
    print(f"\n━━ 预置异常核对：{found}/{len(run.planted)} 已发现 ━━", file=out)
    for c in run.planted:
        if not c.found:
            a = c.anomaly
            print(mask_text(f"  ✗ {a.level.zh} {a.entity_id} {a.rule_id} 预期{a.band.zh}：{c.detail}"), file=out)
    ok = "均无预警 ✓" if not run.healthy_breaches else f"出现预警 ✗ {run.healthy_breaches}"
    print(f"健康参照对象 {len(run.college.healthy)} 个：{ok}", file=out)
