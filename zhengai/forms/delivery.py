"""Where accepted values go: Kafka (the worker stores and judges them) when a broker is given,
else the embedded pipeline over the same store (the demo and single-process installations).
Either way the same path as every connector — never a direct write of observations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from zhengai.rules.loader import RuleSet

__all__ = ["open_delivery"]


def open_delivery(
    store,
    rules: RuleSet,
    *,
    broker: str | None = None,
    topic_prefix: str = "",
    clock: Callable[[], datetime] | None = None,
):
    """A ``Delivery`` with ``close()``; the embedded one judges with the store's directory."""
    if broker:
        from zhengai.connectors.kafka import KafkaDelivery

        return KafkaDelivery(broker, topic_prefix=topic_prefix, client_id="zhengai-forms")
    return _Embedded(store, rules, clock or (lambda: datetime.now(UTC)))


class _Embedded:
    def __init__(self, store, rules: RuleSet, clock: Callable[[], datetime]):
        from zhengai.embedded import Pipeline

        self.pipeline = Pipeline(store, rules, clock=clock)
        self.pipeline.directory = store.directory.load()

    def deliver(self, records) -> None:
        self.pipeline.deliver(records)

    def close(self) -> None:
        pass
