"""A stopped source stands in for the stale warnings of the indicators it feeds.

While a connector is overdue (its latest health report, ``zhengai.ingest.source_health``), the
warnings whose data came from it (the latest observation of the rule's metric for the entity was
``<connector>.<stream>``) still go stale — the transition is recorded — but nobody is notified
of each one: the one ``school.source_health`` warning to 信息中心 says which sources stopped
(:func:`source_detail`) and so explains all of them at once.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine

from zhengai.connectors.registry import TITLES
from zhengai.ingest.source_health import overdue_sources
from zhengai.warnings.schema import ObservationRow

__all__ = ["source_down", "source_detail"]


def _latest_source(conn, metric: str, entity_id: str) -> str | None:
    return conn.execute(
        select(ObservationRow.source)
        .where(ObservationRow.metric == metric, ObservationRow.entity_id == entity_id)
        .order_by(ObservationRow.observed_at.desc())
        .limit(1)
    ).scalar()


def source_down(engine: Engine, metric: str, entity_id: str) -> bool:
    """Whether the source that last fed ``metric`` for ``entity_id`` is overdue now."""
    with engine.connect() as conn:
        down = overdue_sources(conn)
        if not down:
            return False
        source = _latest_source(conn, metric, entity_id)
    return source is not None and source.split(".", 1)[0] in down


def source_detail(engine: Engine) -> str:
    """One Chinese line per overdue source, for the 信息中心 notification."""
    with engine.connect() as conn:
        down = overdue_sources(conn)
    if not down:
        return ""
    lines = [
        f"- 停止更新的数据源：{TITLES.get(c, c)}（{c}），自 {at:%Y-%m-%d %H:%M} UTC 起未按时成功运行"
        for c, at in sorted(down.items())
    ]
    return (
        "\n"
        + "\n".join(lines)
        + "\n- 依赖这些数据源的指标不再逐条发送“数据缺失”通知，请先恢复数据接口（zhengai connectors check <名称>）。"
    )
