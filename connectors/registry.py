"""The campus systems by name. Adding one: ADDING.md."""

from __future__ import annotations

from .base import Connector
from .caiwu import CaiwuConnector
from .jiaowu import JiaowuConnector
from .pingjiao import PingjiaoConnector
from .renshi import RenshiConnector
from .tables import SYSTEMS

__all__ = ["CONNECTORS", "connector_class", "TITLES"]

CONNECTORS: dict[str, type[Connector]] = {
    c.name: c for c in (JiaowuConnector, RenshiConnector, PingjiaoConnector, CaiwuConnector)
}

TITLES: dict[str, str] = {"jiaowu": "教务", "renshi": "人事", "pingjiao": "评教", "caiwu": "财务"}

# The other campus systems: metric tables mapped by configuration (tables.py).
CONNECTORS.update(SYSTEMS)
TITLES.update({name: cls.title for name, cls in SYSTEMS.items()})


def connector_class(name: str) -> type[Connector]:
    """The connector class registered under ``name``; a KeyError lists the valid names."""
    try:
        return CONNECTORS[name]
    except KeyError:
        known = ", ".join(sorted(CONNECTORS))
        raise KeyError(f"unknown connector {name!r}; known: {known}") from None
