"""Sinks behind one base class and a registry.

Nothing calls a sink directly. The warning service writes one outbox row per transition and
channel in the warning's own transaction; the notification pipeline (``pipeline.py``) takes
pending rows through its stages — inhibit → silence/calendar → group → rate limit → send with
retry — and hands each composed ``Message`` to the sink of its channel. A *kind* of sink
(``dingtalk_robot``, ``email`` …) is a class registered here; a *channel* is one configured
instance of a kind (``jiaowu-robot``), named in the outbox and in ``deploy/notify/notify.yaml``.

Exceptions — the sink says what the caller should do; the pipeline owns the retrying::

    SinkError
    ├── RetryableSinkError   try later: channel down, timeout, HTTP 5xx/429, rate limited.
    │                        ``retry_after`` carries a wait the channel asked for (DingTalk
    │                        130101: ten minutes); the pipeline waits at least that long.
    └── FatalSinkError       will not work by retrying: bad signature (310000), bad recipient,
                             rejected content. The rows are parked as failed, with the error.

Error texts never contain secrets, tokens, URLs with tokens, or personal contact data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic_settings import BaseSettings, SettingsConfigDict

from zhengai.warnings.notify.ratelimit import RateLimit

__all__ = [
    "Contact",
    "Link",
    "Notice",
    "Message",
    "Sink",
    "SinkSettings",
    "SinkError",
    "RetryableSinkError",
    "FatalSinkError",
    "register",
    "sink_class",
    "sink_kinds",
]


@dataclass(frozen=True)
class Contact:
    """The recipient, resolved from the directory when the message is sent. Contact fields are
    personal data: the repr shows the person id only, so a logged message leaks nothing."""

    person_id: str | None
    name: str | None = None
    email: str | None = None
    dingtalk_user_id: str | None = None
    mobile: str | None = None

    def __repr__(self) -> str:
        return f"Contact(person_id={self.person_id!r})"


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Notice:
    """One outbox row inside a message (a grouped message carries several)."""

    outbox_id: int
    warning_id: int | None
    kind: str  # the warning event kind: opened, severity_up, escalated, resolved …
    band: str
    subject: str
    markdown: str  # masked; action links inline
    links: tuple[Link, ...] = ()
    markdown_for_buttons: str = ""  # the same without the action line, for sinks that show buttons


@dataclass(frozen=True)
class Message:
    """What a sink sends: subject and markdown body (masked; Chinese), the recipient, the
    notices it carries, and action links. ``links`` are the message's buttons for sinks that
    render buttons (``Sink.renders_links``); every other sink finds them inline in ``body``.
    ``at`` is the pipeline's ``now`` — sinks sign and date with it, never with a clock of
    their own, so a test can control time end to end."""

    subject: str
    body: str
    recipient: Contact | None
    notices: tuple[Notice, ...]
    at: datetime
    links: tuple[Link, ...] = ()
    kind: str = "single"  # single | group | digest

    @property
    def outbox_ids(self) -> tuple[int, ...]:
        return tuple(n.outbox_id for n in self.notices)

    @property
    def outbox_id(self) -> int:
        return self.notices[0].outbox_id

    @property
    def recipient_id(self) -> str | None:
        return self.recipient.person_id if self.recipient else None


class SinkError(Exception):
    retryable = False

    def __init__(self, message: str, *, retry_after: timedelta | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RetryableSinkError(SinkError):
    retryable = True


class FatalSinkError(SinkError):
    retryable = False


class SinkSettings(BaseSettings):
    """A sink kind's settings. Plain fields come from the channel's entry in ``notify.yaml``;
    ``SecretStr`` fields only from the environment (``ZHENGAI_NOTIFY_<CHANNEL>_<FIELD>``) or a
    secret file of that name (lower-case) in the secrets directory — never from the YAML."""

    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False, frozen=True)


class Sink(ABC):
    """A notification channel.

    - ``__init__`` / ``from_settings``: once, when the pipeline is built from the configuration.
    - ``send(message)``: once per composed message, in queue order, only when the pipeline's
      stages let it through and the rate limit has room. Returns when the channel accepted the
      message; raises ``RetryableSinkError`` or ``FatalSinkError`` otherwise. Must not retry
      itself (the pipeline does, through the outbox, with backoff).
    - ``close()``: once, when the pipeline is done with the sink.

    Class attributes a kind sets: ``kind`` (registry name), ``Settings`` (its settings model);
    optionally ``rate_limit`` (the pipeline queues to stay under it), ``max_bytes`` (the body
    budget the pipeline packs notices under), ``renders_links`` (True when the sink shows
    ``Message.links`` as buttons, so the body need not repeat them), ``personal`` (False for a
    channel many people read — a group robot: its messages then carry no personal action link,
    only a link to 我的预警, which asks for the reader's own identity).
    """

    kind: ClassVar[str] = ""
    Settings: ClassVar[type[SinkSettings]] = SinkSettings
    rate_limit: RateLimit | None = None
    max_bytes: int | None = None
    renders_links: bool = False
    personal: bool = True

    def __init__(self, *, channel: str | None = None):
        self.channel = channel or self.kind

    @classmethod
    def from_settings(cls, channel: str, settings: SinkSettings, **extra: Any) -> Sink:
        """Build the sink of one configured channel; ``extra`` passes test seams (transport)."""
        return cls(channel=channel, settings=settings, **extra)  # type: ignore[call-arg]

    @property
    def rate_bucket(self) -> str:
        """What the rate limit counts against: one robot (channel) by default."""
        return f"{self.kind}:{self.channel}"

    @abstractmethod
    def send(self, message: Message) -> None: ...

    def close(self) -> None:  # noqa: B027 — optional hook
        pass


_REGISTRY: dict[str, type[Sink]] = {}


def register(cls: type[Sink]) -> type[Sink]:
    if not cls.kind:
        raise TypeError(f"{cls.__name__} must set `kind`")
    if cls.kind in _REGISTRY and _REGISTRY[cls.kind] is not cls:
        raise TypeError(f"sink kind {cls.kind!r} is already registered by {_REGISTRY[cls.kind].__name__}")
    _REGISTRY[cls.kind] = cls
    return cls


def sink_class(kind: str) -> type[Sink]:
    _load_builtin()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown notification channel type {kind!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def sink_kinds() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    # The built-in sinks register themselves on import; importing them here keeps the registry
    # complete whichever module a caller imported first.
    from zhengai.warnings.notify import console, dingtalk, dingtalk_work, mail, wecom, wecom_app  # noqa: F401
