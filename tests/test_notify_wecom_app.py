"""WeCom application message (企业微信应用消息): a personal channel. Payload, token cache and
refresh, the error table (httpx.MockTransport, no network), and through the pipeline it carries
the recipient's own signed action links — unlike the group robots."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from zhengai.ingest.records import Band
from zhengai.warnings.notify.base import Contact, FatalSinkError, Message, Notice, RetryableSinkError, sink_kinds
from zhengai.warnings.notify.config import LinkSettings, NotifyConfig, RoutePolicy
from zhengai.warnings.notify.testing import NotifyWorld
from zhengai.warnings.notify.wecom_app import WeComAppSettings, WeComAppSink

AT = datetime(2026, 10, 12, 1, 0, tzinfo=UTC)


class Api:
    def __init__(self, *sends):
        self.sends = list(sends)
        self.requests: list[httpx.Request] = []
        self.tokens = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/cgi-bin/gettoken":
            self.tokens += 1
            return httpx.Response(200, json={"errcode": 0, "access_token": f"tok{self.tokens}", "expires_in": 7200})
        return httpx.Response(200, json=self.sends.pop(0) if len(self.sends) > 1 else self.sends[0])


def sink(api: Api) -> WeComAppSink:
    return WeComAppSink(
        channel="wxapp",
        settings=WeComAppSettings(corp_id="ww1", corp_secret=SecretStr("s3cret"), agent_id=1000002),
        transport=httpx.MockTransport(api),
    )


def msg(at=AT) -> Message:
    n = Notice(1, 1, "opened", "red", "【红色预警】课程「高等数学」学生到课率", "- 指标：到课率 = 80%")
    return Message(n.subject, n.markdown, Contact("T0001", "张老师"), (n,), at)


def test_payload_token_cache_and_refresh():
    api = Api({"errcode": 42001, "errmsg": "access_token expired"}, {"errcode": 0, "errmsg": "ok"})
    s = sink(api)
    assert "wecom_app" in sink_kinds() and s.personal
    s.send(msg())  # expired token: fetched again once within the send
    sent = [r for r in api.requests if r.url.path == "/cgi-bin/message/send"]
    assert api.tokens == 2 and [r.url.params["access_token"] for r in sent] == ["tok1", "tok2"]
    body = sent[-1].read().decode()
    assert '"touser":"T0001"' in body.replace(" ", "") and '"agentid":1000002' in body.replace(" ", "")
    s.send(msg(AT + timedelta(minutes=5)))
    assert api.tokens == 2  # cached
    assert all("s3cret" not in str(r.url) for r in api.requests if r.url.path != "/cgi-bin/gettoken")


@pytest.mark.parametrize(
    "answer, error",
    [
        ({"errcode": -1, "errmsg": "system busy"}, RetryableSinkError),
        ({"errcode": 45009, "errmsg": "api freq out of limit"}, RetryableSinkError),
        ({"errcode": 81013, "errmsg": "user & party & tag all invalid"}, FatalSinkError),
        ({"errcode": 0, "errmsg": "ok", "invaliduser": "T0001"}, FatalSinkError),
    ],
)
def test_error_table(answer, error):
    with pytest.raises(error):
        sink(Api(answer)).send(msg())


def test_through_the_pipeline_it_carries_the_recipients_own_links(tmp_path, monkeypatch):
    monkeypatch.setenv("ZHENGAI_LINK_SECRET", "test-secret-0123456789abcdef")
    world = NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=1, channels=("wxapp",))
    api = Api({"errcode": 0, "errmsg": "ok"})
    pipeline = world.pipeline(
        sink(api),
        route=RoutePolicy(group_wait=timedelta(0)),
        config=NotifyConfig(links=LinkSettings(base_url="https://zg.example.edu.cn")),
    )
    world.warn("course.attendance_rate", "C001", Band.red)
    assert pipeline.run(world.clock()).total.sent == 1
    (sent,) = [r for r in api.requests if r.url.path == "/cgi-bin/message/send"]
    content = sent.read().decode("utf-8")
    assert re.search(r"/warnings/1/ack\?p=T001&e=\d+&t=[\w-]{43}", content)
