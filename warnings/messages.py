"""Chinese notification text from an editable template (``templates/transition.md``).

The quality office edits the template; placeholders are ``$name`` (string.Template); a line
whose placeholder has no value (e.g. the 督办 line of a warning that was not escalated) is left
out whole (``fill``). Personal data is masked here: student IDs in references, and a final pass
masks any mobile, ID-card or student number that slipped into free text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from string import Template
from zoneinfo import ZoneInfo

from zhengai.ingest.directory import Directory
from zhengai.ingest.privacy import mask_student_id, mask_text
from zhengai.ingest.records import EntityKind, Thresholds
from zhengai.rules.model import Rule
from zhengai.warnings.lifecycle import Transition, TransitionKind
from zhengai.warnings.routing import Recipient

__all__ = ["render", "load_template", "format_value", "fill", "DEFAULT_TEMPLATE"]

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "transition.md"


_COMMENT = re.compile(r"<!--.*?-->\s*\n?", re.S)
_PLACEHOLDER = re.compile(r"\$(?:(\w+)|\{(\w+)\})")


def load_template(path: Path | None = None) -> Template:
    """A template file; ``<!-- … -->`` blocks are notes for the people who edit it."""
    return Template(_COMMENT.sub("", (path or DEFAULT_TEMPLATE).read_text(encoding="utf-8")))


def fill(template: str | Template, values: Mapping[str, object]) -> str:
    """Substitute ``values``; drop every line that names a placeholder whose value is None."""
    text = template.template if isinstance(template, Template) else template
    out = []
    for line in text.splitlines():
        names = {a or b for a, b in _PLACEHOLDER.findall(line)}
        if any(n in values and values[n] is None for n in names):
            continue
        out.append(Template(line).safe_substitute({k: "" if v is None else v for k, v in values.items()}))
    return "\n".join(out)


def format_value(v, unit: str) -> str:
    """A value as people read it: 82.5%, 是/否, a range, — for none."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, (tuple, list)):
        return f"{format_value(v[0], unit)}–{format_value(v[1], unit)}"
    return (f"{v:.2f}".rstrip("0").rstrip(".")) + unit


_CHINA = ZoneInfo("Asia/Shanghai")
_CLOSING = {"recovered", "reviewed", "false_positive", "cleared", "resolved"}


def _action(kind: TransitionKind, due: datetime | None) -> str:
    due = due.astimezone(_CHINA) if due is not None else None  # people read dates on the campus clock
    k = kind.value
    if k in ("opened", "severity_up", "relapsed"):
        when = f"请于 {due:%Y-%m-%d} 前" if due else "请尽快"
        return f"{when}分析原因、制定改进措施并登记（限期改进）。"
    if k == "severity_down":
        return "预警已降级，请继续落实改进措施。"
    if k == "escalated":
        when = f"改进期限 {due:%Y-%m-%d} 已过" if due else "已逾期"
        return f"{when}、指标仍未恢复：请督促落实改进措施并登记改进成效，必要时协调资源。"
    if k == "stale":
        return "超过数据时限没有新数据：请核查数据来源（系统对接、数据报送）是否中断。"
    if k in _CLOSING:
        return "指标已恢复，请登记改进成效（须为已显现的实际效果），待复评关闭。"
    return "请关注并按要求处理。"


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
    escalated_from: Recipient | None = None,
    level: int = 0,
) -> tuple[str, str]:
    """Returns (subject, body). For an escalation, ``recipient`` is who it escalates to and
    ``escalated_from`` the responsible person it escalates from."""
    entity = directory.get(entity_id)
    kind = entity.kind if entity else None
    ref = mask_student_id(entity_id) if kind is EntityKind.student else entity_id
    names = [parent.name for e in directory.lineage(entity_id)[1:-1] if (parent := directory.get(e))]
    th = thresholds
    applied = ""
    if th is not None and len(th.applied_from) > 1:
        applied = "（含" + "、".join(_name(directory, e) for e in th.applied_from[1:]) + "的调整）"
    band = transition.to_band
    over = transition.kind.value in _CLOSING or not band.is_breach
    escalation = None
    owner = recipient
    if transition.kind.value == "escalated":
        owner = escalated_from
        to = f"（{recipient.role_zh} {recipient.person.name}）" if recipient else ""
        escalation = f"逾期未改进，升级至第 {level} 级督办{to}" if level else f"逾期未改进，升级督办{to}"
    values = dict(
        band_zh="已恢复" if over else band.zh,
        kind_zh=transition.kind.zh,
        entity_kind_zh=kind.zh if kind else rule.level.zh,
        entity_name=entity.name if entity else entity_id,
        entity_ref=ref,
        path=("· " + " / ".join(names)) if names else "",
        rule_name=rule.name,
        value=format_value(transition.value, rule.unit),
        period=transition.period,
        target=format_value(th.target if th else rule.target, rule.unit),
        standard=format_value(th.standard if th else rule.standard, rule.unit),
        warning=format_value(th.warning if th else rule.warning, rule.unit),
        applied=applied,
        reason=transition.reason,
        role_zh=owner.role_zh if owner else "质量办",
        person_name=owner.person.name if owner else "（未配置负责人）",
        fallback="（原负责人未配置，由其代收）" if owner and owner.fallback else "",
        action=_action(transition.kind, due),
        escalation=escalation,
    )
    body = mask_text(fill(template, values))
    subject = mask_text(
        f"【{values['band_zh']}】{values['entity_kind_zh']}「{values['entity_name']}」{rule.name}{transition.kind.zh}"
    )
    return subject, body


def _name(directory, entity_id: str) -> str:
    entity = directory.get(entity_id)
    return entity.name if entity else entity_id
