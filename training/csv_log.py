"""The training CSV log shared by the MTPano and SAP trainers: rows keyed by step, safe across resumes."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def truncate_log(path: Path, step: int) -> None:
    """Drop rows beyond ``step`` (written after the last checkpoint of a killed run)."""
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if rows:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(r for r in rows if int(r["step"]) <= step)


def append_row(path: Path, row: dict, fields: Sequence[str] | None = None) -> None:
    """Append ``row`` (header first for a new file); ``fields`` fixes the columns, else the row's keys."""
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields or list(row), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
