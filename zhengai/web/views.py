"""What the pages show about a warning, as plain values for the templates (which escape them).
Personal numbers are masked here; evidence URLs are only ever http(s) (checked when stored, and
again here: anything else is shown as inert text, never as a link)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from zhengai.ingest.privacy import mask_student_id, mask_text
from zhengai.ingest.records import Band, EntityKind
from zhengai.warnings.improvements import effects_of, evidence_of
from zhengai.warnings.lifecycle import Status
from zhengai.warnings.messages import format_value
from zhengai.warnings.schema import VerdictRow

__all__ = ["details", "measures", "evidence", "effects", "day", "safe_url"]

CHINA = ZoneInfo("Asia/Shanghai")


def day(t: datetime | None) -> str:
    return f"{t.astimezone(CHINA):%Y-%m-%d}" if t else "—"


def safe_url(url: str) -> str | None:
    return url if isinstance(url, str) and url.lower().startswith(("http://", "https://")) else None


def _zh(enum, value: str) -> str:
    try:
        return enum(value).zh
    except ValueError:
        return value


def _thresholds(store, w) -> dict | None:
    with store.session() as s:
        row = s.scalars(
            select(VerdictRow.thresholds)
            .where(
                VerdictRow.rule_id == w.rule_id,
                VerdictRow.entity_id == w.entity_id,
                VerdictRow.period == w.last_period,
            )
            .order_by(VerdictRow.id.desc())
            .limit(1)
        ).first()
    return row if isinstance(row, dict) else None


def entity_label(directory, w) -> str:
    entity = directory.get(w.entity_id)
    student = (entity.kind is EntityKind.student) if entity else w.level == "student"
    ref = mask_student_id(w.entity_id) if student else w.entity_id
    return mask_text(f"{entity.kind.zh} {entity.name}（{ref}）" if entity else ref)


def details(store, rules, directory, w) -> list[tuple[str, str]]:
    rule = rules.rules.get(w.rule_id)
    unit = rule.unit if rule else ""
    th = _thresholds(store, w) or {}
    target = th.get("target", rule.target if rule else None)
    standard = th.get("standard", rule.standard if rule else None)
    warn = th.get("warning", rule.warning if rule else None)
    rows = [
        ("预警编号", f"W{w.id}"),
        ("指标", w.rule_name),
        ("对象", entity_label(directory, w)),
        ("当前值", f"{format_value(w.value, unit)}（统计周期 {w.last_period}）"),
        (
            "阈值",
            f"目标值 {format_value(target, unit)} · 标准值 {format_value(standard, unit)}"
            f" · 预警值 {format_value(warn, unit)}",
        ),
        ("级别 / 状态", f"{_zh(Band, w.band)} · {_zh(Status, w.status)}"),
        ("改进期限", day(w.due_date)),
    ]
    return [(k, mask_text(str(v))) for k, v in rows]


def measures(store, warning_id: int) -> list[dict]:
    return [
        dict(
            id=i.id,
            owner=i.owner_id,
            at=day(i.created_at),
            due=day(i.due_date),
            text=mask_text(i.text),
            effect=mask_text(i.effect) if i.effect else None,
        )
        for i in store.read.improvements(warning_id)
    ]


def evidence(store, warning_id: int) -> list[dict]:
    return [
        dict(url=e.url, href=safe_url(e.url), note=mask_text(e.note), by=e.added_by, at=day(e.added_at))
        for e in evidence_of(store, warning_id)
    ]


def effects(service, warning_id: int) -> list[dict]:
    """The effect stored with the review; before the review, the effect measured now (so the
    reviewer sees it before deciding)."""
    stored = [
        dict(
            at=day(e.measured_at),
            by=e.reviewed_by,
            summary=mask_text(e.summary),
            live=False,
            series=[(p, v) for p, v in (e.detail or {}).get("series", [])],
        )
        for e in effects_of(service.store, warning_id)
    ]
    if stored:
        return stored
    from zhengai.warnings.effects import measure

    live = measure(service, warning_id)
    return [dict(at=None, by=None, summary=mask_text(live.summary), live=True, series=live.series)] if live else []
