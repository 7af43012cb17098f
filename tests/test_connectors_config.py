"""Connector YAML: typed models, every error located (file, line, field), secrets from the
environment or secret files and never shown; the shipped deploy/connectors/*.yaml; driver extras."""

from __future__ import annotations

import importlib.util
import re
from datetime import timedelta
from pathlib import Path

import pytest

from zhengai.connectors import (
    CaiwuConnector,
    ConfigError,
    JiaowuConnector,
    MissingDriverError,
    PingjiaoConnector,
    RenshiConnector,
    build_connector,
    load_config,
    load_configs,
)
from zhengai.connectors.config import parse_duration, resolve_secret
from zhengai.connectors.http import CursorPagination, OffsetPagination, PagePagination
from zhengai.connectors.settings import ConnectorSettings, open_bookmarks
from zhengai.connectors.sql import SqlSource

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "connectors"
SECRET = "pw-Zh3ngAi-不可见-9"
ENV = {
    "JIAOWU_DB_URL": f"postgresql://reader:{SECRET}@db.campus.local/jiaowu",
    "RENSHI_BASE_URL": "https://hr.campus.local",
    "RENSHI_PASSWORD": SECRET,
    "PINGJIAO_BASE_URL": "https://pj.campus.local",
    "PINGJIAO_PASSWORD": SECRET,
    "CAIWU_DROP_DIR": "/srv/drops/caiwu",
    # The metric-table systems (connectors/systems/*.yaml).
    **{
        f"{n.upper()}_DB_URL": f"postgresql://reader:{SECRET}@db.campus.local/{n}"
        for n in ("xuegong", "shixi", "tushu", "yikatong", "kecheng", "dudao", "shizi", "shujujizuo")
    },
    "ZHAOJIU_BASE_URL": "https://zj.campus.local",
    "ZHAOJIU_PASSWORD": SECRET,
    "KEYAN_BASE_URL": "https://ky.campus.local",
    "KEYAN_PASSWORD": SECRET,
}


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_configurations_load_and_build() -> None:
    configs = {c.connector: c for c in load_configs(sorted(DEPLOY.glob("*.yaml")), environ=ENV)}
    from zhengai.connectors.tables import SYSTEMS

    assert set(configs) == {"jiaowu", "renshi", "pingjiao", "caiwu", *SYSTEMS}  # tables: test_connectors_tables.py

    jw = build_connector(configs["jiaowu"])
    assert isinstance(jw, JiaowuConnector) and jw.school_id == "SCH"
    assert [s.name for s in jw.streams] == list(JiaowuConnector.stream_names)
    assert jw.db.url.password == SECRET and SECRET not in repr(jw)
    assert configs["jiaowu"].source.shown() == "postgresql://reader:***@db.campus.local/jiaowu"
    assert configs["jiaowu"].window(None) == timedelta(hours=1)

    rs = build_connector(configs["renshi"])
    assert isinstance(rs, RenshiConnector) and rs.year == "2026"
    assert rs.api.base_url == "https://hr.campus.local" and rs.api.username == "zhengai-reader"
    assert rs.streams[1].pagination == PagePagination(size=100)
    assert str(configs["renshi"].schedule.build()) == "cron '0 2 * * *'"

    pj = build_connector(configs["pingjiao"])
    assert isinstance(pj, PingjiaoConnector) and pj.term == "2026-2027-1"
    assert [s.name for s in pj.streams] == ["sections", "supervisor"]
    assert pj.streams[0].pagination == CursorPagination(limit=200)
    assert pj.streams[1].pagination == OffsetPagination(limit=200)

    cw = build_connector(configs["caiwu"])
    assert isinstance(cw, CaiwuConnector) and cw.path == Path("/srv/drops/caiwu")
    assert cw.streams[0].settle == 30 and cw.streams[0].categories["5002"] == "teacher_training"
    for c in (jw, rs, pj, cw):
        c.close()
        for cfg in configs.values():
            assert SECRET not in repr(cfg) and SECRET not in str(cfg)
            assert SECRET not in cfg.model_dump_json()


BROKEN = """\
connector: renshi
schedul: {every: 5m}
schedule:
  cron: "every night"
expect_within: soon
batch_size: 0
source:
  kind: http
  base_url: hr.campus.local
  auth:
    kind: login
    username: reader
    passwrd_env: RENSHI_PASSWORD
options:
  year: 二〇二六
  colour: blue
  endpoints:
    staff: {path: api/hr/staff, pagination: {kind: pages}}
streams: [staff, teachers]
"""


