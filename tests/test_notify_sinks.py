"""Sinks, unit level: payloads, signing, and the error table of each channel (httpx
MockTransport, no network); the registry; the small pure pieces (rate window, digest hour,
markup); secrets kept out of errors, reprs and logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, time, timedelta
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

from zhengai.warnings.notify._http import RedactQuerySecrets
from zhengai.warnings.notify.base import (
    Contact,
    FatalSinkError,
    Link,
    Message,
    Notice,
    RetryableSinkError,
    Sink,
    register,
    sink_class,
    sink_kinds,
)
from zhengai.warnings.notify.dingtalk import DingTalkRobotSettings, DingTalkRobotSink, sign
from zhengai.warnings.notify.dingtalk_work import DingTalkWorkSettings, DingTalkWorkSink
from zhengai.warnings.notify.grouping import next_digest, pack
from zhengai.warnings.notify.mail import EmailSettings, EmailSink, build_email
from zhengai.warnings.notify.markup import to_html, to_plain
from zhengai.warnings.notify.ratelimit import RateLimit, SlidingWindow
from zhengai.warnings.notify.wecom import WeComRobotSettings, WeComRobotSink

AT = datetime(2026, 10, 12, 1, 0, tzinfo=UTC)
TEACHER = Contact("T001", "张老师", "t001@example.edu.cn", "dt001", "13912345678")
TOKEN, SECRET = "tok-abc", "SECxyz"


def message(
    links=(), recipient=TEACHER, body="【红色预警 · 新预警】课程「高等数学」学生到课率\n- 指标：到课率 = 80%"
) -> Message:
    notice = Notice(1, 1, "opened", "red", "【红色预警】课程「高等数学」学生到课率新预警", body, tuple(links))
    return Message(notice.subject, body, recipient, (notice,), AT, links=tuple(links))


class Recorder:
    """A MockTransport handler answering from a list, recording the requests."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)


def robot(recorder: Recorder, **kw) -> DingTalkRobotSink:
    settings = DingTalkRobotSettings(access_token=SecretStr(TOKEN), secret=SecretStr(SECRET), **kw)
    return DingTalkRobotSink(channel="robot", settings=settings, transport=httpx.MockTransport(recorder))


# --- DingTalk robot --------------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_base64_and_url_encoded_exactly_once():
    ts = int(AT.timestamp() * 1000)
    expected = base64.b64encode(hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest()).decode()
    assert sign(SECRET, ts) == expected
    rec = Recorder({"errcode": 0})
    robot(rec).send(message())
    (request,) = rec.requests
    raw = dict(p.split("=", 1) for p in request.url.query.decode().split("&"))
    assert raw["timestamp"] == str(ts) and raw["access_token"] == TOKEN
    assert unquote(raw["sign"]) == expected and "%25" not in raw["sign"]  # encoded once, not twice
    assert not set("+/=") & set(raw["sign"])
    assert parse_qs(urlsplit(str(request.url)).query)["sign"] == [expected]  # what DingTalk decodes
    assert request.url.path == "/robot/send"


def test_markdown_payload_mentions_by_user_id_and_adds_the_keyword():
    rec = Recorder({"errcode": 0})
    robot(rec, keyword="诊改").send(message())
    body = json.loads(rec.requests[0].content)
    assert body["msgtype"] == "markdown" and body["at"] == {"isAtAll": False, "atUserIds": ["dt001"]}
    assert body["markdown"]["text"].endswith("诊改\n\n@dt001") and "13912345678" not in json.dumps(body)


def test_action_card_with_one_or_more_links():
    rec = Recorder({"errcode": 0})
    sink = robot(rec, msgtype="actionCard")
    assert sink.renders_links
    sink.send(message(links=[Link("登记改进措施", "https://x/1")]))
    sink.send(message(links=[Link("确认预警", "https://x/a"), Link("登记改进措施", "https://x/i")]))
    one, two = (json.loads(r.content)["actionCard"] for r in rec.requests)
    assert (one["singleTitle"], one["singleURL"]) == ("登记改进措施", "https://x/1")
    assert two["btns"] == [
        {"title": "确认预警", "actionURL": "https://x/a"},
        {"title": "登记改进措施", "actionURL": "https://x/i"},
    ]


@pytest.mark.parametrize(
    "answer, error, retry_after",
    [
        ({"errcode": 130101, "errmsg": "send too fast"}, RetryableSinkError, timedelta(minutes=10)),
        ({"errcode": -1, "errmsg": "系统繁忙"}, RetryableSinkError, None),
        ({"errcode": 310000, "errmsg": "sign not match"}, FatalSinkError, None),
        ({"errcode": 300001, "errmsg": "token is not exist"}, FatalSinkError, None),
        (httpx.Response(502), RetryableSinkError, None),
        (httpx.Response(429), RetryableSinkError, None),
        (httpx.Response(403), FatalSinkError, None),
        (httpx.Response(200, text="<html>proxy error</html>"), RetryableSinkError, None),
        (httpx.ConnectError("refused"), RetryableSinkError, None),
        (httpx.ReadTimeout("slow"), RetryableSinkError, None),
    ],
)
def test_robot_error_table(answer, error, retry_after):
    with pytest.raises(error) as info:
        robot(Recorder(answer)).send(message())
    assert type(info.value) is error and info.value.retry_after == retry_after
    assert TOKEN not in str(info.value) and SECRET not in str(info.value)


