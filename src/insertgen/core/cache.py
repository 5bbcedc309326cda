"""The derived-data cache: files that are slow to make and quick to read (the checked MOSES splits, bracket-SAFE
conversions, the novelty and KL references, fragment prompts, generated star-graph splits), in
``$INSERTGEN_CACHE`` (default ``~/.cache/insertgen``). Every file there can be made again from the package and
its data, so a cache that cannot be written only costs time.

Integrity: every cache file ``F`` is written with a sidecar ``F.sha256`` holding its SHA-256 digest, its size
and the insertgen version that made it, both through temporary files of the writing process renamed into place
(a reader sees an old or a whole new file; two processes building one cache at once leave one good copy). A
reader (:func:`read_cache_bytes`) checks the digest and the version; a truncated, edited or foreign file, or
one without its sidecar, is deleted and read as missing, so the caller builds it again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from insertgen.core.errors import InsertgenError
from insertgen.core.version import __version__

SIDECAR = ".sha256"


def cache_dir() -> Path:
    """The cache directory, created when missing; one that cannot be made or written (a read-only home) is an
    InsertgenError naming INSERTGEN_CACHE, the variable that puts it elsewhere."""
    given = os.environ.get("INSERTGEN_CACHE")
    path = Path(given) if given else Path.home() / ".cache" / "insertgen"
    try:
        path.mkdir(parents=True, exist_ok=True)
        writable = os.access(path, os.W_OK)
    except OSError as e:
        writable, reason = False, e.strerror
    else:
        reason = "not writable"
    if not writable:
        where = "INSERTGEN_CACHE" if given else "the default cache directory (set INSERTGEN_CACHE to a writable one)"
        raise InsertgenError(f"cannot use {path} as the cache ({reason}): {where}")
    return path


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR)


def write_cache_bytes(path: Path, data: bytes) -> bool:
    """Write ``data`` to cache file ``path`` with its digest beside it (module docstring). Returns False,
    leaving no partial file, when the cache cannot be written (a read-only home, a full disk)."""
    path = Path(path)
    record = json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "insertgen": __version__})
    tmp, tmp_sidecar = (p.with_name(f"{p.name}.{os.getpid()}.tmp") for p in (path, _sidecar(path)))
    try:
        tmp.write_bytes(data)
        tmp_sidecar.write_text(record)
        tmp.replace(path)
        tmp_sidecar.replace(_sidecar(path))
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        tmp_sidecar.unlink(missing_ok=True)
        return False


def read_cache_bytes(path: Path) -> bytes | None:
    """The bytes of cache file ``path`` when its sidecar vouches for them (same digest and size, made by this
    insertgen version); otherwise None, and a damaged or foreign file is deleted so that it is built again."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = json.loads(_sidecar(path).read_text())
        data = path.read_bytes()
        good = (record.get("insertgen") == __version__ and record.get("bytes") == len(data)
                and record.get("sha256") == hashlib.sha256(data).hexdigest())
    except (OSError, ValueError, AttributeError):
        good = False
    if good:
        return data
    for stale in (path, _sidecar(path)):
        try:
            stale.unlink(missing_ok=True)
        except OSError:  # a read-only cache: it is rebuilt in memory every time
            pass
    return None


def read_cache_text(path: Path) -> str | None:
    data = read_cache_bytes(path)
    try:
        return None if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def write_cache_text(path: Path, text: str) -> bool:
    return write_cache_bytes(path, text.encode("utf-8"))


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Write ``arrays`` as the ``.npz`` cache file ``path`` (:func:`write_cache_bytes`)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_cache_bytes(path, buffer.getvalue())


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``.npz`` cache file ``path``, or None when it is missing or fails its check."""
    data = read_cache_bytes(path)
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
            return {k: loaded[k] for k in loaded.files}
    except (OSError, ValueError, EOFError):
        return None
