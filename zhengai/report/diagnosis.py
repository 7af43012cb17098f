"""Two of the three kinds of diagnosis (004:376–484); the third, 综合性诊断, is the 附件4 report.

- 自主诊断 (``self_digests``): each month, every owner of a 专业/课程/教师 (and the offices owning
  school indicators — 004:376 asks it monthly of them too) receives their own indicators — value,
  band, open warning and due date — with a personal link to the short form where they write their
  自我诊断意见 (原因分析); the 附件4 report quotes what they write.
- 考核性诊断 (``assessment_summaries``): per term or year, each assessing body named by the catalog
  (质量办 for the 职能部门 indicators, 教务处 for majors and courses by 二级学院, each 二级学院 for its
  teachers and students) receives a summary of the units it assesses with their open, overdue and
  closed warnings. It goes to the body, not to the owners.

Delivery goes through the configured notification sinks (``notify.yaml`` channels): one row per
(kind, period, unit, recipient, channel) in ``diagnosis_notices`` — running twice sends nothing
twice; a channel that is down leaves the row pending for the next run; a fatal refusal parks it.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from zhengai.ingest.directory import Directory
from zhengai.ingest.plausibility import period_kind
from zhengai.ingest.privacy import mask_student_id, mask_text
from zhengai.ingest.records import Band, EntityKind, Level
from zhengai.report.selfreport import latest_verdicts, period_window
from zhengai.rules.diagnosis import KINDS, Catalog, load_catalog
from zhengai.rules.loader import RuleSet
from zhengai.warnings.diagnosis_schema import DiagnosisNoticeRow
from zhengai.warnings.lifecycle import ACTIVE
from zhengai.warnings.messages import format_value
from zhengai.warnings.notify.base import Contact, FatalSinkError, Message, RetryableSinkError, Sink
from zhengai.warnings.routing import route
from zhengai.warnings.schema import WarningRow
from zhengai.warnings.store import WarningStore

__all__ = [
    "Notice",
    "OwnedItem",
    "owned_indicators",
    "self_digests",
    "assessment_summaries",
    "enqueue",
    "deliver",
    "run_diagnosis",
    "FORM_PATH",
]

log = logging.getLogger("zhengai.report")
FORM_PATH = "/diagnosis/self"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ACTIVE = {s.value for s in ACTIVE}
_MARK = {"excellent": "✅", "normal": "🟢", "yellow": "🟡", "red": "🔴", "stale": "⚪"}
ROWS_SHOWN = 30  # units listed in one assessment summary; the rest are counted


@dataclass
class Notice:
    kind: str  # self | assessment
    period: str
    unit: str  # entity (digest: the person's id) or assessing body + scope
    recipient_id: str
    subject: str
    body: str
    items: int = 0  # indicators (digest) or warnings (summary) it carries


def _label(directory: Directory, entity_id: str) -> str:
    e = directory.get(entity_id)
    if e is None:
        return entity_id
    if e.kind is EntityKind.student:
        return f"{e.name}（{mask_student_id(entity_id)}）"
    return f"{e.name}（{e.kind.zh}）"


def _overdue(w: WarningRow, as_of: datetime) -> bool:
    return w.status in _ACTIVE and w.due_date is not None and w.due_date < as_of


@dataclass(frozen=True)
class OwnedItem:
    """One indicator of one entity as its owner sees it in the digest and the form."""

    element_code: str | None
    line: str
    warning_open: bool


def owned_indicators(
    store: WarningStore,
    rules: RuleSet,
    month: str,
    *,
    as_of: datetime,
    catalog: Catalog | None = None,
    person_id: str | None = None,
) -> dict[str, dict[str, list[OwnedItem]]]:
    """Owner → entity → the latest value of each monthly-diagnosed indicator up to the end of
    ``month`` (levels whose 自主诊断 is monthly in the catalog). Owners are whom the warning routing
    names; 质量办 standing in for a vacancy is not an owner."""
    if period_kind(month) != "month":
        raise ValueError(f"自主诊断按月进行，周期须为月份（如 2026-11），实为 {month!r}")
    catalog = catalog or load_catalog()
    monthly = {lvl for lvl, c in catalog.cadences.items() if c.self_cadence == "month"}
    rule_ids = {rid for rid, r in rules.rules.items() if r.enabled and r.level in monthly}
    _, end = period_window(month)
    directory = store.directory.load()
    scope = None if person_id is None else _held_subtrees(directory, person_id)
    with store.session() as s:
        verdicts = latest_verdicts(s, rule_ids, scope, EPOCH, end)
        warnings = {
            (w.rule_id, w.entity_id): w
            for w in s.scalars(select(WarningRow).where(WarningRow.status.in_(sorted(_ACTIVE | {"pending"}))))
        }
    out: dict[str, dict[str, list[OwnedItem]]] = defaultdict(lambda: defaultdict(list))
    for v in sorted(verdicts, key=lambda v: (v.entity_id, v.rule_id)):
        rule = rules.rules[v.rule_id]
        owner = route(rule, v.entity_id, directory)
        if owner is None or owner.fallback or (person_id is not None and owner.person.id != person_id):
            continue
        el = catalog.element_of(v.rule_id)
        line = (
            f"- {_MARK.get(v.band, '')} {rule.name} {format_value(v.value, rule.unit)}（{v.period}）· "
            f"{Band(v.band).zh}" + (f" · 诊断要素 {el.label}" if el else "")
        )
        w = warnings.get((v.rule_id, v.entity_id))
        if w is not None:
            due = w.due_date.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d") if w.due_date else "—"
            line += f" · 预警未关闭，限期 {due}" + ("（已逾期）" if _overdue(w, as_of) else "")
        out[owner.person.id][v.entity_id].append(OwnedItem(el.code if el else None, line, w is not None))
    return out


def _held_subtrees(directory: Directory, person_id: str) -> list[str] | None:
    """Entities under any entity where the person holds a role (None: everything — an office or
    质量办, named on the school). Narrows one person's form; routing still decides ownership."""
    held = [
        e
        for kind in EntityKind
        for e in directory.of_kind(kind)
        if any(r.id == person_id for r in e.responsible.values())
    ]
    if any(e.kind is EntityKind.school for e in held):
        return None
    out: set[str] = set()
    todo = [e.id for e in held]
    while todo:
        eid = todo.pop()
        if eid not in out:
            out.add(eid)
            todo.extend(c.id for c in directory.children(eid))
    return sorted(out)


