"""The improve half of the loop over the warning store: what a review needs to know, evidence
(支撑材料), link revocation, and the reads behind 我的预警 and ``warnings show``.

Kept beside ``store.py`` rather than in it (one class, one reason to change): these functions
take the store and use its sessions; they write only the tables of ``improvement_schema.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import func, select

from zhengai.warnings.improvement_schema import EffectRow, EvidenceRow, LinkRevocationRow
from zhengai.warnings.lifecycle import LIVE, Status, TransitionKind
from zhengai.warnings.schema import ImprovementRow, WarningEventRow, WarningRow

if TYPE_CHECKING:
    from zhengai.warnings.store import WarningStore

__all__ = [
    "EvidenceError",
    "Evidence",
    "check_evidence_url",
    "review_facts",
    "add_evidence",
    "evidence_of",
    "revoke_links",
    "revoked_before",
    "allowed_actions",
    "ACTION_ZH",
    "MAX_EVIDENCE",
]

MAX_EVIDENCE = 10
MAX_URL = 1000


class EvidenceError(ValueError):
    """An evidence link that is not an http(s) URL (``javascript:``, ``data:``, a bare word …)."""


@dataclass(frozen=True)
class Evidence:
    url: str
    note: str
    added_by: str
    added_at: datetime | None
    improvement_id: int | None


def check_evidence_url(url: str) -> str:
    """The URL, stripped, when it is a plain http(s) link; ``EvidenceError`` (Chinese first)
    otherwise. Only these are ever stored, so a page can render them as links."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or len(url) > MAX_URL
        or any(c.isspace() or ord(c) < 32 for c in url)
    ):
        raise EvidenceError("支撑材料须为 http:// 或 https:// 开头的链接 (evidence must be an http(s) link)")
    return url


def review_facts(store: WarningStore, warning_id: int) -> tuple[int, bool]:
    """(measures recorded, whether 质量办 waived them) for the warning's current episode."""
    with store.session() as s:
        measures = (
            s.scalar(select(func.count()).select_from(ImprovementRow).where(ImprovementRow.warning_id == warning_id))
            or 0
        )
        waived = (
            s.scalar(
                select(func.count())
                .select_from(WarningEventRow)
                .where(WarningEventRow.warning_id == warning_id, WarningEventRow.kind == TransitionKind.waived.value)
            )
            or 0
        )
    return measures, waived > 0


def add_evidence(
    store: WarningStore, warning_id: int, urls: Sequence[str], *, by: str, at: datetime, note: str = ""
) -> list[int]:
    """Attach evidence links to a live warning (and to its latest measure, if any)."""
    clean = [check_evidence_url(u) for u in urls if u and u.strip()]
    if not clean:
        raise EvidenceError("请至少提供一个支撑材料链接 (no evidence link given)")
    with store.session() as s, s.begin():
        w = s.get(WarningRow, warning_id)
        if w is None:
            raise KeyError(f"no warning #{warning_id}")
        if Status(w.status) not in LIVE:
            raise EvidenceError(f"{Status(w.status).zh}的预警不能再补充支撑材料 (the warning is {w.status})")
        count = s.scalar(select(func.count()).select_from(EvidenceRow).where(EvidenceRow.warning_id == warning_id)) or 0
        if count + len(clean) > MAX_EVIDENCE * 5:
            raise EvidenceError(f"支撑材料过多（最多 {MAX_EVIDENCE * 5} 个） (too many evidence links)")
        latest = s.scalar(
            select(ImprovementRow.id)
            .where(ImprovementRow.warning_id == warning_id)
            .order_by(ImprovementRow.id.desc())
            .limit(1)
        )
        rows = [
            EvidenceRow(
                warning_id=warning_id, improvement_id=latest, url=u, note=note.strip()[:500], added_by=by, added_at=at
            )
            for u in clean
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def evidence_of(store: WarningStore, warning_id: int) -> list[Evidence]:
    """Every evidence link of a warning: those given with each measure, then those added later."""
    out: list[Evidence] = []
    with store.session() as s:
        for imp in s.scalars(
            select(ImprovementRow).where(ImprovementRow.warning_id == warning_id).order_by(ImprovementRow.id)
        ):
            out += [Evidence(u, "", imp.owner_id, imp.created_at, imp.id) for u in (imp.evidence or [])]
        for e in s.scalars(select(EvidenceRow).where(EvidenceRow.warning_id == warning_id).order_by(EvidenceRow.id)):
            out.append(Evidence(e.url, e.note, e.added_by, e.added_at, e.improvement_id))
    return out


def effects_of(store: WarningStore, warning_id: int) -> list[EffectRow]:
    with store.session() as s:
        return list(s.scalars(select(EffectRow).where(EffectRow.warning_id == warning_id).order_by(EffectRow.id)))


# --- signed links ---------------------------------------------------------------------------------


def revoke_links(store: WarningStore, person_id: str, *, by: str, reason: str, at: datetime) -> None:
    """Refuse every link this person was sent before ``at`` (a lost phone, a forwarded message)."""
    if len(reason.strip()) < 2:
        raise ValueError("撤销链接须写明原因 (a revocation needs a reason)")
    with store.session() as s, s.begin():
        s.add(LinkRevocationRow(person_id=person_id, revoked_before=at, revoked_by=by, reason=reason.strip()))


def revoked_before(store: WarningStore, person_id: str) -> datetime | None:
    """The latest revocation time for a person's links, or None."""
    with store.session() as s:
        return s.scalar(
            select(func.max(LinkRevocationRow.revoked_before)).where(LinkRevocationRow.person_id == person_id)
        )


# --- what a person may do ------------------------------------------------------------------------

ACTION_ZH = {
    "ack": "确认预警",
    "improvement": "登记改进措施",
    "evidence": "补充支撑材料",
    "review": "复评",
    "waive": "免于登记改进措施",
}


def allowed_actions(
    status: str, *, acknowledged: bool, holder: bool, assessor: bool, quality_office: bool = False
) -> list[str]:
    """The actions a person may take on a warning in ``status`` (keys of ``ACTION_ZH``)."""
    st = Status(status)
    out: list[str] = []
    if holder:
        if st in (Status.open, Status.escalated) or (st is Status.recovered and not acknowledged):
            out.append("ack")
        if st in (Status.open, Status.acknowledged, Status.improving, Status.escalated, Status.recovered):
            out += ["improvement", "evidence"]
    if quality_office and st in (
        Status.acknowledged,
        Status.improving,
        Status.escalated,
        Status.recovered,
        Status.open,
    ):
        out.append("waive")
    if assessor and st is Status.recovered:
        out.append("review")
    return out


def warnings_of(store: WarningStore, ids: Iterable[int]) -> list[WarningRow]:
    ids = list(ids)
    with store.session() as s:
        return list(s.scalars(select(WarningRow).where(WarningRow.id.in_(ids)).order_by(WarningRow.id))) if ids else []
