"""zhengai.connectors — pull data from campus systems and hand typed records downstream.

Offers:

* the framework (:mod:`.base`: ``Stream``, ``Connector``, ``run_connector``, ``Delivery``,
  ``BookmarkStore``, ``MemoryBookmarks``); persisted bookmarks (``JsonFileBookmarks``,
  ``SqlBookmarks``); schedules, health and the run loop (:mod:`.schedule`, :mod:`.health`,
  :mod:`.runner`); Kafka delivery (``KafkaDelivery``);
* the source kinds (:mod:`.sql`, :mod:`.http` with :mod:`.http_auth`, :mod:`.files`);
* configuration (:mod:`.config` models, ``load_config`` / ``build_connector`` with located
  errors) and the read-only check behind ``zhengai connectors check`` (:mod:`.check`);
* the fakes for tests (:mod:`.testing`), and the four campus systems (教务 ``JiaowuConnector``,
  人事 ``RenshiConnector``, 评教 ``PingjiaoConnector``, 财务 ``CaiwuConnector``);
  ``connector_class(name)`` looks one up by name.

Adding a connector: see ``ADDING.md`` beside this file.
"""

from __future__ import annotations

from .base import (
    BookmarkStore,
    Connector,
    Delivery,
    MemoryBookmarks,
    Record,
    Reject,
    RunReport,
    Stream,
    StreamStats,
    run_connector,
)
from .bookmarks import JsonFileBookmarks, SqlBookmarks
from .caiwu import CaiwuConnector
from .config import ConnectorConfig
from .errors import (
    DeliveryError,
    FatalDeliveryError,
    FatalSourceError,
    MappingError,
    MissingDriverError,
    RetryableDeliveryError,
    RetryableSourceError,
    SourceError,
)
from .health import ConnectorHealth
from .jiaowu import JiaowuConnector
from .kafka import KafkaDelivery
from .loading import ConfigError, build_connector, load_config, load_configs
from .pingjiao import PingjiaoConnector
from .registry import CONNECTORS, connector_class
from .renshi import RenshiConnector
from .retry import RetryPolicy
from .runner import ConnectorJob, Runner
from .schedule import Schedule

__all__ = [
    "BookmarkStore",
    "CONNECTORS",
    "CaiwuConnector",
    "ConfigError",
    "Connector",
    "ConnectorConfig",
    "ConnectorHealth",
    "ConnectorJob",
    "Delivery",
    "DeliveryError",
    "FatalDeliveryError",
    "FatalSourceError",
    "JiaowuConnector",
    "JsonFileBookmarks",
    "KafkaDelivery",
    "MappingError",
    "MemoryBookmarks",
    "MissingDriverError",
    "PingjiaoConnector",
    "Record",
    "Reject",
    "RenshiConnector",
    "RetryPolicy",
    "RetryableDeliveryError",
    "RetryableSourceError",
    "RunReport",
    "Runner",
    "Schedule",
    "SourceError",
    "SqlBookmarks",
    "Stream",
    "StreamStats",
    "build_connector",
    "connector_class",
    "load_config",
    "load_configs",
    "run_connector",
]