def self_digests(
    store: WarningStore,
    rules: RuleSet,
    month: str,
    *,
    as_of: datetime,
    catalog: Catalog | None = None,
    form_url=None,
) -> list[Notice]:
    """The 自主诊断 digest of ``month`` for every owner. ``form_url(person_id)`` gives their
    personal link to the 自我诊断意见 form (None: no link)."""
    owned = owned_indicators(store, rules, month, as_of=as_of, catalog=catalog)
    directory = store.directory.load()
    out = []
    for pid in sorted(owned):
        person = directory.person(pid)
        name = person.name if person else pid
        entities = owned[pid]
        n = sum(len(items) for items in entities.values())
        open_ = sum(i.warning_open for items in entities.values() for i in items)
        parts = [
            f"{name}：您好！这是 {month} 的{KINDS['self']}（每月一次）。"
            f"您负责的 {len(entities)} 个对象、{n} 项指标，其中未关闭预警 {open_} 项。",
            "",
        ]
        for eid, items in entities.items():
            parts += [f"**{_label(directory, eid)}**", *(i.line for i in items), ""]
        link = form_url(pid) if form_url else None
        parts.append(
            f"请填写本月自我诊断意见（原因分析）：{link}"
            if link
            else "请登录诊改平台填写本月自我诊断意见（原因分析）。"
        )
        subject = f"【自主诊断】{month} 您负责的 {n} 项指标" + (f"（{open_} 项预警）" if open_ else "")
        out.append(Notice("self", month, pid, pid, subject, mask_text("\n".join(parts)), n))
    return out


def _bodies(directory: Directory) -> dict[str, list[tuple[str, str | None]]]:
    """Assessing body → [(recipient person id, department id or None)]."""
    school = directory.school()
    out: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    if school is not None:
        for key, ref in school.responsible.items():
            name = "质量办" if key == "quality_office" else key.removeprefix("office:")
            if key == "quality_office" or key.startswith("office:"):
                if not out[name] or key == "quality_office":
                    out[name] = [(ref.id, None)]
    for dept in directory.of_kind(EntityKind.department):
        if "dean" in dept.responsible:
            out["二级学院"].append((dept.responsible["dean"].id, dept.id))
    return out


