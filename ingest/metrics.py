"""Prometheus metrics of the streaming worker (prometheus-client, default registry — the same
registry the connectors count into, so one ``/metrics`` endpoint shows both).

Labels are small fixed sets: logical topic names (without the deployment's prefix), reason codes,
levels, bands, partitions. Never a value, an entity id, a name or any other personal data.
Durations are in seconds.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "DEAD_LETTER_REASONS",
    "RECORDS_IN",
    "RECORDS_OUT",
    "DEAD_LETTERS",
    "VERDICTS",
    "EVALUATION_SECONDS",
    "STORE_WRITE_SECONDS",
    "CONSUMER_LAG",
    "RULEBOOK_RELOADS",
    "RULEBOOK_ERRORS",
    "RULES_LOADED",
    "UNITS_EMITTED",
    "UNITS_PENDING",
    "PARKED",
    "DIRECTORY_ENTITIES",
    "REPLICA_SKIPPED",
    "STORE_RETRIES",
    "count_dead_letter",
    "serve",
]

# Why a record was dead-lettered: the only values the `reason` label takes. The words go into the
# DeadLetter record itself; the metric carries only the code.
DEAD_LETTER_REASONS = frozenset(
    {
        "tombstone",  # an empty message where a record was expected
        "too_large",  # over serde.MAX_BYTES
        "not_utf8",
        "bad_json",
        "too_deep",  # JSON nested deeper than serde.MAX_DEPTH (refused before parsing)
        "number_too_large",  # a number literal over serde's digit limit, or a float that overflows
        "non_finite",  # NaN / Infinity in the JSON
        "not_envelope",  # JSON, but not {"type", "v", "data"}
        "unknown_type",
        "unsupported_version",
        "invalid_record",  # the envelope is fine, a field is not
        "wrong_topic",  # a valid record of a type this topic does not carry
        "unknown_metric",  # no rule (enabled or not) knows the metric
        "unknown_entity",  # the entity is not in the directory
        "evaluation_error",  # the rule cannot judge this value (e.g. a boolean for a numeric rule)
        "store_rejected",  # the store refused the record itself (not an outage)
    }
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

RECORDS_IN = Counter(
    "zhengai_records_in",
    "Messages taken by an agent, by logical topic and agent (a topic read by two agents counts twice).",
    ["topic", "agent"],
)
RECORDS_OUT = Counter(
    "zhengai_records_out", "Messages produced and acknowledged by the broker, by logical topic.", ["topic"]
)
DEAD_LETTERS = Counter("zhengai_dead_letters", "Records sent to the dead-letter topic, by reason code.", ["reason"])
VERDICTS = Counter("zhengai_verdicts", "Verdicts judged and stored, by level and band.", ["level", "band"])
EVALUATION_SECONDS = Histogram(
    "zhengai_evaluation_seconds",
    "Time to evaluate one batch of observations against the rulebook.",
    buckets=_LATENCY_BUCKETS,
)
STORE_WRITE_SECONDS = Histogram(
    "zhengai_store_write_seconds",
    "Time of one store transaction, by what was written.",
    ["what"],
    buckets=_LATENCY_BUCKETS,
)
STORE_RETRIES = Counter("zhengai_store_retries", "Store batches retried after an error, by what was written.", ["what"])
CONSUMER_LAG = Gauge(
    "zhengai_consumer_lag",
    "Messages not yet committed by the worker group (end offset − committed offset).",
    ["topic", "partition"],
)
RULEBOOK_RELOADS = Counter(
    "zhengai_rulebook_reloads", "Rulebook changes seen, by result (loaded, refused).", ["result"]
)
RULEBOOK_ERRORS = Counter("zhengai_rulebook_errors", "Located errors in refused rulebook changes.")
RULES_LOADED = Gauge("zhengai_rules_loaded", "Enabled rules in the running rulebook.")
UNITS_EMITTED = Counter(
    "zhengai_units_emitted", "Units of derived metrics emitted as observations, by unit kind.", ["kind"]
)
UNITS_PENDING = Gauge(
    "zhengai_units_pending", "Dirty units of derived metrics waiting to be emitted (not yet due, settling or claimed)."
)
PARKED = Counter("zhengai_observations_parked", "Observations parked until the directory can place their entity.")
DIRECTORY_ENTITIES = Gauge("zhengai_directory_entities", "Entities in this worker's directory replica.")
REPLICA_SKIPPED = Counter(
    "zhengai_directory_replica_unexpected_errors",
    "Directory records the replica skipped after an error other than a refusal by decode.",
)


def count_dead_letter(reason: str) -> None:
    if reason not in DEAD_LETTER_REASONS:  # a programming error: labels must stay a fixed set
        raise ValueError(f"unknown dead-letter reason code {reason!r}")
    DEAD_LETTERS.labels(reason=reason).inc()


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on a background thread (no-op for port 0)."""
    if port:
        start_http_server(port, addr=addr)
