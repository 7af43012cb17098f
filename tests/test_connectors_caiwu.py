"""财务 CSV exports in the encodings and shapes finance software really writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from zhengai.connectors import CaiwuConnector, MemoryBookmarks, run_connector
from zhengai.connectors.files import decode, is_subtotal_row, read_csv
from zhengai.connectors.testing import ListDelivery
from zhengai.connectors.values import normalize_text, parse_number
from zhengai.ingest.records import FinanceEvent

# Header with full-width parentheses (as some exports write it), thousands separators,
# a full-width year and full-width digits, a blank row, a bad amount, a non-indicator code,
# a 小计 and a 合计 row, and a CJK Extension A character that GBK cannot encode.
ROWS = [
    "年度,科目代码,科目名称,预算数（元）,执行数（元）,备注",
    '2026,4001,学费收入,"12,000,000.00","11,800,000.00",',
    '２０２６,4002,经常性财政拨款,"30,000,000.00","29,500,000.50",全角年度',
    "2026,5001,年度公用经费,5000000,4800000,",
    ",,,,,",
    '2026,5002,教师培训经费,"250,000.00","230,000.00",',
    '2026,5003,日常教学经费,"3,000,000.00","2,9x0,000.00",金额错误',
    '2026,5004,实践教学经费,"１,２００,０００.００","1,100,000.00",全角数字',
    '2026,5009,基本建设支出,"8,000,000.00","7,000,000.00",不是指标',
    '小计,,,"58,450,000.00","53,330,000.50",',
    '合 计,,,"58,450,000.00","53,330,000.50",',
]
GB18030_ONLY = "䶮"  # U+4DAE: in GB18030, not in GBK


def write(path: Path, encoding: str, extra_note: str = "") -> Path:
    lines = list(ROWS)
    if extra_note:
        lines[1] += extra_note
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


@pytest.fixture(
    params=[("gbk", "gb18030"), ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030")], ids=["gbk", "utf8-bom", "gb18030"]
)
def export(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    written, detected = request.param
    note = GB18030_ONLY if written == "gb18030" else ""
    return write(tmp_path / f"caiwu_{written}.csv", written, note), detected


def test_gb18030_fixture_is_really_beyond_gbk() -> None:
    with pytest.raises(UnicodeEncodeError):
        GB18030_ONLY.encode("gbk")


def test_each_encoding_maps_the_same(export: tuple[Path, str]) -> None:
    path, detected = export
    delivery = ListDelivery()
    connector = CaiwuConnector(path, "SCH")
    report = run_connector(connector, delivery, MemoryBookmarks())
    assert report.ok, report.errors
    assert connector.streams[0].encoding == detected

    events = {e.key: e for e in delivery.of(FinanceEvent)}
    assert set(events) == {f"caiwu:SCH:2026:{c}" for c in ("4001", "4002", "5001", "5002", "5004")}
    assert events["caiwu:SCH:2026:4001"].actual == 11_800_000.0
    assert events["caiwu:SCH:2026:4002"].actual == 29_500_000.5  # full-width year parsed
    assert events["caiwu:SCH:2026:4002"].category == "appropriation"
    assert events["caiwu:SCH:2026:5004"].budget == 1_200_000.0  # full-width digits
    assert events["caiwu:SCH:2026:5004"].category == "teaching"
    assert events["caiwu:SCH:2026:5001"].item == "年度公用经费"
    assert all(e.school_id == "SCH" and e.year == "2026" and e.source == "caiwu.budget" for e in events.values())

    [dead] = delivery.dead_letters
    assert dead.source == "caiwu.budget"
    assert dead.reason == "line 7: 执行数(元): '2,9x0,000.00' has misplaced thousands separators"
    assert '"科目代码": "5003"' in dead.raw  # the original row, readable Chinese
    # blank, 小计 and 合计 rows never reach the mapping; 5009 is read and skipped quietly
    assert report.streams["budget"].read == 7
    assert report.streams["budget"].rejected == 1 and report.streams["budget"].sent == 5


def test_missing_file_is_fatal(tmp_path: Path) -> None:
    report = run_connector(CaiwuConnector(tmp_path / "nope.csv", "SCH"), ListDelivery(), MemoryBookmarks())
    assert report.errors["budget"].startswith("source failed (fatal): cannot read nope.csv")


def test_missing_column_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("年度,科目代码,科目名称\n2026,4001,学费收入\n", encoding="gbk")
    report = run_connector(CaiwuConnector(path, "SCH"), ListDelivery(), MemoryBookmarks())
    assert "lacks column(s) 预算数(元), 执行数(元)" in report.errors["budget"]


def test_negative_amount_is_dead_lettered(tmp_path: Path) -> None:
    path = tmp_path / "neg.csv"
    path.write_text(ROWS[0] + "\n2026,4001,学费收入,(100.00),100\n", encoding="gbk")
    delivery = ListDelivery()
    run_connector(CaiwuConnector(path, "SCH"), delivery, MemoryBookmarks())
    [dead] = delivery.dead_letters
    assert dead.reason == "FinanceEvent invalid: budget: Input should be greater than or equal to 0"


def test_decode_falls_back_to_gb18030() -> None:
    assert decode("学费".encode("gbk")) == ("学费", "gb18030")
    assert decode("\ufeff学费".encode("utf-8")) == ("学费", "utf-8-sig")
    assert decode("学费".encode()) == ("学费", "utf-8-sig")


def test_read_csv_keeps_line_numbers(tmp_path: Path) -> None:
    rows, encoding = read_csv(write(tmp_path / "a.csv", "gbk"))
    assert encoding == "gb18030"
    assert [r["_line"] for r in rows] == ["2", "3", "4", "6", "7", "8", "9"]
    assert "预算数(元)" in rows[0]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,234.50", 1234.5),
        ("1,234,567.00", 1234567.0),
        ("85.3%", 85.3),
        ("８５．３％", 85.3),
        ("１２３", 123.0),
        (" 42 ", 42.0),
        ("-7.5", -7.5),
        ("(1,200.00)", -1200.0),
        ("￥3,000", 3000.0),
        ("12元", 12.0),
        (3, 3.0),
    ],
)
def test_parse_number(text: object, value: float) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "is empty"),
        ("--", "is empty"),
        ("1,2345", "'1,2345' has misplaced thousands separators"),
        ("12,34.5", "'12,34.5' has misplaced thousands separators"),
        ("abc", "'abc' is not a number"),
        ("1.2.3", "'1.2.3' is not a number"),
        (True, "is a boolean, not a number"),
    ],
)
def test_parse_number_says_why(text: object, why: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_number(text)
    assert str(err.value) == why


@pytest.mark.parametrize(
    ("cells", "subtotal"),
    [
        (["合计", "", ""], True),
        (["合 计", "", ""], True),
        (["", "本页小计：", ""], True),
        (["总计", "1", "2"], True),
        (["2026", "合计收入", "1"], False),  # a 科目名称 that merely contains the word
        (["2026", "4001", "学费收入"], False),
    ],
)
def test_subtotal_rows(cells: list[str], subtotal: bool) -> None:
    assert is_subtotal_row({str(i): c for i, c in enumerate(cells)}) is subtotal


def test_normalize_text() -> None:
    assert normalize_text("  预算数（元）\u3000 ") == "预算数(元)"
    assert normalize_text(None) == ""
