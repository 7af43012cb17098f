"""The Faust app object, its topics, and the explicit topic creation the worker relies on.

The app is built from ``Settings`` the first time it is needed — ``configure(settings)`` first
when the settings do not come from the environment (``zhengai worker`` does). Agents live with
the area they serve and are listed here for discovery (Faust's ``autodiscover=True`` finds
nothing in a namespace package); this module imports none of them, so the ground floor does not
depend on the floors above.

Faust settings chosen for the delivery contract (see ``zhengai.ingest.stream``):
``topic_allow_declare=False`` (topics are created by :func:`ensure_topics` with their partition
counts, never implicitly), ``topic_disable_leader=True`` (no leader-election topic: nothing runs
on the leader only), ``stream_wait_empty=False`` (a batch waiting for its store write is simply
redelivered after a restart), ``consumer_auto_offset_reset="earliest"`` (a new group starts at
the beginning), ``producer_acks=-1`` (all in-sync replicas), no tables, and
``agent_supervisor=ExitOnCrashSupervisor`` (an agent that crashes ends the worker process with a
non-zero status instead of idling — ``zhengai.ingest.supervision``, which also keeps the stall
gauge on a timer of this app).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import faust

from zhengai.ingest.settings import Settings
from zhengai.ingest.supervision import ExitOnCrashSupervisor, StallWatch
from zhengai.ingest.topics import TOPICS, TopicSpec

__all__ = ["AGENT_MODULES", "configure", "settings", "get_app", "topic", "ensure_topics", "all_topic_specs"]

log = logging.getLogger("zhengai.app")

# Faust agents, timers and tasks, one module per area they serve.
AGENT_MODULES = ("zhengai.ingest.agents", "zhengai.rules.agents", "zhengai.warnings.agents")

_settings: Settings | None = None
_app: faust.App | None = None
_topics: dict[str, Any] = {}


def configure(new: Settings) -> faust.App:
    """Use these settings for the app; call before anything asks for the app or a topic."""
    global _settings
    if _app is not None and new != _settings:
        raise RuntimeError("the Faust app was already built with other settings; configure it first")
    _settings = new
    return get_app()


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def get_app() -> faust.App:
    global _app
    if _app is None:
        s = settings()
        _app = faust.App(
            s.app_id,
            broker=s.faust_broker,
            autodiscover=list(AGENT_MODULES),
            store="memory://",  # no Faust tables: units and facts live in the database (ingest/units.py, processors.py)
            topic_allow_declare=False,
            topic_disable_leader=True,
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=s.commit_interval,
            broker_session_timeout=s.session_timeout,
            broker_heartbeat_interval=s.heartbeat_interval,
            stream_wait_empty=False,
            stream_buffer_maxsize=s.stream_buffer,
            consumer_max_fetch_size=s.fetch_bytes,
            producer_linger=s.produce_linger,
            producer_max_batch_size=256 * 1024,
            producer_acks=-1,
            web_enabled=False,
            key_serializer="raw",
            value_serializer="raw",
            agent_supervisor=ExitOnCrashSupervisor,
        )
        stalls = StallWatch()

        @_app.timer(s.lag_interval)
        async def watch_stalls() -> None:
            try:
                stalls.sample()
            except Exception as exc:  # noqa: BLE001 — a metric must never take the worker down
                log.debug("stall measurement failed: %s", type(exc).__name__)

    return _app


def __getattr__(name: str) -> Any:  # ``from zhengai.ingest.app import app``
    if name == "app":
        return get_app()
    raise AttributeError(name)


def topic(spec: TopicSpec) -> Any:
    """The Faust topic of a spec under this deployment's prefix (raw bytes in and out: records
    are encoded and validated by ``zhengai.ingest.serde``)."""
    name = settings().topic(spec.name)
    if name not in _topics:
        _topics[name] = get_app().topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions,
        )
    return _topics[name]


def all_topic_specs() -> tuple[TopicSpec, ...]:
    """Every topic the worker reads or writes (the wire topics)."""
    return TOPICS


def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec] | None = None,
    prefix: str = "",
    *,
    replication_factor: int = 1,
    timeout_ms: int = 30000,
) -> dict[str, str]:
    """Create the topics that do not exist yet, with their partition counts and configs, and
    check those that do. Returns ``{topic: "created" | "exists" | "exists with N partitions"}``.

    An existing topic with another partition count is reported, not changed: adding partitions
    to a keyed topic moves entities between partitions and breaks their ordering."""
    from kafka.admin import KafkaAdminClient

    specs = tuple(specs if specs is not None else all_topic_specs())
    wanted = {prefix + s.name: s for s in specs}
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap.split(","), client_id="zhengai-admin", request_timeout_ms=timeout_ms
    )
    try:
        existing = {t["name"]: t for t in admin.describe_topics() if not t.get("error_code")}
        report: dict[str, str] = {}
        missing = {}
        for name, spec in wanted.items():
            if name in existing:
                n = len(existing[name].get("partitions") or [])
                report[name] = "exists" if n == spec.partitions else f"exists with {n} partitions"
                if n != spec.partitions:
                    log.warning("topic %s has %d partitions, %d expected; left as it is", name, n, spec.partitions)
            else:
                missing[name] = {
                    "num_partitions": spec.partitions,
                    "replication_factor": replication_factor,
                    "configs": dict(spec.config),
                }
        if missing:
            result = admin.create_topics(missing, timeout_ms=timeout_ms, raise_errors=False, wait_for_metadata=True)
            for t in result.get("topics", []):
                code = t.get("error_code", 0)
                if code not in (0, 36):  # 36 = TOPIC_ALREADY_EXISTS (a concurrent creator)
                    raise RuntimeError(
                        f"cannot create topic {t.get('name')}: error {code} {t.get('error_message') or ''}".strip()
                    )
                report[t["name"]] = "created" if code == 0 else "exists"
        return report
    finally:
        admin.close()
