"""Email, integration: the pipeline against a real SMTP server (aiosmtpd) on loopback — STARTTLS
with AUTH required, and implicit TLS — reading what arrived: envelope recipients, the Chinese
subject decoded from RFC 2047, the plain-text and HTML parts. A server outage delays delivery;
nothing is lost or sent twice."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import ssl
import subprocess
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from zhengai.ingest.records import Band
from zhengai.warnings.notify.config import LinkSettings, NotifyConfig, RoutePolicy
from zhengai.warnings.notify.mail import EmailSettings, EmailSink
from zhengai.warnings.notify.testing import NotifyWorld

pytestmark = pytest.mark.integration

USER, PASSWORD = "zhengai@example.edu.cn", "s3cret-smtp-pw"
ROUTE = RoutePolicy(group_wait=timedelta(0), max_items=1)
LINKS = NotifyConfig(links=LinkSettings(base_url="https://zg.example.edu.cn"))


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (the sink trusts it through ``ca_file``)."""
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return str(crt), str(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 — aiosmtpd's hook name
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(e.original_content or e.content, policy=email.policy.default)
            for e in self.envelopes
        ]


def _auth(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


def smtp_server(inbox: Inbox, cert, port: int, *, implicit: bool) -> Controller:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    if implicit:  # the whole connection is TLS; aiosmtpd's auth_require_tls only knows STARTTLS
        return Controller(
            inbox, hostname="127.0.0.1", port=port, ssl_context=ctx, authenticator=_auth, auth_require_tls=False
        )
    return Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        authenticator=_auth,
        auth_require_tls=True,
    )


def sink(cert, port: int, *, tls: str = "starttls", password: str = PASSWORD) -> EmailSink:
    return EmailSink(
        channel="email",
        settings=EmailSettings(
            host="127.0.0.1",
            port=port,
            tls=tls,
            username=USER,
            password=SecretStr(password),
            from_addr="诊改平台 <zhengai@example.edu.cn>",
            ca_file=cert[0],
            timeout=5,
        ),
    )


@pytest.fixture
def world(tmp_path) -> NotifyWorld:
    return NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=3, channels=("email",))


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_the_mail_arrives_with_chinese_subject_and_both_parts(world, cert, tls):
    inbox, port = Inbox(), free_port()
    server = smtp_server(inbox, cert, port, implicit=tls == "implicit")
    server.start()
    try:
        pipeline = world.pipeline(sink(cert, port, tls=tls), route=ROUTE, config=LINKS)
        world.warn("course.attendance_rate", "C001", Band.red)
        assert pipeline.run(world.clock()).total.sent == 1
    finally:
        server.stop()
    (envelope,) = inbox.envelopes
    assert envelope.rcpt_tos == ["t001@example.edu.cn"] and envelope.mail_from == USER
    raw_headers = envelope.original_content.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in raw_headers.lower() and raw_headers.isascii()  # RFC 2047 on the wire
    (mail,) = inbox.messages()
    assert mail["Subject"] == "【红色预警】课程「课程001」学生到课率新预警"
    assert mail["From"].addresses[0].display_name == "诊改平台"
    assert mail["To"].addresses[0].display_name == "教师001"
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "学生到课率 = 80%" in plain and "确认预警：https://zg.example.edu.cn/warnings/1/ack" in plain
    assert "<li>" in html and '<a href="https://zg.example.edu.cn/warnings/1/ack">确认预警</a>' in html
    assert "请于 2026-10-19 前" in plain and "请于 2026-10-19 前" in html


def test_a_grouped_mail_for_the_counsellor_masks_student_ids(world, cert):
    inbox, port = Inbox(), free_port()
    server = smtp_server(inbox, cert, port, implicit=False)
    server.start()
    try:
        pipeline = world.pipeline(sink(cert, port), route=RoutePolicy(group_wait=timedelta(0)))
        world.warn("student.attendance_rate", world.college.students[:3], Band.red)
        pipeline.run(world.clock())
    finally:
        server.stop()
    (mail,) = inbox.messages()
    assert inbox.envelopes[0].rcpt_tos == ["p-cs@example.edu.cn"]
    text = mail.get_body(("plain",)).get_content() + mail.get_body(("html",)).get_content() + mail["Subject"]
    assert "3 条预警通知" in mail["Subject"]
    assert "2401****01" in text and "2401000001" not in text


def test_smtp_down_then_back_delivers_each_mail_exactly_once(world, cert):
    inbox, port = Inbox(), free_port()
    pipeline = world.pipeline(sink(cert, port), route=ROUTE)
    world.warn("course.attendance_rate", world.college.courses, Band.red)
    t0 = world.clock()
    report = pipeline.run(t0).total  # nobody listening: connection refused
    assert report.retry_later == 3 and report.sent == 0
    for minutes in (1, 2, 5):
        pipeline.run(t0 + timedelta(minutes=minutes))
    assert world.outbox_status() == {"pending": 3}
    server = smtp_server(inbox, cert, port, implicit=False)
    server.start()
    try:
        for minutes in range(6, 60):
            pipeline.run(t0 + timedelta(minutes=minutes))
    finally:
        server.stop()
    assert world.outbox_status() == {"sent": 3}
    assert sorted(e.rcpt_tos[0] for e in inbox.envelopes) == [
        "t001@example.edu.cn",
        "t002@example.edu.cn",
        "t003@example.edu.cn",
    ]


def test_a_refused_login_is_fatal_and_the_password_stays_secret(world, cert, caplog):
    inbox, port = Inbox(), free_port()
    server = smtp_server(inbox, cert, port, implicit=False)
    server.start()
    try:
        the_sink = sink(cert, port, password="wrong-password")
        pipeline = world.pipeline(the_sink, route=ROUTE)
        world.warn("course.attendance_rate", "C001", Band.red)
        with caplog.at_level(logging.DEBUG):
            assert pipeline.run(world.clock()).total.failed == 1
    finally:
        server.stop()
    assert inbox.envelopes == [] and world.outbox_status() == {"failed": 1}
    assert "wrong-password" not in caplog.text and "wrong-password" not in repr(the_sink.settings)