def assessment_summaries(
    store: WarningStore,
    rules: RuleSet,
    period: str,
    *,
    as_of: datetime,
    catalog: Catalog | None = None,
    body: str | None = None,
) -> list[Notice]:
    """The 考核性诊断 summaries of ``period`` (a term or a year) for each assessing body."""
    kind = period_kind(period)
    if kind not in ("term", "year"):
        raise ValueError(f"考核性诊断按学期或学年进行，周期须为学期（2025-2026-1）或年份（2026），实为 {period!r}")
    catalog = catalog or load_catalog()
    start, end = period_window(period)
    # a term covers the levels assessed per term; a year covers every level (the annual assessment)
    levels = {
        lvl: c.assessment.assessor
        for lvl, c in catalog.cadences.items()
        if kind == "year" or c.assessment.cadence == kind
    }
    directory = store.directory.load()
    with store.session() as s:
        rows = s.scalars(
            select(WarningRow)
            .where(WarningRow.level.in_([lvl.value for lvl in levels]))
            .where(WarningRow.opened_at < end)
            .where((WarningRow.closed_at.is_(None)) | (WarningRow.closed_at >= start))
            .order_by(WarningRow.id)
        ).all()
    bodies = _bodies(directory)
    # (body, department or None) → unit label → [open, overdue, closed, examples]
    table: dict[tuple[str, str | None], dict[str, list]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, []]))
    for w in rows:
        assessor = levels[Level(w.level)]
        if body and assessor != body:
            continue
        dept = directory.ancestor(w.entity_id, EntityKind.department)
        key: tuple[str, str | None]  # (body, department or None)
        if assessor == "质量办":
            rule = rules.rules.get(w.rule_id)
            key, unit = (assessor, None), (rule.office if rule and rule.office else "学校")
        elif assessor == "二级学院":
            if dept is None:
                continue
            key, unit = (assessor, dept.id), _label(directory, w.entity_id)
        else:
            key, unit = (assessor, None), (dept.name if dept else "学校")
        cell = table[key][unit]
        if w.status == "closed":
            cell[2] += 1
        elif _overdue(w, as_of):
            cell[1] += 1
            who = "" if assessor == "二级学院" else f"{_label(directory, w.entity_id)} "
            cell[3].append(f"{who}{w.rule_name} {Band(w.worst_band).zh}")
        else:
            cell[0] += 1
    out = []
    for (assessor, dept_id), units in sorted(table.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        for recipient, scope in bodies.get(assessor, []):
            if scope != dept_id:
                continue
            dept_entity = directory.get(dept_id) if dept_id is not None else None
            title = assessor if dept_id is None else (dept_entity.name if dept_entity else dept_id)
            o, d, c = (sum(u[i] for u in units.values()) for i in range(3))
            parts = [
                f"{title}：这是 {period} 的{KINDS['assessment']}汇总，由贵单位对所考核的 "
                f"{len(units)} 个单位进行。预警 {o + d + c} 条：未关闭 {o}、逾期 {d}、已关闭 {c}。",
                "",
            ]
            ranked = sorted(units.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
            for unit, (uo, ud, uc, ex) in ranked[:ROWS_SHOWN]:
                tail = f"（逾期：{'；'.join(ex[:3])}{' 等' if len(ex) > 3 else ''}）" if ex else ""
                parts.append(f"- {unit}：未关闭 {uo} · 逾期 {ud} · 已关闭 {uc}{tail}")
            if len(ranked) > ROWS_SHOWN:
                parts.append(f"- 另有 {len(ranked) - ROWS_SHOWN} 个单位")
            parts += ["", "请对逾期未改进的单位明确问题、限期改进（考核性诊断结果不发给被考核单位本人）。"]
            subject = f"【考核性诊断】{period} {title}：逾期 {d} 条、未关闭 {o} 条、已关闭 {c} 条"
            unit_key = f"{assessor}:{dept_id}" if dept_id else assessor
            out.append(
                Notice("assessment", period, unit_key, recipient, subject, mask_text("\n".join(parts)), o + d + c)
            )
    return out


def enqueue(store: WarningStore, notices: list[Notice], channels: tuple[str, ...], now: datetime) -> int:
    """Store each notice once per channel; a notice already stored (an earlier run) is skipped."""
    added = 0
    with store.session() as s, s.begin():
        have = {
            (r.kind, r.period, r.unit, r.recipient_id, r.channel)
            for r in s.scalars(
                select(DiagnosisNoticeRow).where(DiagnosisNoticeRow.period.in_({n.period for n in notices}))
            )
        }
        for n in notices:
            for ch in channels:
                if (n.kind, n.period, n.unit, n.recipient_id, ch) in have:
                    continue
                s.add(
                    DiagnosisNoticeRow(
                        kind=n.kind,
                        period=n.period,
                        unit=n.unit,
                        recipient_id=n.recipient_id,
                        channel=ch,
                        subject=n.subject[:200],
                        body=n.body,
                        status="pending",
                        attempts=0,
                        created_at=now,
                    )
                )
                added += 1
    return added


@dataclass
class Delivered:
    sent: int = 0
    retry_later: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def deliver(store: WarningStore, sinks: dict[str, Sink], now: datetime) -> Delivered:
    """Send the pending notices of the given channels through their sinks."""
    from zhengai.warnings.notify.outbox import contacts

    report = Delivered()
    with store.session() as s, s.begin():
        pending = s.scalars(
            select(DiagnosisNoticeRow)
            .where(DiagnosisNoticeRow.status == "pending", DiagnosisNoticeRow.channel.in_(sorted(sinks)))
            .order_by(DiagnosisNoticeRow.id)
        ).all()
        people = contacts(s, {r.recipient_id for r in pending})
        for row in pending:
            contact = people.get(row.recipient_id) or Contact(row.recipient_id)
            message = Message(row.subject, row.body, contact, (), now, kind="digest")
            row.attempts += 1
            try:
                sinks[row.channel].send(message)
            except RetryableSinkError as exc:
                row.last_error = str(exc)[:500]
                report.retry_later += 1
                report.errors.append(str(exc))
            except FatalSinkError as exc:
                row.status, row.last_error = "failed", str(exc)[:500]
                report.failed += 1
                report.errors.append(str(exc))
            except Exception as exc:  # noqa: BLE001 — a sink that breaks on a digest parks it, the rest go on
                log.exception("diagnosis notice #%s on %s failed", row.id, row.channel)
                row.status, row.last_error = "failed", type(exc).__name__
                report.failed += 1
                report.errors.append(type(exc).__name__)
            else:
                row.status, row.sent_at, row.last_error = "sent", now, None
                report.sent += 1
    return report


def run_diagnosis(
    store: str,
    command: str,
    period: str,
    *,
    notify: str | None = None,
    channels: tuple[str, ...] = (),
    body: str | None = None,
    rulebook: str | None = None,
    as_of: str | None = None,
    out: str | None = None,
) -> int:
    """``zhengai diagnose digest|assess``: build the notices; with ``notify`` deliver them through
    its channels, else print them."""
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.links import action_url, load_secret
    from zhengai.warnings.notify.config import load_notify_config

    now = datetime.fromisoformat(as_of).astimezone(UTC) if as_of else datetime.now(UTC)
    ws = WarningStore(store)
    rules = load_rulebook(rulebook)
    config = load_notify_config(Path(notify)) if notify else None
    secret = load_secret()
    base = config.links.base_url if config is not None else None

    def form_url(pid: str) -> str | None:
        if not (base and secret):
            return None
        expires = int((now + timedelta(days=35)).timestamp())
        return action_url(f"{base.rstrip('/')}{FORM_PATH}?period={period}", 0, pid, "diagnose", expires, secret)

    try:
        if command == "digest":
            notices = self_digests(ws, rules, period, as_of=now, form_url=form_url)
        else:
            notices = assessment_summaries(ws, rules, period, as_of=now, body=body)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if config is None:
        for n in notices:
            print(f"━━ {n.subject} → {n.recipient_id} ━━\n{n.body}\n")
        print(f"共 {len(notices)} 份（未发送：未指定 --notify）")
        return 0
    chosen = channels or tuple(config.channels)
    unknown = [c for c in chosen if c not in config.channels]
    if unknown:
        print(f"未知通道：{'、'.join(unknown)}；notify.yaml 中有：{'、'.join(config.channels)}", file=sys.stderr)
        return 2
    ws.create_schema()
    added = enqueue(ws, notices, chosen, now)
    sinks = {c: config.channels[c].build() for c in chosen}
    try:
        result = deliver(ws, sinks, now)
    finally:
        for sink in sinks.values():
            sink.close()
    print(
        f"{len(notices)} 份，新入队 {added}；已发送 {result.sent}，稍后重试 {result.retry_later}，失败 {result.failed}"
    )
    return 0 if not result.failed and not result.retry_later else 1