def test_every_error_is_reported_with_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={}, label="renshi.yaml")
    found = [(e.line, e.field) for e in err.value.errors]
    assert found == [
        (2, "schedul"),  # unknown top-level key
        (4, "schedule.cron"),  # a cron expression that is none
        (5, "expect_within"),
        (6, "batch_size"),
        (9, "source.base_url"),
        (10, "source.auth.password_env"),  # missing (at its mapping): the misspelt key is extra
        (13, "source.auth.passwrd_env"),
        (15, "options.year"),
        (16, "options.colour"),
        (18, "options.endpoints.staff.pagination.kind"),
        (18, "options.endpoints.staff.path"),
        (19, "streams[1]"),
    ], err.value
    text = str(err.value)
    assert "renshi.yaml:2: schedul: unknown top-level key" in text
    assert "renshi.yaml:13: source.auth.passwrd_env: unknown key (check the spelling)" in text
    assert "'every night' is not a valid cron expression" in text
    assert "'soon' is not a duration like 15m" in text
    assert "unknown stream 'teachers'; renshi has: school, staff" in text
    assert "must start with http:// or https://" in text
    assert "renshi.yaml:10: source.auth.password_env: is required" in text
    assert "pagination.kind: 'pages' is not one of 'page', 'offset', 'cursor'" in text


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        (
            "connector: dingtalk\nschedule: {every: 1m}\nsource: {kind: sql, url: 'sqlite://'}\n",
            1,
            "connector",
            "unknown system 'dingtalk'; known: caiwu, dudao, jiaowu, kecheng",
        ),
        (
            "connector: jiaowu\nschedule: {every: 1m}\nsource:\n  kind: files\n  path: /x\noptions: {school_id: SCH}\n",
            4,
            "source.kind",
            "the jiaowu connector reads a 'sql' source, not 'files'",
        ),
        (
            "connector: jiaowu\nschedule: {every: 1m}\nsource:\n  kind: sql\n"
            "  url: postgresql://reader:hunter2@db/jw\noptions: {school_id: SCH}\n",
            5,
            "source.url",
            "the URL holds a password: remove it and name the variable that holds it in password_env",
        ),
        (
            "connector: jiaowu\nschedule: {every: 1m}\nsource:\n  kind: sql\n  url: sqlite://\n"
            "  password_env: 'hunter2!'\noptions: {school_id: SCH}\n",
            6,
            "source.password_env",
            "the name of an environment variable (e.g. JIAOWU_DB_PASSWORD), never the secret itself",
        ),
        (
            "connector: jiaowu\nschedule: {every: 1m}\nsource:\n  kind: sql\n  url_env: NOPE_URL\n"
            "options: {school_id: SCH}\n",
            5,
            "source.url_env",
            "environment variable NOPE_URL (or NOPE_URL_FILE) is not set",
        ),
        (
            "connector: caiwu\nschedule: {every: 1m}\nsource:\n  kind: files\n  path: ${DROP}\n"
            "options: {school_id: SCH}\n",
            5,
            "source.path",
            "environment variable DROP is not set (write ${DROP:-default} for a default)",
        ),
        (
            "connector: caiwu\nschedule: {every: 1m, cron: '* * * * *'}\nsource: {kind: files, path: /x}\n"
            "options: {school_id: SCH, categories: {'5002': training}}\n",
            4,
            "options.categories.5002",
            "Input should be 'public_funds', 'teacher_training'",
        ),
        ("connector: jiaowu\nconnector: caiwu\n", 2, "connector", "duplicate key 'connector'"),
        ("connector: [jiaowu\n", 2, "(syntax)", ""),
    ],
)
def test_single_errors(tmp_path: Path, body: str, line: int, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, body), environ={})
    matches = [e for e in err.value.errors if e.field == field]
    assert matches, err.value
    assert matches[0].line == line and message in matches[0].message, err.value
    assert "hunter2" not in str(err.value)


