"""The small markdown the templates use, as HTML and as plain text (for email).

Only what the notification templates write: ``#``/``##``/``###`` headings, ``- `` list items,
``**bold**``, ``[title](url)`` links, ``---`` rules and blank-line paragraphs. Everything else
is text and is HTML-escaped.
"""

from __future__ import annotations

import html
import re

__all__ = ["to_html", "to_plain"]

_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_HEAD = re.compile(r"^(#{1,3})\s+(.*)$")


def _inline(text: str) -> str:
    out, last = [], 0
    for m in _LINK.finditer(text):
        out.append(_BOLD.sub(r"<strong>\1</strong>", html.escape(text[last : m.start()])))
        out.append(f'<a href="{html.escape(m.group(2), quote=True)}">{html.escape(m.group(1))}</a>')
        last = m.end()
    out.append(_BOLD.sub(r"<strong>\1</strong>", html.escape(text[last:])))
    return "".join(out)


def to_html(markdown: str, *, title: str = "") -> str:
    parts: list[str] = []
    in_list = False
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            parts.append("<p>" + "<br>".join(paragraph) + "</p>")
            paragraph.clear()

    for raw in markdown.splitlines():
        line = raw.rstrip()
        item = line.lstrip()
        if item.startswith("- "):
            end_paragraph()
            if not in_list:
                parts.append("<ul>")
                in_list = True
            parts.append(f"<li>{_inline(item[2:])}</li>")
            continue
        if in_list:
            parts.append("</ul>")
            in_list = False
        head = _HEAD.match(line)
        if head:
            end_paragraph()
            level = len(head.group(1)) + 1  # h2–h4: the subject is the h1
            parts.append(f"<h{level}>{_inline(head.group(2))}</h{level}>")
        elif line.strip() == "---":
            end_paragraph()
            parts.append("<hr>")
        elif not line.strip():
            end_paragraph()
        else:
            paragraph.append(_inline(line))
    end_paragraph()
    if in_list:
        parts.append("</ul>")
    body = "\n".join(parts)
    heading = f'<h1 style="font-size:18px">{html.escape(title)}</h1>\n' if title else ""
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8"></head>\n'
        "<body style=\"font-family:'PingFang SC','Microsoft YaHei',sans-serif;font-size:14px;line-height:1.6\">\n"
        f"{heading}{body}\n</body></html>\n"
    )


def to_plain(markdown: str) -> str:
    """Links become ``title：url`` (a mail client without HTML still shows where to click)."""
    text = _LINK.sub(lambda m: f"{m.group(1)}：{m.group(2)}", markdown)
    text = _BOLD.sub(r"\1", text)
    return "\n".join(_HEAD.sub(r"\2", line) for line in text.splitlines()) + "\n"
