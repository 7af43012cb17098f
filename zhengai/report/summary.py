"""The Chinese summary and report of a run: warnings by level × band, the worst entities, who is
notified. Reads the store only (what Grafana will read through views later)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from zhengai.ingest.directory import Directory
from zhengai.ingest.privacy import mask_student_id, mask_text
from zhengai.ingest.records import Band, EntityKind, Level
from zhengai.warnings.lifecycle import ACTIVE
from zhengai.warnings.reads import WarningRecord
from zhengai.warnings.schema import DeadLetterRow
from zhengai.warnings.store import WarningStore

__all__ = ["Summary", "summarize", "render_summary", "render_report"]

_LEVELS = list(Level)
_ACTIVE = {s.value for s in ACTIVE}


@dataclass
class Summary:
    open_by_level_band: dict[tuple[str, str], int] = field(default_factory=dict)
    resolved_by_level: dict[str, int] = field(default_factory=dict)
    worst: list[tuple[str, str, int, int]] = field(default_factory=list)  # entity, level, red, yellow
    recipients: list[tuple[str, str, int]] = field(default_factory=list)  # person id, name, count
    dead_letters: dict[str, int] = field(default_factory=dict)  # reason (shortened) → count
    open_warnings: list[WarningRecord] = field(default_factory=list)

    @property
    def open_total(self) -> int:
        return sum(self.open_by_level_band.values())


def summarize(store: WarningStore, directory: Directory, top: int = 10) -> Summary:
    s = Summary()
    rows = store.read.warnings()
    per_entity: dict[str, Counter] = defaultdict(Counter)
    recipients: Counter = Counter()
    for w in rows:
        if w.status in _ACTIVE:
            s.open_by_level_band[(w.level, w.band)] = s.open_by_level_band.get((w.level, w.band), 0) + 1
            per_entity[w.entity_id][w.band] += 1
            s.open_warnings.append(w)
            if w.responsible_person_id:
                recipients[w.responsible_person_id] += 1
        elif w.status == "recovered" or w.resolution == "reviewed":
            s.resolved_by_level[w.level] = s.resolved_by_level.get(w.level, 0) + 1
    levels = {w.entity_id: w.level for w in rows}
    ranked = sorted(per_entity.items(), key=lambda kv: (-kv[1]["red"], -kv[1]["yellow"], kv[0]))
    s.worst = [(e, levels[e], c["red"], c["yellow"]) for e, c in ranked[:top]]
    for pid, n in recipients.most_common(top):
        person = directory.person(pid)
        s.recipients.append((pid, person.name if person else pid, n))
    with store.session() as sess:
        for reason, n in sess.execute(select(DeadLetterRow.source, func.count()).group_by(DeadLetterRow.source)):
            s.dead_letters[reason] = n
    return s


def _name(directory: Directory, entity_id: str) -> str:
    e = directory.get(entity_id)
    if e is None:
        return entity_id
    ref = mask_student_id(entity_id) if e.kind is EntityKind.student else entity_id
    return f"{e.name}（{ref}）"


def render_summary(s: Summary, directory: Directory) -> str:
    lines = ["", "━━ 预警汇总（未关闭）━━", f"{'层面':<6}{'黄色预警':>8}{'红色预警':>8}{'已恢复':>8}"]
    for lvl in _LEVELS:
        y = s.open_by_level_band.get((lvl.value, "yellow"), 0)
        r = s.open_by_level_band.get((lvl.value, "red"), 0)
        lines.append(f"{lvl.zh:<6}{y:>12}{r:>12}{s.resolved_by_level.get(lvl.value, 0):>10}")
    lines.append(f"合计未关闭预警 {s.open_total} 条，已恢复 {sum(s.resolved_by_level.values())} 条")
    lines += ["", "━━ 预警最集中的对象 ━━"]
    for entity, level, red, yellow in s.worst:
        lines.append(f"  {Level(level).zh} {_name(directory, entity)}：红色 {red} · 黄色 {yellow}")
    lines += ["", "━━ 将收到通知的负责人（按预警数）━━"]
    for _pid, name, n in s.recipients:
        lines.append(f"  {name}：{n} 条")
    if s.dead_letters:
        lines += ["", "━━ 未能接收的数据（死信，已留存待处理）━━"]
        for source, n in sorted(s.dead_letters.items()):
            lines.append(f"  {source}：{n} 条")
    return mask_text("\n".join(lines))


def render_report(s: Summary, directory: Directory, *, title: str, as_of: datetime, extra: str = "") -> str:
    """A markdown report (诊改监测预警报告) listing every open warning by level; personal data
    masked throughout (``extra`` included)."""
    out = [
        f"# {title}",
        "",
        f"统计时点：{as_of:%Y-%m-%d %H:%M}",
        "",
        "## 一、预警概况",
        "",
        "| 层面 | 黄色预警 | 红色预警 | 已恢复 |",
        "|---|---:|---:|---:|",
    ]
    for lvl in _LEVELS:
        out.append(
            f"| {lvl.zh} | {s.open_by_level_band.get((lvl.value, 'yellow'), 0)} | "
            f"{s.open_by_level_band.get((lvl.value, 'red'), 0)} | {s.resolved_by_level.get(lvl.value, 0)} |"
        )
    out += ["", "## 二、未关闭预警明细", ""]
    for lvl in _LEVELS:
        rows = [w for w in s.open_warnings if w.level == lvl.value]
        if not rows:
            continue
        out += [
            f"### {lvl.zh}层面（{len(rows)} 条）",
            "",
            "| 色带 | 对象 | 指标 | 周期 | 判定 | 负责人 | 限期 |",
            "|---|---|---|---|---|---|---|",
        ]
        for w in sorted(rows, key=lambda w: (w.band != "red", w.rule_id, w.entity_id)):
            person = directory.person(w.responsible_person_id) if w.responsible_person_id else None
            due = f"{w.due_date:%Y-%m-%d}" if w.due_date else "—"
            out.append(
                f"| {Band(w.band).zh} | {_name(directory, w.entity_id)} | {w.rule_name} | {w.last_period} | "
                f"{w.reason} | {person.name if person else '—'} | {due} |"
            )
        out.append("")
    if extra:
        out += [extra, ""]
    return mask_text("\n".join(out))  # 学号 in reasons and in ``extra``, numbers in free text
