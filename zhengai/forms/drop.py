"""The drop folder for filled forms, with the conventions of ``connectors/files.py``: every
``*.xlsx`` in it (oldest first; names starting with ``.`` or ``~$`` — Excel's lock files — and files
younger than ``settle`` seconds are left for later) is taken in; an accepted or partly accepted
file moves to ``processed/<time>-<name>``, a refused one to ``rejected/``; every file with any
problem gets ``rejected/<time>-<name>.report.csv`` (UTF-8 with BOM, so Excel opens it) listing each
error located (sheet, row, column, why). A file dropped there was submitted when it was written
(its modification time); the filler's staff id on the form says who entered it.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from pathlib import Path

from zhengai.connectors.files import _free  # one implementation of "a free name in a folder"
from zhengai.forms.intake import Intake, Outcome

__all__ = ["inbox", "process_folder"]


def inbox(folder: Path, settle: float = 0.0) -> list[Path]:
    now, found = time.time(), []
    for p in Path(folder).iterdir():
        if p.name.startswith((".", "~$")) or not p.is_file() or p.suffix.lower() not in (".xlsx", ".xls"):
            continue
        if now - p.stat().st_mtime >= settle:
            found.append((p.stat().st_mtime, p.name, p))
    return [p for _, _, p in sorted(found)]


def process_folder(folder: Path, intake: Intake, *, settle: float = 0.0) -> list[tuple[str, Outcome]]:
    folder = Path(folder)
    done = []
    for path in inbox(folder, settle):
        at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        outcome = intake.submit(path.read_bytes(), path.name, by=None, via="drop", at=at)
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        if outcome.errors:
            report = _free(folder / "rejected", f"{stamp}-{path.name}.report.csv")
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(("结果 outcome", "错误位置与原因 error (sheet, row, column, why)"))
            w.writerows((outcome.summary, e) for e in outcome.errors)
            report.write_text(buf.getvalue(), encoding="utf-8-sig")
        target = _free(folder / ("rejected" if outcome.status == "refused" else "processed"), f"{stamp}-{path.name}")
        path.replace(target)
        done.append((path.name, outcome))
    return done
