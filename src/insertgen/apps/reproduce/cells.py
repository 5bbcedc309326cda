"""The files of a reproduce directory: its settings, one record per finished cell, and the key of a cell."""

from __future__ import annotations

import json
from pathlib import Path

SETTINGS = "reproduce.json"
TRAINED = "trained.json"


def cell_key(task: str, model: str, seed: int) -> str:
    return f"{task}--{model}--seed{seed}"


def read_cell(path: Path) -> dict | None:
    """A finished cell's record, or None when missing or unreadable (then the cell is run again)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and "samplers" in record else None
