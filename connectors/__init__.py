"""zhengai.connectors — pull data from campus systems and hand typed records downstream.

Offers the framework (:mod:`.base`: ``Stream``, ``Connector``, ``run_connector``, ``Delivery``,
``BookmarkStore``, ``MemoryBookmarks``; ``JsonFileBookmarks``), the source kinds (:mod:`.sql`,
:mod:`.http`, :mod:`.files`), the fakes for tests (:mod:`.testing`), and the four campus systems (教务 ``JiaowuConnector``, 人事 ``RenshiConnector``, 评教 ``PingjiaoConnector``,
财务 ``CaiwuConnector``). ``connector_class(name)`` looks one up by name. Adding a connector:
see ``ADDING.md`` beside this file.
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
from .bookmarks import JsonFileBookmarks
from .caiwu import CaiwuConnector
from .errors import FatalSourceError, MappingError, RetryableSourceError, SourceError
from .jiaowu import JiaowuConnector
from .pingjiao import PingjiaoConnector
from .renshi import RenshiConnector
from .retry import RetryPolicy

__all__ = [
    "BookmarkStore",
    "CONNECTORS",
    "CaiwuConnector",
    "Connector",
    "Delivery",
    "FatalSourceError",
    "JiaowuConnector",
    "JsonFileBookmarks",
    "MappingError",
    "MemoryBookmarks",
    "PingjiaoConnector",
    "Record",
    "Reject",
    "RenshiConnector",
    "RetryPolicy",
    "RetryableSourceError",
    "RunReport",
    "SourceError",
    "Stream",
    "StreamStats",
    "connector_class",
    "run_connector",
]

CONNECTORS: dict[str, type[Connector]] = {
    c.name: c for c in (JiaowuConnector, RenshiConnector, PingjiaoConnector, CaiwuConnector)
}


def connector_class(name: str) -> type[Connector]:
    """The connector class registered under ``name``; a KeyError lists the valid names."""
    try:
        return CONNECTORS[name]
    except KeyError:
        known = ", ".join(sorted(CONNECTORS))
        raise KeyError(f"unknown connector {name!r}; known: {known}") from None
