"""The Grafana dashboards (deploy/grafana/dashboards/) without a Grafana server: each file is valid
against Grafana's published dashboard schema (vendored, tests/schemas/README.md); every panel's SQL,
with its template variables expanded as Grafana's PostgreSQL source does, runs on real PostgreSQL
over the demo college as the database roles Grafana logs in with — ``zhengai_readonly`` for the
overview, ``zhengai_scoped`` logins for the rest (one granted 质量办, one 院长 of D01, whose results
hold nothing of the other department) — and each panel's result is drawn with matplotlib to
``test-artifacts/grafana/<dashboard>/`` (gitignored) for a person to look at."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import jsonschema
import matplotlib
import pytest
import yaml
from demopg import copy_into_postgres, login, run_small_demo
from sqlalchemy import text

from zhengai.warnings.scopes import Role, grant

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "grafana-dashboard.jsonschema.json").read_text(encoding="utf-8"))
ARTIFACTS = ROOT / "test-artifacts" / "grafana"
# the demo college marks no warning as 误报, so this panel is rightly empty there
EMPTY_IN_DEMO = {("zhengai-overview", 9)}
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")  # fonts-wqy-zenhei (deploy/local/browser.sh)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_dashboards_beyond_warnings():
    uids = {_load(p)["uid"] for p in DASHBOARDS}
    assert {"zhengai-overview", "zhengai-indicators", "zhengai-improvement", "zhengai-freshness"} <= uids


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_valid_against_grafanas_schema(path):
    dash = _load(path)
    jsonschema.Draft7Validator(SCHEMA).validate(dash)
    assert not dash["title"].isascii() and all(not p["title"].isascii() for p in dash["panels"])  # Chinese for people
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    provisioned = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/zhengai.yaml").read_text(encoding="utf-8")
    )
    uids = {d["uid"] for d in provisioned["datasources"]}
    for p in dash["panels"]:
        for t in p["targets"]:
            assert t["datasource"]["uid"] in uids
            assert ("scoped." in t["rawSql"]) == (t["datasource"]["uid"] == "zhengai-pg-scoped")


def test_an_invalid_dashboard_is_refused_by_the_schema():
    dash = _load(DASHBOARDS[0])
    del dash["schemaVersion"]
    with pytest.raises(jsonschema.ValidationError, match="schemaVersion"):
        jsonschema.Draft7Validator(SCHEMA).validate(dash)


# --- the panels' SQL as Grafana's logins ------------------------------------------------------------

_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(?!__)(\w+)")


def _expand(sql: str, values: dict[str, list[str] | str]) -> str:
    """Grafana's interpolation for SQL sources: a multi-value or All variable becomes a quoted,
    comma-separated list; a single value goes in as it is; $__timeFilter covers everything."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN '2000-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z'", sql)

    def one(m: re.Match) -> str:
        value = values[m.group(1) or m.group(2)]
        if isinstance(value, list):
            return ",".join("'" + v.replace("'", "''") + "'" for v in value) or "NULL"
        return value

    return _VAR.sub(one, sql)


def _variables(conn, dash: dict) -> dict[str, list[str] | str]:
    values: dict[str, list[str] | str] = {}
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            rows = conn.execute(text(_expand(var["query"], values))).mappings().all()
            options = [str(r.get("__value", next(iter(r.values())))) for r in rows]
            values[var["name"]] = (
                options if var.get("includeAll") or var.get("multi") else (options[0] if options else "")
            )
        else:  # custom / constant: the default
            values[var["name"]] = var["current"]["value"]
    return values


def _run(engine, dash: dict) -> dict[int, tuple[list[str], list[tuple]]]:
    out = {}
    with engine.connect() as c:
        values = _variables(c, dash)
        for p in dash["panels"]:
            for t in p["targets"]:
                result = c.execute(text(_expand(t["rawSql"], values)))
                out[p["id"]] = (list(result.keys()), [tuple(r) for r in result])
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    run_small_demo(out)
    return out / "zhengai.sqlite"


@pytest.fixture
def store(demo, pg_url):
    s = copy_into_postgres(demo, pg_url)
    yield s
    s.engine.dispose()


