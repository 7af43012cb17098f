"""`zhengai connectors check` against the demo college's real sources (SQLite 教务, GBK 财务 CSV,
HR/评教 API on loopback) with the shipped configurations, and the command's exit codes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from zhengai.cli import main
from zhengai.demo.api import DemoApi
from zhengai.demo.college import SIZES, College, generate

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "connectors"


@pytest.fixture(scope="module")
def college(tmp_path_factory: pytest.TempPathFactory) -> College:
    return generate(tmp_path_factory.mktemp("demo") / "sources", SIZES["small"])


@pytest.fixture
def api(college: College, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoApi]:
    with DemoApi(college.api_data) as served:
        for system in ("RENSHI", "PINGJIAO"):
            monkeypatch.setenv(f"{system}_BASE_URL", served.base_url)
            monkeypatch.setenv(f"{system}_USERNAME", served.username)
            monkeypatch.setenv(f"{system}_PASSWORD", served.password)
        yield served


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["connectors", "check", *args, "--config-dir", str(DEPLOY)])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_jiaowu_on_the_demo_database(
    college: College, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIAOWU_DB_URL", f"sqlite:///{college.jiaowu_db}")
    code, out, err = check(capsys, "jiaowu", "--rows", "20", "--show", "1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"jiaowu（教务） · sql sqlite:///{college.jiaowu_db} · every 15m"
    streams = [ln.split()[1] for ln in lines if ln.startswith(("✓", "✗"))]
    assert streams == [
        "departments",
        "majors",
        "classes",
        "students",
        "courses",
        "enrollments",
        "attendance",
        "grades",
        "teaching_plans",
        "course_progress",
    ]
    assert re.search(r"^✓ students +20 行 → entity 20$", out, re.M)
    assert re.search(r"^✓ attendance +20 行 → attendance 20$", out, re.M)
    assert re.search(r"^✓ course_progress +20 行 → observation 20$", out, re.M)
    assert lines[-1] == "共 10 个数据流：10 个可读取，0 个出错；映射错误 0 条。"
    # 学号 masked wherever it appears; students' names too
    assert not re.search(r"\b20\d{8}\b", out)
    assert '"kind":"student","name":"' in out and re.search(r'"kind":"student","name":".\*+"', out)


def test_check_renshi_masks_contacts(api: DemoApi, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, "renshi", "--show", "3")
    assert code == 0, err
    assert re.search(r"^✓ school +1 行 → entity 1 · person \d+$", out, re.M)
    assert re.search(r"^✓ staff +50 行 → ", out, re.M)
    assert not re.search(r"1[3-9]\d{9}", out)  # no mobile number in clear
    assert re.search(r'"mobile":"1\d\d\*{4}\d{4}"', out)
    assert not re.search(r'"email":"[^"*]{3,}@', out)
    assert api.password not in out


def test_check_pingjiao_shows_a_missing_endpoint(api: DemoApi, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, "pingjiao")
    assert code == 1  # the demo API has no supervisor ratings: the check says so
    assert re.search(r"^✓ sections +\d+ 行 → observation \d+", out, re.M)
    assert "✗ supervisor  源错误 source error: pingjiao GET /api/eval/supervisor: HTTP 404" in out
    assert out.splitlines()[-1].startswith("共 2 个数据流：1 个可读取，1 个出错")


def test_check_caiwu_on_the_gbk_export(
    college: College, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIWU_DROP_DIR", str(college.finance_csv))  # one file, not a folder
    code, out, err = check(capsys, "caiwu", "--strict")
    assert code in (0, 1), err
    assert re.search(r"^✓ budget +\d+ 行 → finance \d+", out, re.M)
    assert college.finance_csv.exists()  # nothing moved


def test_check_reports_configuration_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "jiaowu.yaml"
    bad.write_text(
        "connector: jiaowu\nschedule: {every: 15 minutes}\n"
        "source: {kind: sql, url_env: NOT_SET_ANYWHERE}\noptions: {}\n",
        encoding="utf-8",
    )
    code = main(["connectors", "check", "jiaowu", "--config", str(bad)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert f"{bad}:2: schedule.every: '15 minutes' is not a duration" in err
    assert f"{bad}:3: source.url_env: environment variable NOT_SET_ANYWHERE" in err
    assert f"{bad}:4: options.school_id: is required" in err
    assert err.splitlines()[-1] == "连接器配置未通过校验：3 处错误，未连接任何数据源。"
    assert main(["connectors", "check", "renshi", "--config", str(bad)]) == 2


def test_run_without_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connectors", "run", "--once", "--config-dir", str(tmp_path)]) == 2
    assert "no connector configurations" in capsys.readouterr().err
    assert main(["connectors", "run", "nosuch", "--once", "--config-dir", str(tmp_path)]) == 2