def test_secret_files_and_their_errors(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    assert resolve_secret("PW", {"PW_FILE": str(secret)}).get_secret_value() == SECRET
    assert resolve_secret("PW", {"PW": SECRET}).get_secret_value() == SECRET
    for env, why in [
        ({"PW": "a", "PW_FILE": str(secret)}, "both PW and PW_FILE are set"),
        ({"PW_FILE": str(tmp_path / "missing")}, "cannot read the secret file"),
        ({"PW": ""}, "environment variable PW is empty"),
        ({}, "environment variable PW (or PW_FILE) is not set"),
    ]:
        with pytest.raises(ValueError, match=re.escape(why)) as err:
            resolve_secret("PW", env)
        assert SECRET not in str(err.value)

    path = write(
        tmp_path,
        "connector: renshi\nschedule: {every: 1h}\nsource:\n  kind: http\n"
        "  base_url: http://127.0.0.1:1\n  auth: {kind: login, username: u, "
        "password_env: RENSHI_PASSWORD}\noptions: {year: '2026'}\n",
    )
    config = load_config(path, environ={"RENSHI_PASSWORD_FILE": str(secret)})
    assert config.source.auth.password_env.get() == SECRET
    shown = [repr(config), str(config), config.model_dump_json(), repr(config.source.auth)]
    assert all(SECRET not in s for s in shown)
    assert '"password_env":"RENSHI_PASSWORD"' in config.model_dump_json()


@pytest.mark.parametrize(
    "auth",
    [
        "{kind: bearer, token_env: TOKEN}",
        "{kind: oauth2_client_credentials, token_url: 'https://sso/oauth/token', client_id: zg, "
        "client_secret_env: TOKEN}",
        "{kind: cookie_session, login_path: /login, username: zg, password_env: TOKEN, "
        "extra_fields: {lt: x}, cookie_name: JSESSIONID}",
    ],
)
def test_auth_kinds_build_without_showing_secrets(tmp_path: Path, auth: str) -> None:
    path = write(
        tmp_path,
        "connector: pingjiao\nschedule: {every: 1h}\nsource:\n  kind: http\n"
        f"  base_url: https://pj.campus.local\n  auth: {auth}\n"
        "options: {term: 2026-2027-1}\n",
    )
    connector = build_connector(load_config(path, environ={"TOKEN": SECRET}))
    assert SECRET not in repr(connector) and SECRET not in repr(connector.api.__dict__)
    assert "**********" in repr(connector.api.auth)
    connector.close()


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("500ms") == timedelta(seconds=0.5)
    assert parse_duration(90) == timedelta(seconds=90)
    for bad in ("15 minutes", "m15", "", True, -1):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("url", "module", "advice"),
    [
        ("mysql+pymysql://reader@db/jw", "pymysql", ": pip install 'zhengai[mysql]'"),
        ("mariadb+pymysql://reader@db/jw", "pymysql", ": pip install 'zhengai[mysql]'"),
        ("mysql://reader@db/jw", "MySQLdb", "; write the URL as mysql+pymysql://… and pip install 'zhengai[mysql]'"),
        ("mssql+pymssql://reader@db/jw", "pymssql", ": pip install 'zhengai[mssql]'"),
        ("mssql+pyodbc://reader@db/jw", "pyodbc", ": pip install 'zhengai[mssql-odbc]'"),
        ("oracle+oracledb://reader@db/jw", "oracledb", ": pip install 'zhengai[oracle]'"),
        (
            "oracle://reader@db/jw",
            "cx_Oracle",
            "; write the URL as oracle+oracledb://… and pip install 'zhengai[oracle]'",
        ),
    ],
)
def test_missing_drivers_name_the_extra(url: str, module: str, advice: str) -> None:
    from pydantic import SecretStr

    if importlib.util.find_spec(module) is not None:  # the extra is installed: it just works
        SqlSource(url).close()
        return
    with pytest.raises(MissingDriverError) as err:
        SqlSource(url, password=SecretStr(SECRET))
    assert str(err.value).endswith(advice)
    assert SECRET not in str(err.value)


def test_runtime_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHENGAI_TOPIC_PREFIX", "process.")
    assert ConnectorSettings.from_env().topic_prefix == "process."
    assert ConnectorSettings.from_env({}).topic_prefix == ""  # only the environment given
    secret = tmp_path / "bm"
    secret.write_text("sqlite:///" + str(tmp_path / "bm.sqlite"), encoding="utf-8")
    s = ConnectorSettings.from_env(
        {"ZHENGAI_BROKER": "kafka://a:1,b:2", "ZHENGAI_TOPIC_PREFIX": "t1.", "ZHENGAI_BOOKMARKS_FILE": str(secret)},
        connectors_metrics_port=9109,
    )
    assert s.bootstrap_servers == "a:1,b:2" and s.topic_prefix == "t1."
    assert s.connectors_metrics_port == 9109 and "bm.sqlite" not in repr(s)
    store = open_bookmarks(s.bookmarks)
    store.put("x", "y", "1")
    assert type(store).__name__ == "SqlBookmarks" and store.get("x", "y") == "1"
    assert type(open_bookmarks(str(tmp_path / "b.json"))).__name__ == "JsonFileBookmarks"
    with pytest.raises(ValueError):
        ConnectorSettings.from_env({"ZHENGAI_TOPIC_PREFIX": "bad prefix"})
