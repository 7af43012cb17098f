"""Chinese notification text from an editable template (``templates/transition.md``).

The quality office edits the template; placeholders are ``$name`` (string.Template). Personal
data is masked here: student IDs in references, and a final pass masks any mobile, ID-card or
student number that slipped into free text.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from string import Template

from zhengai.ingest.directory import Directory
from zhengai.ingest.privacy import mask_student_id, mask_text
from zhengai.ingest.records import Band, EntityKind, Thresholds
from zhengai.rules.model import Rule
from zhengai.warnings.lifecycle import Transition, TransitionKind
from zhengai.warnings.routing import Recipient

__all__ = ["render", "load_template", "DEFAULT_TEMPLATE"]

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "transition.md"


def load_template(path: Path | None = None) -> Template:
    return Template((path or DEFAULT_TEMPLATE).read_text(encoding="utf-8"))


def _fmt(v, unit: str) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, (tuple, list)):
        return f"{_fmt(v[0], unit)}–{_fmt(v[1], unit)}"
    return (f"{v:.2f}".rstrip("0").rstrip(".")) + unit


def _action(kind: TransitionKind, due: datetime | None) -> str:
    if kind in (TransitionKind.opened, TransitionKind.severity_up):
        when = f"请于 {due:%Y-%m-%d} 前" if due else "请尽快"
        return f"{when}分析原因、制定改进措施并登记（限期改进）。"
    if kind is TransitionKind.severity_down:
        return "预警已降级，请继续落实改进措施。"
    return "指标已恢复，请登记改进成效（须为已显现的实际效果）。"


def render(
    template: Template,
    *,
    rule: Rule,
    transition: Transition,
    thresholds: Thresholds | None,
    entity_id: str,
    directory: Directory,
    recipient: Recipient | None,
    due: datetime | None,
) -> tuple[str, str]:
    """Returns (subject, body)."""
    entity = directory.get(entity_id)
    kind = entity.kind if entity else None
    ref = mask_student_id(entity_id) if kind is EntityKind.student else entity_id
    names = [directory.get(e).name for e in directory.lineage(entity_id)[1:-1] if directory.get(e)]
    th = thresholds
    applied = ""
    if th is not None and len(th.applied_from) > 1:
        applied = "（含" + "、".join(directory.get(e).name if directory.get(e) else e for e in th.applied_from[1:]) + "的调整）"
    band = transition.to_band
    values = dict(
        band_zh=band.zh if band is not Band.normal and band is not Band.excellent else "已恢复",
        kind_zh=transition.kind.zh,
        entity_kind_zh=kind.zh if kind else rule.level.zh,
        entity_name=entity.name if entity else entity_id,
        entity_ref=ref,
        path=("· " + " / ".join(names)) if names else "",
        rule_name=rule.name,
        value=_fmt(transition.value, rule.unit),
        period=transition.period,
        target=_fmt(th.target if th else rule.target, rule.unit),
        standard=_fmt(th.standard if th else rule.standard, rule.unit),
        warning=_fmt(th.warning if th else rule.warning, rule.unit),
        applied=applied,
        reason=transition.reason,
        role_zh=recipient.role_zh if recipient else "质量办",
        person_name=recipient.person.name if recipient else "（未配置负责人）",
        fallback="（原负责人未配置，由其代收）" if recipient and recipient.fallback else "",
        action=_action(transition.kind, due),
    )
    body = mask_text(template.safe_substitute(values))
    subject = mask_text(f"【{values['band_zh']}】{values['entity_kind_zh']}「{values['entity_name']}」{rule.name}{transition.kind.zh}")
    return subject, body
