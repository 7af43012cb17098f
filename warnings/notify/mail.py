"""Email over SMTP: STARTTLS or implicit TLS, login from secrets, HTML + plain-text alternative.

The subject and display names are Chinese; ``email.policy.SMTP`` encodes them as RFC 2047
encoded-words and the bodies as UTF-8. SMTP answers decide retry: 4xx (and a dropped or refused
connection, a timeout) are retryable, 5xx and a failed login are fatal, a certificate that does
not verify is fatal (a configuration problem, not an outage).
"""

from __future__ import annotations

import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Literal

from pydantic import SecretStr, model_validator

from zhengai.warnings.notify.base import FatalSinkError, Message, RetryableSinkError, Sink, SinkSettings, register
from zhengai.warnings.notify.markup import to_html, to_plain

__all__ = ["EmailSink", "EmailSettings", "build_email"]


class EmailSettings(SinkSettings):
    host: str
    port: int = 587
    tls: Literal["starttls", "implicit"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_addr: str  # "诊改平台 <zhengai@example.edu.cn>"
    ca_file: str | None = None  # trust this CA as well (a campus relay with its own CA; tests)
    fallback_to: str | None = None  # who gets notices for people without an email address
    timeout: float = 20.0

    @model_validator(mode="after")
    def _login_pair(self) -> EmailSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (the password from the environment or a secret file)")
        return self


def _address(text: str) -> Address:
    name, addr = parseaddr(text)
    if "@" not in addr:
        raise ValueError(f"not an email address: {text!r}")
    user, domain = addr.rsplit("@", 1)
    return Address(display_name=name, username=user, domain=domain)


def build_email(message: Message, *, from_addr: str, to: Address) -> EmailMessage:
    sender = _address(from_addr)
    mail = EmailMessage(policy=SMTP)
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = to
    mail["Date"] = format_datetime(message.at)
    mail["Message-ID"] = make_msgid(idstring=f"zg{'-'.join(map(str, message.outbox_ids[:5]))}", domain=sender.domain)
    mail["X-Zhengai-Outbox"] = ",".join(map(str, message.outbox_ids))
    body = message.body  # links are inline: email does not render buttons (renders_links is False)
    mail.set_content(to_plain(body), charset="utf-8")
    mail.add_alternative(to_html(body, title=message.subject), subtype="html", charset="utf-8")
    return mail


@register
class EmailSink(Sink):
    kind = "email"
    Settings = EmailSettings
    max_bytes = 200_000

    def __init__(self, *, channel: str | None = None, settings: EmailSettings):
        super().__init__(channel=channel)
        self.settings = settings
        _address(settings.from_addr)  # fail at load time, not at the first send

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.settings.ca_file:
            ctx.load_verify_locations(cafile=self.settings.ca_file)
        return ctx

    def _recipient(self, message: Message) -> Address:
        r = message.recipient
        if r is not None and r.email:
            return _address(r.email) if not r.name else Address(display_name=r.name, addr_spec=r.email)
        if self.settings.fallback_to:
            return _address(self.settings.fallback_to)
        raise FatalSinkError("the recipient has no email address in the directory and no fallback_to is set")

    def send(self, message: Message) -> None:
        s = self.settings
        to = self._recipient(message)
        mail = build_email(message, from_addr=s.from_addr, to=to)
        try:
            if s.tls == "implicit":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                if s.tls == "starttls":
                    smtp.ehlo()
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if s.username and s.password is not None:
                    smtp.login(s.username, s.password.get_secret_value())
                smtp.send_message(mail, from_addr=_address(s.from_addr).addr_spec, to_addrs=[to.addr_spec])
        except smtplib.SMTPAuthenticationError as exc:
            raise FatalSinkError(f"SMTP login refused ({exc.smtp_code})") from None
        except smtplib.SMTPNotSupportedError:
            raise FatalSinkError("the SMTP server does not offer STARTTLS or AUTH") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(400 <= c < 500 for c in codes):
                raise RetryableSinkError(f"SMTP recipient deferred ({codes[0]})") from None
            raise FatalSinkError(f"SMTP recipient refused ({codes[0] if codes else '?'})") from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise RetryableSinkError(f"SMTP temporary failure ({exc.smtp_code})") from None
            raise FatalSinkError(f"SMTP refused the message ({exc.smtp_code})") from None
        except ssl.SSLCertVerificationError as exc:
            raise FatalSinkError(f"SMTP server certificate does not verify: {exc.verify_message}") from None
        except (TimeoutError, smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise RetryableSinkError(f"SMTP connection failed ({type(exc).__name__})") from None
