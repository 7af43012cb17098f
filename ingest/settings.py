"""Worker settings: pydantic-settings, environment prefix ``ZHENGAI_``.

Every value can come from the environment (``ZHENGAI_BROKER``, ``ZHENGAI_STORE_URL`` …) or from
the ``zhengai worker`` options, which override the environment. The store URL carries a password,
so it is a ``SecretStr``: it never appears in ``repr``, logs or metrics; ask for it with
``settings.store_url.get_secret_value()`` at the one place that connects.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zhengai.ingest.topics import check_topic_prefix

__all__ = ["Settings", "DEFAULT_STORE_URL", "store_url"]

# The one default store of every command: the demo's SQLite file, so that after `make demo` the
# worker, the notifier, the web pages and the warnings commands all read and write the same store.
DEFAULT_STORE_URL = "sqlite:///zhengai-demo-out/zhengai.sqlite"


def store_url() -> str:
    """``$ZHENGAI_STORE_URL``, else the default store (commands use it for their ``--store``)."""
    import os

    return os.environ.get("ZHENGAI_STORE_URL") or DEFAULT_STORE_URL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZHENGAI_", extra="ignore", frozen=True)

    # --- where things are ------------------------------------------------------------------
    broker: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers: host:port[,host:port] or kafka://host:port"
    )
    store_url: SecretStr = Field(SecretStr(DEFAULT_STORE_URL), description="SQLAlchemy URL of the warning store")
    rulebook: Path | None = Field(None, description="rulebook folder (default: the shipped rulebook)")
    publish_gate: bool = Field(
        True,
        description="run the last rulebook published with `zhengai rules publish` "
        "(the folder, hot-reloaded, only until the first publication)",
    )
    topic_prefix: str = Field("", description="prefix of every topic name, e.g. 'test1.' (isolates tests and tenants)")
    app_id: str = Field("zhengai", description="Faust app id = Kafka consumer group")
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus /metrics port; 0 = off")

    # --- batching and timing (seconds) -----------------------------------------------------
    batch_size: int = Field(500, ge=1, le=100_000, description="records per agent batch")
    batch_within: float = Field(
        0.05, gt=0, description="longest wait to fill a batch (latency at low rates: half of it on average)"
    )
    commit_interval: float = Field(1.0, gt=0, description="how often acknowledged offsets are committed")
    produce_linger: float = Field(
        0.005, ge=0, description="how long the producer gathers a batch's records into one request"
    )
    stream_buffer: int = Field(16384, ge=64, description="messages each agent may have fetched ahead of its batches")
    fetch_bytes: int = Field(
        1024 * 1024,
        ge=64 * 1024,
        description="bytes fetched per partition at a time: bigger batches, fewer store transactions;"
        " smaller interleaves topics sooner",
    )
    rules_poll_interval: float = Field(5.0, gt=0, description="how often the rulebook folder is checked for changes")
    directory_wait: float = Field(60.0, ge=0, description="how long agents wait at start for the directory replica")
    lag_interval: float = Field(10.0, gt=0, description="how often consumer lag is measured")
    session_timeout: float = Field(
        30.0, ge=6, le=300, description="a worker silent this long leaves the group (its partitions move)"
    )
    heartbeat_interval: float = Field(3.0, gt=0, description="heartbeats to the group coordinator")

    # --- derived metrics (units) ---------------------------------------------------------------
    window_grace: float = Field(6 * 3600.0, ge=0, description="a week's units close this long after the week ends")
    window_settle: float = Field(
        2.0, ge=0, description="a closed unit is emitted once no fact touched it for this long"
    )
    directory_settle: float = Field(
        10.0, ge=0, description="units that read the directory wait this long after it last changed"
    )
    window_lease: float = Field(
        15.0, gt=0, description="a claimed unit is claimed again this long after a worker died with it"
    )
    window_flush_interval: float = Field(1.0, gt=0, description="how often due units are looked for")
    catchup_wait: float = Field(
        60.0, ge=0, description="while an agent catches up on a backlog, units wait at most this long"
    )
    park_wait: float = Field(
        24 * 3600.0,
        gt=0,
        description="how long an observation waits for its entity in the directory before it is dead-lettered",
    )

    # --- evaluation ---------------------------------------------------------------------------
    evaluate_as_observed: bool = Field(
        False,
        description="backfill mode: judge each observation as of when it was observed (a first load of history); "
        "default: as of now (live)",
    )
    publish_verdicts: bool = Field(
        True, description="publish every stored verdict on zg.verdicts (a side output for other consumers)"
    )
    notify_channels: tuple[str, ...] = Field(("console", "file"), description="outbox channels a warning is queued for")

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_topic_prefix(value)

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("broker is empty")
        return value.strip()

    @property
    def bootstrap_servers(self) -> str:
        """host:port[,host:port] for the Kafka clients."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(","))

    @property
    def faust_broker(self) -> str:
        """kafka://host:port[;kafka://host:port] for Faust."""
        return ";".join(f"kafka://{hp}" for hp in self.bootstrap_servers.split(","))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"
