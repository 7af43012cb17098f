"""Prometheus counters for connector runs. Labelled by connector and stream only — never by
values or personal data."""

from __future__ import annotations

from prometheus_client import Counter

ROWS = Counter(
    "zhengai_connector_rows",
    "Source rows by outcome (read, rejected = dead-lettered).",
    ["connector", "stream", "outcome"],
)
RECORDS_SENT = Counter(
    "zhengai_connector_records_sent",
    "Records acknowledged by the delivery (dead letters excluded).",
    ["connector", "stream"],
)
STREAM_RUNS = Counter(
    "zhengai_connector_stream_runs",
    "Stream runs by result (ok, source_error, delivery_error).",
    ["connector", "stream", "result"],
)
