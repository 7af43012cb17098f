"""`zhengai portrait` and `zhengai scopes` on the demo college's store (embedded, SQLite): the CLI
prints what the person's scope may see — students masked unless they are the counsellor's own,
nothing outside the scope (exit 3) — and grants are checked against the directory."""

import json
import shutil
import sqlite3

import pytest
from demopg import run_small_demo

from zhengai.cli import main


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    run_small_demo(out)
    return out / "zhengai.sqlite"


@pytest.fixture
def store(demo_db, tmp_path):
    db = tmp_path / "store.sqlite"
    shutil.copy(demo_db, db)
    return f"sqlite:///{db}"


def test_students_are_masked_unless_the_scope_holds_them(store, capsys):
    assert main(["portrait", "2401010001", "--store", store]) == 0  # default: 校领导, students masked
    out = capsys.readouterr().out
    assert "2401****01" in out and "2401010001" not in out and "百分位" in out
    assert main(["portrait", "2401010001", "--as", "FD001", "--store", store]) == 0  # their counsellor
    assert "（2401010001）" in capsys.readouterr().out
    assert main(["portrait", "2401010001", "--as", "DN01", "--store", store, "--json"]) == 0  # the dean: masked
    data = json.loads(capsys.readouterr().out)
    assert data["entity_id"] == "2401****01" and data["name"].endswith("*")
    peers = [p[0] for i in data["indicators"] for p in i["peers"]]
    assert peers and all("*" in p for p in peers)


def test_outside_the_scope_nothing_is_printed(store, capsys):
    assert main(["portrait", "C0040", "--as", "DN01", "--store", store]) == 3  # D02's course, D01's dean
    captured = capsys.readouterr()
    assert captured.out == "" and "无权查看或不存在" in captured.err
    assert main(["portrait", "NOSUCH", "--as", "DN01", "--store", store]) == 3  # the same answer: no probing
    assert main(["portrait", "C0001", "--as", "stranger", "--store", store]) == 3


def test_grants_are_checked_and_listed(store, capsys):
    assert main(["scopes", "grant", "grafana_d02", "--role", "院长", "--unit", "D02", "--store", store]) == 0
    assert main(["scopes", "grant", "x", "--role", "校长", "--store", store]) == 2
    assert main(["scopes", "grant", "x", "--role", "dean", "--unit", "NOPE", "--store", store]) == 2
    assert main(["scopes", "grant", "LD01", "--role", "校领导", "--store", store]) == 0
    capsys.readouterr()
    assert main(["scopes", "list", "--store", store]) == 0
    assert capsys.readouterr().out.splitlines() == ["LD01\t校领导\t全校\t—", "grafana_d02\t院长\tD02\tD02"]
    assert main(["portrait", "C0040", "--as", "grafana_d02", "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["department"] == "信息工程学院"


def test_warnings_list_as_a_person_shows_only_their_scope(store, capsys):
    assert main(["warnings", "list", "--store", store]) == 0
    everything = capsys.readouterr().out.splitlines()[:-1]
    assert main(["warnings", "list", "--as", "DN01", "--store", store]) == 0
    dean = capsys.readouterr().out.splitlines()[:-1]
    assert 0 < len(dean) < len(everything)
    with sqlite3.connect(store.removeprefix("sqlite:///")) as db:  # D01's warnings, straight from the tables
        d01 = db.execute(
            "SELECT count(*) FROM warnings w JOIN entities e ON e.id = w.entity_id WHERE e.department_id = 'D01'"
        ).fetchone()[0]
    assert len(dean) == d01
    assert main(["warnings", "list", "--as", "nobody", "--store", store]) == 0
    assert capsys.readouterr().out.strip() == "共 0 条"
