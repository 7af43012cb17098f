"""Prometheus metrics of the connectors. Labelled by connector, stream, topic or outcome only —
never by values or personal data."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
    "Stream runs by result (ok, stopped, source_error, delivery_error).",
    ["connector", "stream", "result"],
)

# --- health (health.py) -------------------------------------------------------------------
LAST_SUCCESS = Gauge(
    "zhengai_connector_last_success_timestamp_seconds",
    "Unix time of the connector's last run in which every stream succeeded.",
    ["connector"],
)
LAST_RUN = Gauge(
    "zhengai_connector_last_run_timestamp_seconds",
    "Unix time the connector's last run finished (successful or not).",
    ["connector"],
)
LAG = Gauge(
    "zhengai_connector_lag_seconds",
    "Age of the newest source row delivered (now - bookmark time), per incremental stream.",
    ["connector", "stream"],
)
OVERDUE = Gauge(
    "zhengai_connector_overdue",
    "1 while the connector has not succeeded within its expected window, else 0.",
    ["connector"],
)
OVERDUE_WARNINGS = Counter(
    "zhengai_connector_overdue_warnings",
    "Warnings to IT that a connector had not delivered within its expected window.",
    ["connector"],
)
CONSECUTIVE_FAILURES = Gauge(
    "zhengai_connector_consecutive_failures",
    "Runs in a row that ended with a stream error.",
    ["connector"],
)

# --- delivery (kafka.py) ------------------------------------------------------------------
PRODUCED = Counter(
    "zhengai_connector_produced",
    "Records acknowledged by Kafka, per topic.",
    ["topic"],
)
DELIVERY_SECONDS = Histogram(
    "zhengai_connector_delivery_seconds",
    "Time from the first send of a batch to the acknowledgement of its last record.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
