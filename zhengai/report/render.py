"""The 自我诊改报告 written out: Markdown, Word (.docx, for people to complete, sign and submit) and
Excel (.xlsx). The three carry the same table (附件4 二、自我诊断与改进报告表): 诊断项目 · 诊断要素 ·
自我诊断意见 · 改进措施 · 改进效果, the header 部门名称, the signature lines 报告人/部门负责人 with
dates (004:1085–1087), and the length checks (字数核对). Personal data is masked throughout."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from zhengai.ingest.privacy import mask_text
from zhengai.report.selfreport import ITEM_LIMIT, SelfReport, today_cn

__all__ = ["TABLE_HEADER", "render_markdown", "render_docx", "render_xlsx", "write_report"]

TABLE_HEADER = ("诊断项目", "诊断要素", "自我诊断意见", "改进措施", "改进效果")


def _title(r: SelfReport) -> str:
    if r.unit.kind in ("school", "department", "office"):
        return f"{r.unit.name}内部质量保证体系自我诊改报告"
    return f"{r.unit.name}（{r.unit.kind_zh}）自我诊改报告"


def _rows(r: SelfReport) -> list[tuple[str, str, str, str, str]]:
    out = []
    last_project = None
    for row in r.rows:
        el = row.element
        project = el.project_label if el.project_label != last_project else ""
        last_project = el.project_label
        out.append(
            (
                project,
                el.label,
                mask_text(row.opinion_text),
                mask_text(row.measures_text),
                mask_text(row.effects_text),
            )
        )
    return out


def _signature_lines(r: SelfReport) -> list[str]:
    signer = f"（{r.signer}）" if r.signer else ""
    return [
        "报 告 人（签字）：__________    年    月    日",
        f"部门负责人（签字）：__________{signer}    年    月    日",
    ]


def _requirements(r: SelfReport) -> list[str]:
    low, high = r.unit.limit
    rule = f"{low}—{high} 字" if low else f"{high} 字以内"
    return [
        f"{r.unit.kind_zh}自我诊改报告要求 {rule}；"
        f"每一诊断要素的改进措施、改进效果各不超过 {ITEM_LIMIT} 字（004 附件4 填写要求）。",
        "改进效果指实施改进措施之后已经显现的实际效果，不是预测或估计成效；措施尚未实施的已注明。",
    ]


def render_markdown(r: SelfReport) -> str:
    out = [
        f"# {_title(r)}",
        "",
        f"部门名称：{r.unit.name}（{r.unit.kind_zh}）　诊改周期：{r.period}　统计至：{today_cn(r.as_of):%Y-%m-%d}",
        "",
        "## 一、自我诊改工作概述",
        "",
        r.overview,
        "",
        "## 二、自我诊断与改进报告表",
        "",
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|---|---|---|---|---|",
    ]
    for cells in _rows(r):
        out.append("| " + " | ".join(c.replace("|", "｜").replace("\n", "<br>") for c in cells) + " |")
    out += ["", *_signature_lines(r), "", "## 字数核对", ""]
    out += [f"- {'✓' if c.ok else '✗'} {c.text()}" for c in r.checks]
    out += ["", "填写要求：", *[f"- {t}" for t in _requirements(r)], ""]
    return mask_text("\n".join(out))


def render_docx(r: SelfReport) -> bytes:
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt

    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "SimSun"
    style.font.size = Pt(10.5)
    style.element.rPr.rFonts.set(qn("w:eastAsia"), "宋体")
    section = doc.sections[0]
    section.header.paragraphs[0].text = f"部门名称：{r.unit.name}"
    heading = doc.add_heading(_title(r), level=1)
    heading.alignment = WD_ALIGN_PARAGRAPH.CENTER
    doc.add_paragraph(
        f"部门名称：{r.unit.name}（{r.unit.kind_zh}）　诊改周期：{r.period}　统计至：{today_cn(r.as_of):%Y-%m-%d}"
    )
    doc.add_heading("一、自我诊改工作概述", level=2)
    doc.add_paragraph(mask_text(r.overview))
    doc.add_heading("二、自我诊断与改进报告表", level=2)
    rows = _rows(r)
    table = doc.add_table(rows=1 + len(rows), cols=len(TABLE_HEADER))
    table.style = "Table Grid"
    for i, h in enumerate(TABLE_HEADER):
        table.rows[0].cells[i].text = h
    for n, cells in enumerate(rows, start=1):
        for i, text in enumerate(cells):
            table.rows[n].cells[i].text = text
    for i, width in enumerate((Cm(2.2), Cm(2.4), Cm(7.0), Cm(3.2), Cm(3.2))):
        for cell in table.columns[i].cells:
            cell.width = width
    doc.add_paragraph()
    for line in _signature_lines(r):
        doc.add_paragraph(line)
    doc.add_heading("字数核对", level=2)
    for c in r.checks:
        doc.add_paragraph(f"{'✓' if c.ok else '✗'} {c.text()}")
    doc.add_paragraph("填写要求：" + "".join(_requirements(r)))
    buf = BytesIO()
    doc.save(buf)
    return buf.getvalue()


def render_xlsx(r: SelfReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    ws.title = "自我诊改报告表"
    ws.append([_title(r)])
    ws.append(
        [
            f"部门名称：{r.unit.name}（{r.unit.kind_zh}）",
            f"诊改周期：{r.period}",
            f"统计至：{today_cn(r.as_of):%Y-%m-%d}",
        ]
    )
    ws.append(list(TABLE_HEADER))
    for cell in ws[3]:
        cell.font = Font(bold=True)
    for cells in _rows(r):
        ws.append(list(cells))
    for col, width in zip("ABCDE", (14, 16, 70, 30, 30), strict=True):
        ws.column_dimensions[col].width = width
    for row in ws.iter_rows(min_row=4):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.append([])
    for line in _signature_lines(r):
        ws.append([line])
    checks = wb.create_sheet("字数核对")
    checks.append(["项目", "字数", "下限", "上限", "结论"])
    for c in r.checks:
        checks.append([c.what, c.count, c.low, c.high, "符合" if c.ok else "不符合"])
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()


def write_report(r: SelfReport, out_dir: Path, formats: tuple[str, ...] = ("md", "docx", "xlsx")) -> list[Path]:
    """Write the report in each format; file names carry the unit and period."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"自我诊改报告_{r.unit.name}_{r.period}".replace("/", "_")
    paths = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        if fmt == "md":
            path.write_text(render_markdown(r), encoding="utf-8")
        elif fmt == "docx":
            path.write_bytes(render_docx(r))
        elif fmt == "xlsx":
            path.write_bytes(render_xlsx(r))
        else:
            raise ValueError(f"未知格式 {fmt!r}（md/docx/xlsx）")
        paths.append(path)
    return paths
