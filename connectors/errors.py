"""The exceptions a connector raises, chosen by what the runner should do with them.

::

    Exception
    ├── MappingError            one row does not fit the mapping → that row becomes a DeadLetter,
    │                           the stream goes on (pydantic ValidationError is treated the same)
    └── SourceError             the source itself failed → the stream stops, bookmark unchanged
        ├── RetryableSourceError  transient (timeout, 429, 5xx, database locked) → retried with
        │                         backoff by RetryPolicy; once attempts run out the stream stops
        └── FatalSourceError      retrying cannot help (bad credentials, missing table, 404,
                                  unreadable file) → the stream stops at once

Messages never carry secrets (passwords, tokens) or personal data (身份证号, mobile numbers).
"""

from __future__ import annotations

__all__ = ["MappingError", "SourceError", "RetryableSourceError", "FatalSourceError"]


class MappingError(Exception):
    """A bad row: the message is the dead-letter reason (English, names the field and why)."""


class SourceError(Exception):
    """The source failed as a whole (not one row)."""


class RetryableSourceError(SourceError):
    """A transient failure; ``retry_after`` (seconds) is the source's own hint, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalSourceError(SourceError):
    """A failure that retrying cannot fix."""
