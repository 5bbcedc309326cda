"""The derived-data cache: files that are slow to make and quick to read (the checked MOSES splits, bracket-SAFE
conversions, generated star-graph splits), in ``$INSERTGEN_CACHE`` (default ``~/.cache/insertgen``). Every
file there can be made again from the package and its data, so a cache that cannot be written only costs time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """The cache directory, created when missing."""
    path = Path(os.environ.get("INSERTGEN_CACHE", Path.home() / ".cache" / "insertgen"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Write ``arrays`` to the ``.npz`` file ``path`` through a temporary file of this process renamed into
    place (a reader sees the old file or the whole new one; two processes writing at once do not mix).
    Returns False, writing nothing, when the cache cannot be written (a read-only home, a full disk)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        tmp.replace(path)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
