"""Console and file sinks: the embedded default's channels."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from zhengai.warnings.notify.base import Message, RetryableSinkError, Sink, register

__all__ = ["ConsoleSink", "FileSink", "MemorySink"]


@register
class ConsoleSink(Sink):
    """Prints the first ``limit`` messages in full and counts the rest, so a large first run does
    not bury the summary."""

    channel = "console"

    def __init__(self, stream: TextIO | None = None, limit: int = 5):
        self.stream = stream or sys.stdout
        self.limit = limit
        self.sent = 0

    def send(self, message: Message) -> None:
        self.sent += 1
        if self.sent <= self.limit:
            print(f"\n── 通知 #{message.outbox_id} → {message.recipient_id or '质量办'}\n{message.body}", file=self.stream)

    def close(self) -> None:
        if self.sent > self.limit:
            print(f"\n…另有 {self.sent - self.limit} 条通知已写入通知文件。", file=self.stream)


@register
class FileSink(Sink):
    """Appends each message as one JSON line (UTF-8); the file is the demo's 'inbox'."""

    channel = "file"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    def send(self, message: Message) -> None:
        try:
            self._fh.write(json.dumps(
                {"outbox_id": message.outbox_id, "to": message.recipient_id, "subject": message.subject, "body": message.body},
                ensure_ascii=False) + "\n")
        except OSError as exc:  # disk full and the like: try again later
            raise RetryableSinkError(str(exc)) from exc

    def close(self) -> None:
        self._fh.close()


@register
class MemorySink(Sink):
    """Keeps messages in a list; for unit tests. ``fail_next`` makes the next sends fail."""

    channel = "memory"

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.fail_next = 0

    def send(self, message: Message) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RetryableSinkError("channel down (simulated)")
        self.messages.append(message)