# --- DingTalk work notification -------------------------------------------------------------------------


def work(recorder: Recorder) -> DingTalkWorkSink:
    settings = DingTalkWorkSettings(app_key="dingkey", app_secret=SecretStr("app-secret-1"), agent_id=42)
    return DingTalkWorkSink(channel="work", settings=settings, transport=httpx.MockTransport(recorder))


def test_work_notification_gets_a_token_once_and_sends_to_the_person():
    rec = Recorder({"errcode": 0, "access_token": "T1", "expires_in": 7200}, {"errcode": 0, "task_id": 1})
    sink = work(rec)
    sink.send(message(links=[Link("确认预警", "https://x/a")]))
    sink.send(message())
    assert [r.url.path for r in rec.requests] == [
        "/gettoken",
        "/topapi/message/corpconversation/asyncsend_v2",
        "/topapi/message/corpconversation/asyncsend_v2",
    ]
    assert rec.requests[1].url.params["access_token"] == "T1"
    first = json.loads(rec.requests[1].content)
    assert first["agent_id"] == 42 and first["userid_list"] == "dt001"
    assert first["msg"]["msgtype"] == "action_card" and first["msg"]["action_card"]["single_url"] == "https://x/a"
    assert json.loads(rec.requests[2].content)["msg"]["msgtype"] == "markdown"


def test_work_notification_refreshes_an_expired_token_once():
    rec = Recorder(
        {"errcode": 0, "access_token": "OLD", "expires_in": 7200},
        {"errcode": 42001},
        {"errcode": 0, "access_token": "NEW", "expires_in": 7200},
        {"errcode": 0},
    )
    work(rec).send(message())
    assert [r.url.params.get("access_token") for r in rec.requests if "asyncsend" in r.url.path] == ["OLD", "NEW"]


def test_work_notification_token_expiry_follows_the_message_clock():
    token = {"errcode": 0, "access_token": "T", "expires_in": 7200}
    rec = Recorder(token, {"errcode": 0}, token, {"errcode": 0})
    sink = work(rec)
    sink.send(message())
    later = message()
    sink.send(Message(later.subject, later.body, later.recipient, later.notices, AT + timedelta(hours=3)))
    assert sum(r.url.path == "/gettoken" for r in rec.requests) == 2


@pytest.mark.parametrize("recipient", [None, Contact("T9", "无钉钉")])
def test_work_notification_without_a_dingtalk_id_is_fatal(recipient):
    with pytest.raises(FatalSinkError):
        work(Recorder({"errcode": 0})).send(message(recipient=recipient))


def test_bad_app_credentials_are_fatal_and_secret():
    with pytest.raises(FatalSinkError) as info:
        work(Recorder({"errcode": 40089, "errmsg": "invalid appkey or appsecret"})).send(message())
    assert "app-secret-1" not in str(info.value)


# --- WeCom robot ---------------------------------------------------------------------------------------------


def wecom(recorder: Recorder) -> WeComRobotSink:
    return WeComRobotSink(
        channel="wecom", settings=WeComRobotSettings(key=SecretStr("wkey")), transport=httpx.MockTransport(recorder)
    )


def test_wecom_markdown_and_error_table():
    rec = Recorder({"errcode": 0})
    wecom(rec).send(message())
    (request,) = rec.requests
    assert request.url.path == "/cgi-bin/webhook/send" and request.url.params["key"] == "wkey"
    content = json.loads(request.content)["markdown"]["content"]
    assert content.startswith("**【红色预警】") and "到课率 = 80%" in content
    with pytest.raises(RetryableSinkError) as info:
        wecom(Recorder({"errcode": 45009})).send(message())
    assert info.value.retry_after == timedelta(minutes=1)
    with pytest.raises(FatalSinkError):
        wecom(Recorder({"errcode": 93000})).send(message())


def test_wecom_cuts_what_is_longer_than_4096_bytes_and_says_so():
    rec = Recorder({"errcode": 0})
    wecom(rec).send(message(body="预警" * 3000))
    content = json.loads(rec.requests[0].content)["markdown"]["content"]
    assert len(content.encode()) <= 4096 and content.endswith("（内容过长已截断，请打开链接查看全部）")


# --- email ----------------------------------------------------------------------------------------------


def email_sink(**kw) -> EmailSink:
    values = dict(host="127.0.0.1", from_addr="诊改平台 <zhengai@example.edu.cn>") | kw
    return EmailSink(channel="email", settings=EmailSettings(**values))


