"""Charts drawn on the server as inline SVG (no script, no CDN; the pages' CSP allows neither).
Every text that reaches the markup is escaped here; the templates insert the result as markup."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["BAND_COLOURS", "trend_svg", "percentile_svg"]

BAND_COLOURS = {"excellent": "#389e0d", "normal": "#1677ff", "yellow": "#d48806", "red": "#d4380d", "stale": "#999999"}
_LINES = (("target", "目标", "#389e0d"), ("standard", "标准", "#595959"), ("warning", "预警", "#d48806"))
W, H, LEFT, RIGHT, TOP, BOTTOM = 340, 130, 8, 62, 10, 24


def _fmt(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def trend_svg(
    points: Sequence[tuple[str, float | None, str]], thresholds: dict[str, float | None], title: str
) -> Markup:
    """A line over the recent periods, each point in its band's colour, with the 目标/标准/预警
    values as dashed lines labelled on the right."""
    values = [v for _, v, _ in points if v is not None]
    lines = {k: v for k, v in thresholds.items() if v is not None}
    if not values:
        return Markup('<p class="muted">暂无数据</p>')
    lo, hi = min(values + list(lines.values())), max(values + list(lines.values()))
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    step = (W - LEFT - RIGHT) / max(1, len(points) - 1)

    def x(i: int) -> float:
        return LEFT + (i * step if len(points) > 1 else (W - LEFT - RIGHT) / 2)

    def y(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM)

    parts = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for key, label, colour in _LINES:
        if key in lines:
            yy = y(lines[key])
            parts.append(
                f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{colour}" '
                'stroke-dasharray="4 3" stroke-width="1"/>'
            )
            parts.append(
                f'<text x="{W - RIGHT + 4}" y="{yy + 4:.1f}" font-size="10" fill="{colour}">'
                f"{label} {escape(_fmt(lines[key]))}</text>"
            )
    path = [(x(i), y(v)) for i, (_, v, _) in enumerate(points) if v is not None]
    if len(path) > 1:
        d = " ".join(f"{'M' if i == 0 else 'L'}{px:.1f},{py:.1f}" for i, (px, py) in enumerate(path))
        parts.append(f'<path d="{d}" fill="none" stroke="#1677ff" stroke-width="2"/>')
    for i, (period, v, band) in enumerate(points):
        if v is None:
            continue
        colour = BAND_COLOURS.get(band, "#999999")
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="{colour}" data-band="{escape(band)}">'
            f"<title>{escape(period)}：{escape(_fmt(v))}</title></circle>"
        )
    first, last = points[0][0], points[-1][0]
    parts.append(f'<text x="{LEFT}" y="{H - 6}" font-size="10" fill="#666">{escape(first)}</text>')
    if len(points) > 1:
        parts.append(
            f'<text x="{W - RIGHT}" y="{H - 6}" font-size="10" fill="#666" text-anchor="end">{escape(last)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def percentile_svg(rows: Sequence[tuple[str, float | None, int]]) -> Markup:
    """One bar per comparison (院内, 全校): the percentile and how many peers it is among."""
    height = 22 * len(rows) + 4
    parts = [f'<svg class="chart" viewBox="0 0 {W} {height}" width="100%" role="img" aria-label="百分位">']
    for i, (label, pct, n) in enumerate(rows):
        top = 4 + i * 22
        parts.append(f'<text x="0" y="{top + 13}" font-size="11" fill="#333">{escape(label)}</text>')
        parts.append(f'<rect x="40" y="{top}" width="200" height="16" fill="#f0f0f0" rx="3"/>')
        if pct is not None:
            parts.append(
                f'<rect x="40" y="{top}" width="{2 * pct:.1f}" height="16" fill="#1677ff" rx="3" data-pct="{pct:.1f}"/>'
            )
        text = f"{pct:.0f}%（{n} 个中）" if pct is not None else "无可比对象"
        parts.append(f'<text x="246" y="{top + 13}" font-size="11" fill="#333">{escape(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
