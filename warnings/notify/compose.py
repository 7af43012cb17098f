"""Messages people act on: notices and grouped messages from the editable templates.

Templates live in ``warnings/templates/`` and are Chinese; the quality office edits them.
Format: ``<!-- … -->`` blocks are comments for the editor; in templates that have a subject
(``group.md``, ``digest.md``, ``reminder.md``) the first line is the subject
and the rest the body. Placeholders are ``$name``; a line whose placeholder has no value (no
trend yet, no link base URL) is left out whole, so a template never shows a dangling label.

Every text that leaves here passes ``mask_text`` (student IDs, ID-card and mobile numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from zhengai.ingest.privacy import mask_text
from zhengai.ingest.records import Band
from zhengai.warnings.links import LINK_TTL, action_url, load_secret
from zhengai.warnings.messages import fill, format_value, load_template
from zhengai.warnings.notify.base import Contact, Link, Message, Notice
from zhengai.warnings.notify.config import LinkSettings
from zhengai.warnings.notify.pending import Pending

__all__ = ["TEMPLATES", "Composer", "NoticeTemplate", "load", "trend_text"]

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
_FROM_ENV = object()


@dataclass(frozen=True)
class NoticeTemplate:
    subject: str
    body: str


def load(name: str, directory: Path | None = None, *, with_subject: bool = True) -> NoticeTemplate:
    text = load_template(Path(directory or TEMPLATES) / name).template.strip("\n")
    if not with_subject:
        return NoticeTemplate("", text)
    subject, _, body = text.partition("\n")
    return NoticeTemplate(subject.strip(), body.lstrip("\n"))


def trend_text(values: Sequence[float], unit: str) -> str | None:
    """``92% → 88% → 80%（连续 2 期下降）`` from the last few values, oldest first."""
    if len(values) < 2:
        return None
    text = " → ".join(format_value(v, unit) for v in values)
    run, rising = 0, None
    for a, b in zip(reversed(values[:-1]), reversed(values[1:]), strict=True):
        step = b > a if b != a else None
        if step is None or (rising is not None and step != rising):
            break
        rising, run = step, run + 1
    if run >= 2:
        text += f"（连续 {run} 期{'上升' if rising else '下降'}）"
    return text


def _band_label(band: str) -> str:
    try:
        b = Band(band)
    except ValueError:
        return band
    return b.zh if b.is_breach else "已恢复/关闭"


def _mask(text: str, links: Sequence[Link]) -> str:
    """``mask_text`` that leaves the action links whole: a signed link's expiry is a 10-digit
    number that would otherwise read as a student ID (the links carry no personal data beyond
    the recipient's own person id)."""
    keep: dict[str, str] = {}
    for i, url in enumerate(dict.fromkeys(link.url for link in links)):
        keep[f"\x00L{i}\x00"] = url
        text = text.replace(url, f"\x00L{i}\x00")
    text = mask_text(text)
    for placeholder, url in keep.items():
        text = text.replace(placeholder, url)
    return text


class Composer:
    def __init__(
        self,
        links: LinkSettings,
        tz: ZoneInfo,
        *,
        unit_of: Callable[[str], str] | None = None,
        template_dir: Path | None = None,
        link_secret: bytes | str | None | object = _FROM_ENV,
        link_ttl: timedelta = LINK_TTL,
    ):
        self.links = links
        # With a secret (default: $ZHENGAI_LINK_SECRET / $ZHENGAI_LINK_SECRET_FILE) action links are
        # signed for the notice's recipient (warnings/links.py); without one they stay unsigned.
        self.link_secret = load_secret() if link_secret is _FROM_ENV else link_secret
        self.link_ttl = link_ttl
        self.tz = tz
        self.unit_of = unit_of or (lambda rule_id: "")
        self.footer = load("notice.md", template_dir, with_subject=False)
        self.group = load("group.md", template_dir)
        self.digest = load("digest.md", template_dir)

    def _url(self, p: Pending, path: str, action: str) -> str:
        url: str = self.links.url(path, warning_id=p.warning_id)  # type: ignore[assignment]
        secret = self.link_secret
        if not isinstance(secret, (bytes, str)) or p.recipient_id is None or p.warning_id is None:
            return url
        # expiry from when the notice was queued: a retried send carries the same link
        return action_url(url, p.warning_id, p.recipient_id, action, p.admitted_at + self.link_ttl, secret)

    def _mine(self, recipient_id: str | None, at: datetime, personal: bool) -> str | None:
        """我的预警: signed for the recipient in a personal channel; bare (asks for identity) in a group."""
        url = self.links.url(self.links.mine) if self.links.base_url else None
        secret = self.link_secret
        if url is None or not personal or not isinstance(secret, (bytes, str)) or recipient_id is None:
            return url
        return action_url(url, 0, recipient_id, "mine", at + self.link_ttl, secret)

    def _links(self, p: Pending, personal: bool = True) -> tuple[Link, ...]:
        if p.warning_id is None or not self.links.base_url:
            return ()
        if not personal:
            # a group robot: anyone in the group reads it, so no link that acts as the recipient
            return (Link("在“我的预警”中处理", self.links.url(self.links.mine)),)  # type: ignore[arg-type]
        improve = self._url(p, self.links.improve, "improvement")
        if p.closing:
            return (Link("登记改进成效", improve),)
        return (Link("确认预警", self._url(p, self.links.ack, "ack")), Link("登记改进措施", improve))

    def notice(self, p: Pending, trend: Sequence[float] = (), *, personal: bool = True) -> Notice:
        links = self._links(p, personal)
        values = {
            "trend": trend_text(trend, self.unit_of(p.rule_id or "")) if trend else None,
            "warning_ref": f"W{p.warning_id}" if p.warning_id is not None else None,
            "actions": " · ".join(f"[{link.title}]({link.url})" for link in links) or None,
        }
        body = p.body.rstrip()
        with_links = _mask(body + "\n" + fill(self.footer.body, values), links)
        bare = mask_text(body + "\n" + fill(self.footer.body, values | {"actions": None}))
        return Notice(p.outbox_id, p.warning_id, p.kind, p.band, mask_text(p.subject), with_links, links, bare)

    def message(
        self,
        notices: Sequence[Notice],
        *,
        recipient: Contact | None,
        digest: bool,
        at: datetime,
        buttons: bool,
        personal: bool = True,
    ) -> Message:
        """One message for one recipient. ``buttons``: the sink shows ``Message.links`` as
        buttons — a single notice then leaves its action line out of the text. ``personal``:
        False for a group robot (the 我的预警 link is then not signed for the recipient)."""
        if len(notices) == 1 and not digest:
            n = notices[0]
            if buttons and n.links:
                return Message(n.subject, n.markdown_for_buttons, recipient, (n,), at, links=n.links)
            return Message(n.subject, n.markdown, recipient, (n,), at)
        counts: dict[str, int] = {}
        for n in notices:
            label = _band_label(n.band)
            counts[label] = counts.get(label, 0) + 1
        mine = self._mine(recipient.person_id if recipient else None, at, personal)
        items = []
        for i, n in enumerate(notices, 1):
            first, _, rest = n.markdown.partition("\n")
            items.append(f"**{i}. {first}**\n{rest}".rstrip())
        values = {
            "name": (recipient.name if recipient and recipient.name else "质量办"),
            "count": len(notices),
            "summary": " · ".join(f"{label} {k} 条" for label, k in counts.items()),
            "items": "\n\n".join(items),
            "mine": f"[我的预警]({mine})" if mine else None,
            "date": f"{at.astimezone(self.tz):%Y-%m-%d}",
        }
        template = self.digest if digest else self.group
        links = (Link("查看我的预警", mine),) if buttons and mine else ()
        return Message(
            mask_text(fill(template.subject, values)),
            _mask(
                fill(template.body, values),
                [link for n in notices for link in n.links] + ([Link("", mine)] if mine else []),
            ),
            recipient,
            tuple(notices),
            at,
            links=links,
            kind="digest" if digest else "group",
        )
