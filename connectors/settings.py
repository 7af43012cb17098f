"""Where ``zhengai connectors run`` sends records and keeps its bookmarks: pydantic-settings,
environment prefix ``ZHENGAI_`` (the same ``ZHENGAI_BROKER`` and ``ZHENGAI_TOPIC_PREFIX`` as the
worker). Command-line options override the environment.

============================  ===============================================================
``ZHENGAI_BROKER``            Kafka bootstrap servers, ``host:port[,host:port]``
``ZHENGAI_TOPIC_PREFIX``      prefix of every topic name (tests, tenants)
``ZHENGAI_BOOKMARKS``         a SQLAlchemy URL (``postgresql://…``: the table
                              ``connector_bookmarks``) or a JSON file path; a secret (the URL
                              may hold a password), also from ``ZHENGAI_BOOKMARKS_FILE``
``ZHENGAI_CONNECTORS_DIR``    the folder of ``<name>.yaml`` files (default deploy/connectors)
``ZHENGAI_CONNECTORS_METRICS_PORT``  Prometheus ``/metrics`` port of the run loop; 0 = off
============================  ===============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from zhengai.ingest.topics import check_topic_prefix

from .bookmarks import JsonFileBookmarks, SqlBookmarks
from .config import resolve_secret

__all__ = ["ConnectorSettings", "open_bookmarks"]


class ConnectorSettings(BaseSettings):
    """Build with :meth:`from_env` (it reads the environment given, ``*_FILE`` secrets too)."""

    model_config = SettingsConfigDict(env_prefix="ZHENGAI_", extra="ignore", frozen=True)

    broker: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    topic_prefix: str = Field("", description="prefix of every topic name")
    bookmarks: SecretStr = Field(
        SecretStr("connector-bookmarks.json"), description="SQLAlchemy URL or JSON file of the bookmarks"
    )
    connectors_dir: Path = Field(Path("deploy/connectors"), description="connector YAML folder")
    connectors_metrics_port: int = Field(0, ge=0, le=65535, description="/metrics port; 0 = off")

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_topic_prefix(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # from_env() reads the environment it is given; reading os.environ here as well would
        # make an explicit environment (tests, the CLI's overrides) leak the process's.
        return (init_settings,)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(p.strip().split("://", 1)[-1] for p in self.broker.split(","))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ConnectorSettings:
        """The settings from ``environ`` (default: the process environment), with
        ``ZHENGAI_BOOKMARKS_FILE`` read, and non-None ``overrides`` applied."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            key = f"ZHENGAI_{name.upper()}"
            if key in env:
                values[name] = env[key]
        if "ZHENGAI_BOOKMARKS_FILE" in env:
            values["bookmarks"] = resolve_secret("ZHENGAI_BOOKMARKS", env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def open_bookmarks(spec: SecretStr | str) -> JsonFileBookmarks | SqlBookmarks:
    """``SqlBookmarks`` for a URL (``dialect://…``), else ``JsonFileBookmarks`` for a path."""
    value = spec.get_secret_value() if isinstance(spec, SecretStr) else spec
    if "://" in value:
        return SqlBookmarks(value)
    return JsonFileBookmarks(Path(value))
