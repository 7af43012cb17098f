"""Metric-table systems (connectors/tables.py): configured mappings over a real PostgreSQL, a
loopback HTTP API and real GBK/XLSX exports with title, unit, signature and note lines."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr, ValidationError

from zhengai.connectors.base import MemoryBookmarks, run_connector
from zhengai.connectors.files import is_footer_row, is_unit_row, read_table
from zhengai.connectors.http import ApiClient
from zhengai.connectors.http_auth import LoginToken
from zhengai.connectors.loading import ConfigError, build_connector, load_config
from zhengai.connectors.registry import CONNECTORS
from zhengai.connectors.tables import SYSTEMS, TableMapping
from zhengai.connectors.testing import ListDelivery
from zhengai.demo.systems import PASSWORD, USERNAME, SystemsApi
from zhengai.ingest.records import DeadLetter, Observation

STAMP = "2026-10-20T10:00:00+08:00"


def observations(delivery: ListDelivery) -> dict[tuple[str, str, str], float]:
    return {(r.metric, r.entity_id, r.period): r.value for r in delivery.records if isinstance(r, Observation)}


def letters(delivery: ListDelivery) -> list[str]:
    return [r.reason for r in delivery.records if isinstance(r, DeadLetter)]


def test_sql_tables_on_postgresql_map_columns_ratios_and_reject_bad_rows(pg_url, tmp_path):
    engine = sa.create_engine(pg_url)
    with engine.begin() as c:
        c.execute(
            sa.text(
                "CREATE TABLE shixi_baoxian (zy_dm text, zc text, sx_rs int, tb_rs int, gxsj text, "
                "PRIMARY KEY (zy_dm, zc))"
            )
        )
        c.execute(
            sa.text(
                "INSERT INTO shixi_baoxian VALUES ('M01','2026-W44',40,40,:t), ('M02','2026-W44',30,28,:t),"
                " ('M03','2026-W44',0,0,:t), ('M04','2026-W99',10,10,:t)"
            ),
            {"t": STAMP},
        )
        c.execute(sa.text("CREATE TABLE tizhi (xh text PRIMARY KEY, xn text, zf text, id_card text, gxsj text)"))
        c.execute(
            sa.text(
                "INSERT INTO tizhi VALUES ('2401010001','2026','78.5','110101200001011234',:t),"
                " ('2401010002','2026','',NULL,:t), ('2401010003','2026','150',NULL,:t),"
                " ('2401010004','2026','7x',NULL,:t)"
            ),
            {"t": STAMP},
        )
    cls = SYSTEMS["shixi"]
    with cls(
        pg_url,
        [
            dict(
                name="insurance",
                table="shixi_baoxian",
                level="major",
                entity="zy_dm",
                period="zc",
                observed_at="gxsj",
                metrics={"major.internship_insured": {"ratio": ["tb_rs", "sx_rs"], "scale": 100}},
            ),
            dict(
                name="fitness",
                query="SELECT xh, xn, zf, gxsj FROM tizhi",
                level="student",
                entity="xh",
                period="xn",
                observed_at="gxsj",
                metrics={"student.physical_fitness": {"column": "zf", "range": [0, 120]}},
            ),
        ],
    ) as conn:
        delivery = ListDelivery()
        report = run_connector(conn, delivery, MemoryBookmarks())
    assert report.ok
    got = observations(delivery)
    assert got == {
        ("major.internship_insured", "M01", "2026-W44"): 100.0,
        ("major.internship_insured", "M02", "2026-W44"): pytest.approx(93.3333),
        ("student.physical_fitness", "2401010001", "2026"): 78.5,
    }
    reasons = letters(delivery)
    assert any("sx_rs: is 0" in r for r in reasons)  # M03: a zero denominator
    assert any("zc:" in r and "2026-W99" in r for r in reasons)  # M04: no such week
    assert any("zf: 150 is outside 0..120" in r for r in reasons)
    assert any("zf:" in r and "not a number" in r for r in reasons)
    assert len(reasons) == 4  # the empty cell (…0002) says nothing: no record, no error
    obs = [r for r in delivery.records if isinstance(r, Observation)]
    assert all(
        o.source == f"shixi.{o.metric and ('insurance' if o.level.value == 'major' else 'fitness')}" for o in obs
    )
    assert {o.key for o in obs} == {f"{o.source}|{o.metric}|{o.entity_id}|{o.period}" for o in obs}
    assert all("110101200001011234" not in r.model_dump_json() for r in delivery.records)  # never selected


def test_http_tables_on_a_loopback_api_page_through_every_item(tmp_path):
    items = [
        dict(teacher_id=f"T{i:03d}", year="2026", papers=1.5, service_wan=3, awards=1, updated_at=STAMP)
        for i in range(1, 251)
    ]
    items[7]["papers"] = "n/a"
    with SystemsApi({"/api/ky/teachers": items}) as api:
        client = ApiClient(api.base_url, auth=LoginToken(USERNAME, SecretStr(PASSWORD)), name="keyan")
        conn = SYSTEMS["keyan"](
            client,
            [
                dict(
                    name="teachers",
                    path="/api/ky/teachers",
                    pagination={"kind": "page", "size": 100},
                    level="teacher",
                    entity="teacher_id",
                    period="year",
                    observed_at="updated_at",
                    metrics={"teacher.research_output": "papers", "teacher.service_income": "service_wan"},
                )
            ],
        )
        with conn:
            delivery = ListDelivery()
            assert run_connector(conn, delivery, MemoryBookmarks()).ok
    got = observations(delivery)
    assert len(got) == 2 * 250 - 1
    assert ("teacher.research_output", "T008", "2026") not in got
    assert got[("teacher.service_income", "T008", "2026")] == 3.0  # the row's other metric still goes
    assert [r for r in letters(delivery)] == ["teacher.research_output: papers: 'n/a' is not a number"]


EXPORT_ROWS = [
    ("示范职业技术学院 办学条件资产统计表",),
    ("统计年度：2026", "", "单位：平方米、元"),
    ("学校代码", "年度", "教学行政用房面积", "在校生数"),
    ("单位：平方米",),
    ("SCH", "2026", "140,800", "8000"),
    ("合计", "", "140,800", "8000"),
    ("制表人：资产处 王某", "", "审核：李某", "负责人：赵某"),
    ("注：1. 面积按产权及租用面积合计；",),
    ("2. 不含在建工程。",),
    ("数据来源：资产管理系统",),
]


def _write(path: Path, rows) -> None:
    if path.suffix == ".xlsx":
        from openpyxl import Workbook

        wb = Workbook()
        for r in rows:
            wb.active.append(list(r))
        wb.save(path)
    else:
        import csv

        with open(path, "w", encoding="gbk", newline="") as fh:
            csv.writer(fh).writerows(rows)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_export_title_unit_signature_and_note_lines_are_not_data(tmp_path, suffix):
    drop = tmp_path / "zichan"
    drop.mkdir()
    _write(drop / f"资产统计_2026{suffix}", EXPORT_ROWS)
    conn = SYSTEMS["zichan"](
        drop,
        [
            dict(
                name="conditions",
                file="资产统计*",
                level="school",
                entity="学校代码",
                period="年度",
                metrics={"school.teaching_admin_space_per_student": {"ratio": ["教学行政用房面积", "在校生数"]}},
            )
        ],
    )
    delivery = ListDelivery()
    report = run_connector(conn, delivery, MemoryBookmarks())
    assert report.ok and letters(delivery) == []
    assert observations(delivery) == {("school.teaching_admin_space_per_student", "SCH", "2026"): 17.6}
    assert (
        (drop / "processed").exists() and not list((drop / "rejected").glob("*"))
        if (drop / "rejected").exists()
        else True
    )
    _, rows, _ = read_table(next((drop / "processed").iterdir()), required=("学校代码", "年度"))
    assert [r["学校代码"] for r in rows] == ["SCH"]


def test_footer_and_unit_lines_are_recognised_but_data_is_not():
    assert is_footer_row({"a": "制表人：王某", "b": ""}) and is_footer_row({"a": "审核：李某"})
    assert is_footer_row({"a": "", "b": "负责人: 赵某"}) and is_footer_row({"a": "注：数据截至 10 月"})
    assert is_footer_row({"a": "说明：1. 口径"}) and is_footer_row({"a": "注1：不含"})
    assert is_unit_row({"a": "单位：元"}) and is_unit_row({"a": "金额单位：万元"})
    for data in ({"a": "SCH", "b": "注册"}, {"a": "审计处"}, {"a": "说明书印刷费", "b": "1,200.00"}, {"a": "单位名称"}):
        assert not is_footer_row(data) and not is_unit_row(data)


def test_mapping_errors_are_located_in_the_configuration(tmp_path):
    path = tmp_path / "xuegong.yaml"
    path.write_text(
        """connector: xuegong
