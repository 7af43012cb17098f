"""Console, file and memory sinks: the embedded default's channels and the tests' fake."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from zhengai.warnings.notify.base import FatalSinkError, Message, RetryableSinkError, Sink, SinkSettings, register

__all__ = ["ConsoleSink", "FileSink", "MemorySink", "ConsoleSettings", "FileSettings"]


class ConsoleSettings(SinkSettings):
    limit: int = 5


class FileSettings(SinkSettings):
    path: Path


@register
class ConsoleSink(Sink):
    """Prints the first ``limit`` messages in full and counts the rest, so a large first run does
    not bury the summary."""

    kind = "console"
    Settings = ConsoleSettings

    def __init__(self, stream: TextIO | None = None, limit: int = 5, *, channel: str | None = None):
        super().__init__(channel=channel)
        self.stream = stream or sys.stdout
        self.limit = limit
        self.sent = 0

    @classmethod
    def from_settings(cls, channel: str, settings: SinkSettings, **extra) -> ConsoleSink:
        assert isinstance(settings, ConsoleSettings)  # the registry pairs each sink with its settings class
        return cls(extra.get("stream"), settings.limit, channel=channel)

    def send(self, message: Message) -> None:
        self.sent += 1
        if self.sent <= self.limit:
            ids = ", ".join(f"#{i}" for i in message.outbox_ids)
            who = (message.recipient.name or message.recipient.person_id) if message.recipient else None
            print(f"\n── 通知 {ids} → {who or '质量办'}\n{message.body}", file=self.stream)

    def close(self) -> None:
        if self.sent > self.limit:
            print(f"\n…另有 {self.sent - self.limit} 条通知未在控制台展开（见其他渠道或通知记录）。", file=self.stream)


@register
class FileSink(Sink):
    """Appends each message as one JSON line (UTF-8); the file is the demo's 'inbox'."""

    kind = "file"
    Settings = FileSettings

    def __init__(self, path: Path, *, channel: str | None = None):
        super().__init__(channel=channel)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    @classmethod
    def from_settings(cls, channel: str, settings: SinkSettings, **extra) -> FileSink:
        assert isinstance(settings, FileSettings)  # the registry pairs each sink with its settings class
        return cls(settings.path, channel=channel)

    def send(self, message: Message) -> None:
        record = {
            "outbox_id": message.outbox_id,
            "outbox_ids": list(message.outbox_ids),
            "to": message.recipient_id,
            "kind": message.kind,
            "subject": message.subject,
            "body": message.body,
            "links": [{"title": link.title, "url": link.url} for link in message.links],
        }
        try:
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._fh.flush()
        except OSError as exc:  # disk full and the like: try again later
            raise RetryableSinkError(f"cannot write the notification file ({type(exc).__name__})") from exc

    def close(self) -> None:
        self._fh.close()


@register
class MemorySink(Sink):
    """Keeps messages in a list; for tests. ``fail_next`` makes the next sends fail retryably;
    ``fatal_next`` fatally."""

    kind = "memory"

    def __init__(self, *, channel: str | None = None, **_: object) -> None:
        super().__init__(channel=channel)
        self.messages: list[Message] = []
        self.fail_next = 0
        self.fatal_next = 0

    @classmethod
    def from_settings(cls, channel: str, settings: SinkSettings, **extra) -> MemorySink:
        return cls(channel=channel)

    def send(self, message: Message) -> None:
        if self.fatal_next > 0:
            self.fatal_next -= 1
            raise FatalSinkError("rejected (simulated)")
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RetryableSinkError("channel down (simulated)")
        self.messages.append(message)
