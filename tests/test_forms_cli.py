"""`zhengai forms` end to end on PostgreSQL: list, template (due date recorded), intake of a drop
folder (exit 1 and the located error when a file is refused), check (数据采集及时率, late offices)."""

from __future__ import annotations

import json

from openpyxl import load_workbook
from streamkit import college

from zhengai.cli import main
from zhengai.warnings.store import WarningStore


def test_template_intake_check(pg_url, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ZHENGAI_BROKER", raising=False)
    store = WarningStore(pg_url)
    store.create_schema()
    store.directory.upsert(college(students_per_class=1, classes=2), None)

    assert main(["forms", "list"]) == 0
    assert "baowei.stability\t保卫处\t校园安全稳定情况填报表" in capsys.readouterr().out
    drop = tmp_path / "drop"
    args = ["--store", pg_url, "--out", str(drop)]
    assert main(["forms", "template", "baowei.stability", "--period", "2026", "--due", "2026-10-20", *args]) == 0
    assert main(["forms", "template", "tasks", "--period", "2026-10", "--due", "2026-11-05", *args]) == 0
    assert main(["forms", "template", "nope", "--period", "2026", *args]) == 2
    capsys.readouterr()

    path = drop / "保卫处-baowei.stability-2026.xlsx"
    wb = load_workbook(path)
    wb["填报"]["H5"] = -1
    wb.save(path)
    (drop / "任务-2026-10.xlsx").unlink()  # 党政办 never hands its table in
    assert main(["forms", "intake", str(drop), "--store", pg_url, "--json"]) == 1
    (result,) = json.loads(capsys.readouterr().out)
    assert result["status"] == "refused"
    assert result["errors"] == ["工作表“填报”第 5 行 H 列（填报值）：-1 超出允许范围（≥ 0 的整数）"]
    assert len(list((drop / "rejected").glob("*.report.csv"))) == 1

    assert main(["forms", "check", "--as-of", "2026-11-30", "--store", pg_url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data_collection_quality"] == 0.0
    assert sorted((x["form"], x["office"], x["received"]) for x in out["late"]) == [
        ("baowei.stability", "保卫处", None),
        ("tasks", "党政办", None),
    ]
