"""A BookmarkStore that survives restarts without a database: one JSON file, replaced
atomically so a crash mid-write never leaves a half-written bookmark."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["JsonFileBookmarks"]


class JsonFileBookmarks:
    """``{"<connector>": {"<stream>": "<cursor>"}}`` in ``path``; created on the first put."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def get(self, connector: str, stream: str) -> str | None:
        return self._load().get(connector, {}).get(stream)

    def put(self, connector: str, stream: str, value: str) -> None:
        data = self._load()
        data.setdefault(connector, {})[stream] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __repr__(self) -> str:
        return f"JsonFileBookmarks({str(self.path)!r})"