def test_every_panel_runs_as_grafanas_logins_and_is_drawn(store):
    suffix = store.engine.url.database[-8:]
    directory = store.directory.load()
    qa, dean = f"gqa_{suffix}", f"gdean_{suffix}"
    grant(store, directory, qa, Role.quality_office)
    grant(store, directory, dean, Role.dean, "D01")
    drawn = 0
    with (
        login(store, f"gro_{suffix}", "zhengai_readonly") as readonly,
        login(store, qa, "zhengai_scoped") as school,
        login(store, dean, "zhengai_scoped") as dean_engine,
    ):
        for path in DASHBOARDS:
            dash = _load(path)
            scoped = any("scoped." in t["rawSql"] for p in dash["panels"] for t in p["targets"])
            results = _run(school if scoped else readonly, dash)
            for p in dash["panels"]:
                columns, rows = results[p["id"]]
                if (dash["uid"], p["id"]) in EMPTY_IN_DEMO:
                    assert rows == [], (dash["uid"], p["id"])
                else:
                    assert rows, f"{dash['uid']} panel {p['title']} returned nothing"
                _draw(dash, p, columns, rows)
                drawn += 1
            if scoped:  # the same dashboard through the dean's login: nothing of 信息工程学院 (D02)
                for pid, (_, rows) in _run(dean_engine, dash).items():
                    flat = " ".join(str(v) for r in rows for v in r)
                    assert "信息工程学院" not in flat and "D02" not in flat, (dash["uid"], pid)
    assert drawn == sum(len(_load(p)["panels"]) for p in DASHBOARDS)


def test_panel_numbers_match_the_store(store):
    """A few panels against the store's own rows, so the pictures are of the right numbers."""
    suffix = store.engine.url.database[-8:]
    grant(store, store.directory.load(), f"gqa_{suffix}", Role.quality_office)
    with login(store, f"gqa_{suffix}", "zhengai_scoped") as engine:
        loop = _run(engine, _load(ROOT / "deploy/grafana/dashboards/zhengai-improvement.json"))
        fresh = _run(engine, _load(ROOT / "deploy/grafana/dashboards/zhengai-freshness.json"))
    with store.engine.connect() as c:
        open_ = c.execute(text("SELECT count(*) FROM warnings WHERE status IN ('open', 'acknowledged')")).scalar()
        closed = c.execute(
            text("SELECT count(*) FROM warnings WHERE status = 'closed' AND resolution = 'reviewed'")
        ).scalar()
        sources = c.execute(
            text(
                "SELECT count(DISTINCT source) FROM (SELECT source FROM observations "
                "UNION SELECT source FROM dead_letters) s"
            )
        ).scalar()
        dead = c.execute(text("SELECT count(*) FROM dead_letters")).scalar()
    assert loop[1][1][0][0] == open_ and loop[5][1][0][0] == closed >= 1
    assert fresh[3][1][0][0] == sources and fresh[2][1][0][0] == dead


# --- drawing ------------------------------------------------------------------------------------------


def _plain(v):
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    return v


def _draw(dash: dict, panel: dict, columns: list[str], rows: list[tuple]) -> None:
    if CJK_FONT.exists():
        font_manager.fontManager.addfont(str(CJK_FONT))
        plt.rcParams["font.family"] = font_manager.FontProperties(fname=str(CJK_FONT)).get_name()
    grid = panel["gridPos"]
    fig, ax = plt.subplots(figsize=(max(4.0, grid["w"] * 0.6), max(2.5, grid["h"] * 0.45)), dpi=100)
    ax.set_title(panel["title"].replace("$kind", "course").replace("$rule", ""), fontsize=11)
    kind = panel["type"]
    if not rows:
        ax.text(0.5, 0.5, "无数据", ha="center", va="center", fontsize=20, color="#999999")
        ax.axis("off")
    elif kind == "stat":
        ax.text(0.5, 0.45, str(_plain(rows[0][0])), ha="center", va="center", fontsize=40, color="#1677ff")
        ax.axis("off")
    elif kind == "timeseries":
        series: dict[str, list[tuple]] = {}
        for t, metric, value in rows:
            series.setdefault(str(metric), []).append((t, float(value)))
        for metric, points in series.items():
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=metric)
        ax.legend(fontsize=8)
        fig.autofmt_xdate()
    elif kind in ("barchart", "bargauge"):
        labels = [str(r[0]) for r in rows]
        bottom = [0.0] * len(rows)
        for i, name in enumerate(columns[1:], 1):
            values = [float(_plain(r[i]) or 0) for r in rows]
            if kind == "bargauge":
                ax.barh(labels, values, label=name)
            else:
                ax.bar(labels, values, bottom=bottom, label=name)
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.legend(fontsize=8)
        ax.tick_params(axis="x", labelrotation=30 if kind == "barchart" else 0, labelsize=8)
    else:  # table: the first rows, as Grafana's table shows them
        shown = [c for c in columns if not c.isascii()] or columns
        idx = [columns.index(c) for c in shown]
        cells = [[str(_plain(r[i]))[:24] for i in idx] for r in rows[:15]]
        table = ax.table(cellText=cells, colLabels=shown, loc="upper center", cellLoc="left")
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        ax.axis("off")
    folder = ARTIFACTS / dash["uid"]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{panel['id']:02d}.png"
    fig.tight_layout()
    fig.savefig(target)
    plt.close(fig)
    image = plt.imread(target)  # a real picture with something drawn on it, not a blank canvas
    assert image.shape[0] >= 250 and image.shape[1] >= 400 and image.std() > 0.02
