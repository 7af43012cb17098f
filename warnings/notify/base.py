"""Sinks behind one base class and a registry.

Nothing calls a sink directly: notifications are written to the outbox in the same transaction as
the warning event, and the dispatcher (``dispatch.py``) hands pending outbox rows to the sink of
their channel. A sink raises ``RetryableSinkError`` when trying again later may work (channel
down, rate limited) and ``FatalSinkError`` when it will not (bad recipient); the dispatcher owns
the retrying.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

__all__ = ["Message", "Sink", "SinkError", "RetryableSinkError", "FatalSinkError", "register", "sink_class"]


@dataclass(frozen=True)
class Message:
    outbox_id: int
    recipient_id: str | None
    subject: str
    body: str  # markdown; personal data already masked


class SinkError(Exception):
    retryable = False


class RetryableSinkError(SinkError):
    retryable = True


class FatalSinkError(SinkError):
    retryable = False


class Sink(ABC):
    """A notification channel. ``send`` is called once per pending outbox row, in outbox order;
    it returns when the channel accepted the message and raises a ``SinkError`` otherwise.
    ``close`` is called once when the dispatcher is done."""

    channel: str = ""

    @abstractmethod
    def send(self, message: Message) -> None: ...

    def close(self) -> None:  # noqa: B027 — optional hook
        pass


_REGISTRY: dict[str, type[Sink]] = {}


def register(cls: type[Sink]) -> type[Sink]:
    if not cls.channel:
        raise TypeError(f"{cls.__name__} must set `channel`")
    _REGISTRY[cls.channel] = cls
    return cls


def sink_class(channel: str) -> type[Sink]:
    try:
        return _REGISTRY[channel]
    except KeyError:
        raise KeyError(f"unknown notification channel {channel!r}; known: {', '.join(sorted(_REGISTRY))}") from None
