"""File sources: real XLSX workbooks with the quirks of hand-made exports, and drop folders with
processed/ and rejected/ folders and a rejection report per file."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
from openpyxl import Workbook

from zhengai.connectors import CaiwuConnector, MemoryBookmarks, run_connector
from zhengai.connectors.check import check_connector
from zhengai.connectors.files import read_table, read_xlsx
from zhengai.connectors.testing import ListDelivery
from zhengai.ingest.records import FinanceEvent

HEADER = ["年度", "科目代码", "科目名称", "预算数（元）", "执行数（元）", "备注", "经办人手机"]


def workbook(path: Path, rows: list[list[object]], *, title: bool = True, sheet: str = "预算执行") -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    if title:  # a merged title line and a blank line above the header, as people make them
        ws.append(["示范职业技术学院2026年度预算执行情况表"])
        ws.merge_cells("A1:G1")
        ws.append([])
    ws.append(HEADER)
    for row in rows:
        ws.append(row)
    ws["A1"].number_format = "General"
    wb.save(path)
    return path


XLSX_ROWS: list[list[object]] = [
    [2026, "4001", "学费收入", 12_000_000, "11,800,000.00", None, "13812345678"],
    ["２０２６", 4002, "经常性财政拨款", "30,000,000.00", 29_500_000.5, "全角年度", None],
    [2026, "5001", "年度公用经费", 5_000_000, 4_800_000, None, None],
    [None, None, None, None, None, None, None],
    [2026, "5002", "教师培训经费", "２５０，０００．００", "230,000.00", "全角数字", None],
    [2026, "5003", "日常教学经费", 3_000_000, "2,9x0,000.00", "金额错误", "13987654321"],
    [2026, "5009", "基本建设支出", 8_000_000, 7_000_000, "不是指标", None],
    ["小计", None, None, "=SUM(D4:D10)", "=SUM(E4:E10)", None, None],
    ["合 计", None, None, 58_250_000, 53_330_000.5, None, None],
]


def test_xlsx_export_with_title_rows_and_quirks(tmp_path: Path) -> None:
    path = workbook(tmp_path / "caiwu_2026.xlsx", XLSX_ROWS)
    delivery = ListDelivery()
    connector = CaiwuConnector(path, "SCH")
    report = run_connector(connector, delivery, MemoryBookmarks())
    assert report.ok, report.errors
    assert connector.streams[0].encoding == "xlsx"
    events = {e.key.rsplit(":", 1)[1]: e for e in delivery.of(FinanceEvent)}
    assert set(events) == {"4001", "4002", "5001", "5002"}
    assert events["4001"].actual == 11_800_000 and events["4001"].budget == 12_000_000
    assert events["4002"].year == "2026" and events["4002"].actual == 29_500_000.5
    assert events["5002"].budget == 250_000  # full-width digits and separators in a text cell
    [dead] = delivery.dead_letters
    assert dead.reason == "line 9: 执行数(元): '2,9x0,000.00' has misplaced thousands separators"
    raw = json.loads(dead.raw)
    assert raw["经办人手机"] == "139****4321"  # personal column masked by its Chinese name
    assert "13987654321" not in dead.model_dump_json()
    assert report.streams["budget"].read == 6  # blank, 小计 (formulas) and 合计 rows dropped


def test_xlsx_percent_cells_read_in_percent_units(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["专业", "就业率", "满意度"])
    ws.append(["软件技术", 0.853, "92.5%"])
    ws["B2"].number_format = "0.0%"
    ws.append(["数控技术", 0.9, "９０％"])
    ws["B3"].number_format = "0%"
    wb.save(tmp_path / "p.xlsx")
    header, rows = read_xlsx(tmp_path / "p.xlsx")
    assert header == ["专业", "就业率", "满意度"]
    assert [(r["就业率"], r["_line"]) for r in rows] == [(85.3, "2"), (90, "3")]
    from zhengai.connectors.values import parse_number

    assert [parse_number(r["满意度"]) for r in rows] == [92.5, 90.0]


def test_sheet_choice_and_errors(tmp_path: Path) -> None:
    from zhengai.connectors import FatalSourceError

    path = workbook(tmp_path / "a.xlsx", XLSX_ROWS[:1], sheet="2026")
    with pytest.raises(FatalSourceError, match=r"no sheet 'Sheet9' \(sheets: 2026\)"):
        read_table(path, sheet="Sheet9")
    (tmp_path / "junk.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FatalSourceError, match="junk.xlsx: not a readable XLSX workbook"):
        read_table(tmp_path / "junk.xlsx")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(FatalSourceError, match="old .xls format is not read"):
        read_table(tmp_path / "old.xls")


CSV_GOOD = [
    HEADER[:6],
    ["2026", "4001", "学费收入", "12,000,000.00", "11,800,000.00", ""],
    ["合计", "", "", "12,000,000.00", "11,800,000.00", ""],
]


def write_csv(path: Path, rows: list[list[str]], encoding: str) -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def drop_folder(tmp_path: Path) -> Path:
    drop = tmp_path / "drop"
    drop.mkdir()
    write_csv(drop / "01_good_gbk.csv", CSV_GOOD, "gbk")
    workbook(drop / "02_partly_bad.xlsx", XLSX_ROWS)
    write_csv(drop / "03_no_amounts.csv", [["年度", "科目代码", "科目名称"], ["2026", "4001", "学费"]], "utf-8-sig")
    (drop / "04_legacy.xls").write_bytes(b"\xd0\xcf\x11\xe0 legacy")
    write_csv(drop / "05_header_only.csv", [HEADER[:6]], "gb18030")
    (drop / "notes.txt").write_text("not an export", encoding="utf-8")
    (drop / "~$02_partly_bad.xlsx").write_bytes(b"excel lock file")
    for i, p in enumerate(sorted(drop.iterdir())):  # oldest first = name order here
        os.utime(p, (time.time() - 600 + i, time.time() - 600 + i))
    return drop


def test_drop_folder_moves_files_and_writes_rejection_reports(tmp_path: Path) -> None:
    drop = drop_folder(tmp_path)
    delivery = ListDelivery()
    connector = CaiwuConnector(drop, "SCH")
    report = run_connector(connector, delivery, MemoryBookmarks(), batch_size=3)
    assert report.ok, report.errors

    processed = sorted(p.name.split("-", 1)[1] for p in (drop / "processed").iterdir())
    assert processed == ["01_good_gbk.csv", "02_partly_bad.xlsx", "05_header_only.csv"]
    rejected = sorted(p.name.split("-", 1)[1] for p in (drop / "rejected").iterdir())
    assert rejected == [
        "02_partly_bad.xlsx.report.csv",
        "03_no_amounts.csv",
        "03_no_amounts.csv.report.csv",
        "04_legacy.xls",
        "04_legacy.xls.report.csv",
    ]
    assert sorted(p.name for p in drop.iterdir() if p.is_file()) == [
        "notes.txt",
        "~$02_partly_bad.xlsx",
    ]  # not exports: left alone

    reasons = sorted(d.reason for d in delivery.dead_letters)
    assert reasons == [
        "file rejected: 03_no_amounts.csv lacks column(s) 预算数(元), 执行数(元)",
        "file rejected: 04_legacy.xls: the old .xls format is not read; save it as .xlsx or CSV",
        "line 9: 执行数(元): '2,9x0,000.00' has misplaced thousands separators",
    ]
    keys = sorted(e.key for e in delivery.of(FinanceEvent))
    assert keys == ["caiwu:SCH:2026:4001"] * 2 + [f"caiwu:SCH:2026:{c}" for c in ("4002", "5001", "5002")]

    [partial] = (drop / "rejected").glob("*02_partly_bad.xlsx.report.csv")
    raw = partial.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens it as UTF-8
    lines = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert lines[0] == ["行号 line", "原因 reason", "原始数据 row (personal data masked)"]
    assert lines[1][:2] == ["9", "line 9: 执行数(元): '2,9x0,000.00' has misplaced thousands separators"]
    assert "139****4321" in lines[1][2] and "13987654321" not in raw.decode("utf-8-sig")
    [whole] = (drop / "rejected").glob("*03_no_amounts.csv.report.csv")
    assert "lacks column(s) 预算数(元), 执行数(元)" in whole.read_text(encoding="utf-8-sig")

    again = ListDelivery()
    run_connector(connector, again, MemoryBookmarks())
    assert again.records == []  # nothing left in the inbox


def test_files_move_only_after_all_their_records_are_acknowledged(tmp_path: Path) -> None:
    drop = drop_folder(tmp_path)
    first = ListDelivery(fail=lambda n, _: n == 2)
    connector = CaiwuConnector(drop, "SCH")
    report = run_connector(connector, first, MemoryBookmarks(), batch_size=3)
    assert report.errors["budget"].startswith("delivery failed")
    # batch 1 = the GBK file's row and two rows of the workbook: only the first file is done
    moved = [p.name.split("-", 1)[1] for p in (drop / "processed").iterdir()]
    assert moved == ["01_good_gbk.csv"]
    assert (drop / "02_partly_bad.xlsx").exists() and not (drop / "rejected").exists()

    second = ListDelivery()
    assert run_connector(connector, second, MemoryBookmarks(), batch_size=3).ok
    keys = {e.key for e in first.of(FinanceEvent)} | {e.key for e in second.of(FinanceEvent)}
    assert keys == {f"caiwu:SCH:2026:{c}" for c in ("4001", "4002", "5001", "5002")}
    assert sorted(p.name.split("-", 1)[1] for p in (drop / "processed").iterdir()) == [
        "01_good_gbk.csv",
        "02_partly_bad.xlsx",
        "05_header_only.csv",
    ]


def test_young_files_wait_and_check_moves_nothing(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    write_csv(drop / "fresh.csv", CSV_GOOD, "gbk")
    settled = CaiwuConnector(drop, "SCH", settle=60)
    assert run_connector(settled, ListDelivery(), MemoryBookmarks()).streams["budget"].read == 0
    [result] = check_connector(CaiwuConnector(drop, "SCH"))
    assert result.rows == 1 and result.error is None
    assert sorted(p.name for p in drop.iterdir()) == ["fresh.csv"]  # check is read-only