schedule: {every: 1d}
source: {kind: sql, url: "sqlite:///x.sqlite"}
options:
  tables:
    - name: fitness
      table: t
      level: student
      entity: xh
      period_value: "2026-13"
      metrics: {major.employment_rate: zf}
    - name: fitness
      table: t
      level: student
      entity: xh
      period: xn
      metrics: {student.physical_fitness: {column: a, ratio: [a, b]}}
streams: [fitness, nope]
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "xuegong.yaml:6: options.tables[0]: metric major.employment_rate is not a student-level metric" in text
    assert (
        "xuegong.yaml:17: options.tables[1].metrics.student.physical_fitness: give exactly one of column or ratio"
        in text
    )
    with pytest.raises(ValidationError):
        TableMapping.model_validate(
            dict(
                name="x",
                table="t",
                level="school",
                entity="a",
                entity_value="SCH",
                period_value="2026",
                metrics={"school.books_per_student": "b"},
            )
        )


def test_every_shipped_system_configuration_loads_and_builds(tmp_path):
    from zhengai.demo.systems import SYSTEM_NAMES, SystemSources, config_files

    env = SystemSources(tmp_path, {}).environ("http://127.0.0.1:1")
    deploy = Path(__file__).resolve().parents[1] / "deploy" / "connectors"
    for name, path in config_files().items():
        assert (deploy / f"{name}.yaml").read_text(encoding="utf-8") == path.read_text(encoding="utf-8")
        config = load_config(path, environ=env)
        connector = build_connector(config)
        try:
            assert connector.name == name and name in CONNECTORS
            assert {s.name for s in connector.streams} == {t.name for t in config.options.tables}
        finally:
            connector.close()
    assert set(SYSTEM_NAMES) <= set(SYSTEMS)