def test_email_headers_and_parts():
    mail = build_email(
        message(links=()), from_addr="诊改平台 <zhengai@example.edu.cn>", to=email_sink()._recipient(message())
    )
    raw = mail.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"Subject: =?utf-8?" in head
    assert mail["To"].addresses[0].addr_spec == "t001@example.edu.cn"
    assert mail["X-Zhengai-Outbox"] == "1"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]


def test_email_without_an_address_goes_to_the_fallback_or_fails():
    nobody = Contact("T9", "无邮箱")
    assert (
        email_sink(fallback_to="质量办 <zlb@example.edu.cn>")._recipient(message(recipient=nobody)).addr_spec
        == "zlb@example.edu.cn"
    )
    with pytest.raises(FatalSinkError):
        email_sink()._recipient(message(recipient=nobody))


def test_email_settings_refuse_half_a_login_and_plaintext():
    with pytest.raises(ValueError):
        EmailSettings(host="h", from_addr="a@b.c", username="u")
    with pytest.raises(ValueError):
        EmailSettings(host="h", from_addr="a@b.c", tls="none")


# --- registry, contacts, logs ------------------------------------------------------------------------------------


def test_registry_knows_every_kind_and_names_them_when_asked_for_another():
    assert {"console", "file", "memory", "dingtalk_robot", "dingtalk_work", "email", "wecom_robot"} <= set(sink_kinds())
    with pytest.raises(KeyError) as info:
        sink_class("sms")
    assert "dingtalk_robot" in str(info.value) and "email" in str(info.value)

    class Other(Sink):
        kind = "email"

        def send(self, message):  # pragma: no cover
            pass

    with pytest.raises(TypeError):
        register(Other)


def test_contact_repr_and_settings_repr_hide_personal_and_secret_data():
    assert "13912345678" not in repr(TEACHER) and "t001@" not in repr(TEACHER)
    assert repr(message()).count("13912345678") == 0
    assert TOKEN not in repr(robot(Recorder({"errcode": 0})).settings)


def test_httpx_request_logs_have_their_credentials_masked(caplog):
    rec = Recorder({"errcode": 0})
    with caplog.at_level(logging.INFO, logger="httpx"):
        robot(rec).send(message())
    assert "HTTP Request: POST" in caplog.text
    assert TOKEN not in caplog.text and "access_token=***" in caplog.text and "sign=***" in caplog.text
    record = logging.LogRecord(
        "httpx", logging.INFO, "", 0, "GET %s", (httpx.URL("https://h/gettoken?appkey=k&appsecret=s3"),), None
    )
    RedactQuerySecrets().filter(record)
    assert "s3" not in record.getMessage() and "appkey=k" in record.getMessage()


# --- pure pieces ----------------------------------------------------------------------------------------------


def test_sliding_window():
    limit = RateLimit(3, timedelta(minutes=1))
    t = AT
    w = SlidingWindow(limit, [t - timedelta(seconds=70), t - timedelta(seconds=50), t - timedelta(seconds=10)])
    assert w.next_free(t) == t  # two inside the last minute
    w.record(t)
    assert w.next_free(t) == t + timedelta(seconds=10)  # the call 50 s ago leaves the window in 10 s
    w.block(t + timedelta(minutes=10))
    assert w.next_free(t) == t + timedelta(minutes=10)
    q = w.copy()
    q.record(q.next_free(t))
    assert w.next_free(t) == t + timedelta(minutes=10) and len(q.calls) == len(w.calls) + 1


def test_next_digest_is_the_next_local_hour():
    tz = ZoneInfo("Asia/Shanghai")
    at = time(8, 0)
    assert next_digest(datetime(2026, 10, 12, 1, 0, tzinfo=UTC), at, tz) == datetime(2026, 10, 13, 8, 0, tzinfo=tz)
    assert next_digest(datetime(2026, 10, 11, 23, 59, tzinfo=UTC), at, tz) == datetime(2026, 10, 12, 8, 0, tzinfo=tz)
    assert next_digest(datetime(2026, 10, 12, 0, 0, tzinfo=UTC), at, tz) == datetime(2026, 10, 13, 8, 0, tzinfo=tz)


def test_pack_by_count_and_bytes():
    assert pack([1] * 7, max_items=3, max_bytes=None, size=lambda i: 1) == [[1] * 3, [1] * 3, [1]]
    assert pack([5, 5, 5, 20, 1], max_items=10, max_bytes=10, size=lambda i: i) == [[5, 5], [5], [20], [1]]


def test_markup_escapes_and_links():
    html = to_html("## 标题\n- 值 <b>1</b> 与 **重点**\n[确认](https://x/1?a=1&b=2)\n\n段落", title="主题")
    assert "&lt;b&gt;1&lt;/b&gt;" in html and "<strong>重点</strong>" in html
    assert '<a href="https://x/1?a=1&amp;b=2">确认</a>' in html and "<h3>标题</h3>" in html and "<h1" in html
    assert to_plain("- [确认](https://x/1) **重点**") == "- 确认：https://x/1 重点\n"
