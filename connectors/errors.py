"""The exceptions of the connectors, chosen by what the runner should do with them.

::

    Exception
    ├── MappingError              one row does not fit the mapping → that row becomes a DeadLetter,
    │                             the stream goes on (pydantic ValidationError is treated the same)
    ├── SourceError               the source itself failed → the stream stops, bookmark unchanged
    │   ├── RetryableSourceError    transient (timeout, 429, 5xx, database locked) → retried with
    │   │                           backoff by RetryPolicy; once attempts run out the stream stops
    │   │                           and the scheduler tries again soon, with backoff
    │   └── FatalSourceError        retrying cannot help (bad credentials, missing table, 404,
    │                               unreadable file) → the stream stops until the next scheduled run
    ├── DeliveryError             the records were not acknowledged (Kafka) → the stream stops,
    │   ├── RetryableDeliveryError  bookmark unchanged; retryable: broker unavailable, timeout
    │   └── FatalDeliveryError      fatal: message too large, topic missing or not authorised
    └── ImportError
        └── MissingDriverError    a database URL needs a driver that is not installed; the
                                  message names the pip extra that installs it

Messages never carry secrets (passwords, tokens) or personal data (身份证号, mobile numbers).
"""

from __future__ import annotations

__all__ = [
    "MappingError",
    "SourceError",
    "RetryableSourceError",
    "FatalSourceError",
    "DeliveryError",
    "RetryableDeliveryError",
    "FatalDeliveryError",
    "MissingDriverError",
    "is_retryable",
]


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


class DeliveryError(Exception):
    """Records were handed to the delivery but not acknowledged."""


class RetryableDeliveryError(DeliveryError):
    """The broker may accept them later (unavailable, timed out, leader moving)."""


class FatalDeliveryError(DeliveryError):
    """The broker will not accept them as they are (too large, unknown topic, not authorised)."""


class MissingDriverError(ImportError):
    """The database driver for a URL is not installed; the message says which extra to install."""


def is_retryable(exc: BaseException) -> bool:
    """Whether trying the same thing again later may succeed."""
    return isinstance(exc, (RetryableSourceError, RetryableDeliveryError))
