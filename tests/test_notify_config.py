"""Notification configuration: the shipped deploy files load; a broken file reports every
error with file, line and field; secrets come only from the environment or secret files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zhengai.warnings.notify.config import NotifyConfigError, load_calendar, load_notify_config, parse_span
from zhengai.warnings.notify.dingtalk import DingTalkRobotSink

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "notify"
SECRETS = {
    "ZHENGAI_NOTIFY_DINGTALK_WORK_APP_SECRET": "app-secret",
    "ZHENGAI_NOTIFY_JIAOWU_ROBOT_ACCESS_TOKEN": "robot-token",
    "ZHENGAI_NOTIFY_JIAOWU_ROBOT_SECRET": "SECrobot",
    "ZHENGAI_NOTIFY_EMAIL_PASSWORD": "mail-password",
}


@pytest.fixture
def no_secrets(monkeypatch):
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)


def test_the_shipped_configuration_loads_with_its_secrets_from_the_environment(monkeypatch, no_secrets):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    config = load_notify_config(DEPLOY / "notify.yaml")
    assert list(config.channels) == ["console", "dingtalk-work", "jiaowu-robot", "email"]
    robot = config.channels["jiaowu-robot"]
    assert robot.settings.access_token.get_secret_value() == "robot-token"
    assert "robot-token" not in repr(robot.settings) and "SECrobot" not in repr(robot.settings)
    assert isinstance(robot.build(), DingTalkRobotSink)
    assert robot.route.group_wait == timedelta(minutes=1) and [b.value for b in robot.route.match.bands] == ["red"]
    assert config.channels["email"].route.digest is not None
    assert len(config.inhibit) == 7 and config.links.base_url == "https://zhengai.example.edu.cn"
    assert config.escalation.routing().chains[0] == (
        "course_teacher",
        "course_owner",
        "major_leader",
        "dean",
        "quality_office",
    )
    assert config.reminders.repeat_interval == timedelta(days=7)
    national_day = datetime(2026, 10, 3, 4, tzinfo=UTC)
    until, window = config.calendar.mute_until(national_day, level="course", band="red", channel="email")
    assert window.name == "国庆节假期" and until == datetime(2026, 10, 7, 16, tzinfo=UTC)


def test_without_secrets_the_file_says_which_are_missing_or_lints_clean(no_secrets):
    with pytest.raises(NotifyConfigError) as info:
        load_notify_config(DEPLOY / "notify.yaml")
    missing = {e.field for e in info.value.errors}
    # the robot's 加签 secret is optional (keyword-only robots); the mail login needs its password
    assert missing == {"channels.dingtalk-work.app_secret", "channels.jiaowu-robot.access_token", "channels.email"}
    text = str(info.value)
    assert "ZHENGAI_NOTIFY_JIAOWU_ROBOT_ACCESS_TOKEN" in text and "ZHENGAI_NOTIFY_EMAIL_PASSWORD" in text
    lint = load_notify_config(DEPLOY / "notify.yaml", require_secrets=False)
    assert lint.channels["jiaowu-robot"].settings is None and lint.channels["console"].settings is not None


def test_secrets_from_a_secret_file(tmp_path, no_secrets):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "zhengai_notify_robot_access_token").write_text("file-token")
    path = tmp_path / "notify.yaml"
    path.write_text("channels:\n  robot:\n    type: dingtalk_robot\n", encoding="utf-8")
    config = load_notify_config(path, secrets_dir=secrets)
    assert config.channels["robot"].settings.access_token.get_secret_value() == "file-token"


BROKEN = """\
links:
  base_url: zhengai.example.edu.cn
route:
  group_wait: soon
channels:
  robot:
    type: dingtalk_robto
  mail:
    type: email
    host: smtp.example.edu.cn
    password: plain-text-in-git
    from_addr: 诊改平台 <zhengai@example.edu.cn>
    colour: red
  Bad Name:
    type: console
inhibit:
  - name: x
    source: school.a
    bands: [purple]
escalation:
  chains: [[course_teacher, janitor]]
unknown_section: 1
calendar: cal.yaml
"""

CAL = """\
windows:
  - name: 国庆
    start: 2026-10-07
    end: 2026-10-01
  - name: 寒假
    start: 2027-01-23
    end: 2027-02-21
    levels: [campus]
"""


def test_a_broken_file_reports_every_error_with_its_line(tmp_path, no_secrets):
    (tmp_path / "notify.yaml").write_text(BROKEN, encoding="utf-8")
    (tmp_path / "cal.yaml").write_text(CAL, encoding="utf-8")
    with pytest.raises(NotifyConfigError) as info:
        load_notify_config(tmp_path / "notify.yaml")
    got = {(Path(e.file).name, e.line, e.field) for e in info.value.errors}
    assert ("notify.yaml", 2, "links.base_url") in got
    assert ("notify.yaml", 4, "route.group_wait") in got
    assert ("notify.yaml", 7, "channels.robot.type") in got
    assert ("notify.yaml", 11, "channels.mail.password") in got  # a secret in the file
    assert ("notify.yaml", 13, "channels.mail.colour") in got
    assert ("notify.yaml", 14, "channels.Bad Name") in got
    assert ("notify.yaml", 19, "inhibit[0].bands[0]") in got
    assert ("notify.yaml", 21, "escalation.chains") in got
    assert ("notify.yaml", 22, "unknown_section") in got
    assert ("cal.yaml", 2, "windows[0]") in got
    assert ("cal.yaml", 8, "windows[1].levels[0]") in got
    text = str(info.value)
    assert "plain-text-in-git" not in text and "ZHENGAI_NOTIFY_MAIL_PASSWORD" in text
    assert "known: " in text and "dingtalk_robot" in text  # the valid channel types are named


def test_the_shipped_calendar_loads():
    calendar = load_calendar(DEPLOY / "calendar.yaml")
    assert {w.kind for w in calendar.windows} == {"holiday", "exam", "vacation"}
    exam = datetime(2027, 1, 12, 2, tzinfo=UTC)
    assert calendar.mute_until(exam, level="student", band="red", channel="x") is None  # red goes out in exam week
    assert calendar.mute_until(exam, level="student", band="yellow", channel="x") is not None


@pytest.mark.parametrize(
    "text, value",
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("0", timedelta(0)),
    ],
)
def test_spans(text, value):
    assert parse_span(text) == value
    with pytest.raises(ValueError):
        parse_span("7 days")
