"""One writer per run directory: a lock file, ``RUN_DIR/.insertgen.lock``, holding who writes the run.

Every command that writes a run directory (train and resume, reproduce's cells, the demo's directory, eval and
analysis, which write their results into it) takes the lock before it writes anything and keeps it until it is
done; a second writer is refused with ``error: RUN_DIR is in use by process PID on HOST since TIME``. Readers
(sample, score, load_run) never look at it. A lock whose process is gone (same host, no such PID: a run killed
with kill -9) is taken over with a warning; a lock copied along with a run directory (it names another
directory) is not this one's. Under torchrun only rank 0 takes it.

Taking it is atomic: the lock file is created with O_CREAT | O_EXCL, so of two processes that start at once one
creates it and the other finds it. A process takes a lock it already holds again without waiting (counted, so
that nested users release it once each); every lock a process holds is released when it exits normally.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import socket
import sys
from pathlib import Path

from insertgen.core.errors import InsertgenError

LOCK_NAME = ".insertgen.lock"
_held: dict[Path, int] = {}  # lock path -> how many times this process took it


def _owner(run_dir: Path) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "dir": str(run_dir.resolve())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: treated as held by an unknown owner


def acquire(run_dir) -> Path:
    """Take the lock of ``run_dir`` for this process; InsertgenError if another live process holds it. A
    directory that does not exist is not created (nothing in it to protect: the command fails on its own)."""
    run_dir = Path(run_dir)
    path = (run_dir / LOCK_NAME).resolve()
    if path in _held:
        _held[path] += 1
        return path
    if not run_dir.is_dir():
        return path
    for _ in range(3):  # a stale lock is removed and the creation tried again
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _read(path)
            if owner is None:
                continue  # released meanwhile
            pid, host = owner.get("pid"), owner.get("host")
            if owner.get("dir") not in (None, str(run_dir.resolve())):  # copied along with a run (cp -r): not ours
                path.unlink(missing_ok=True)
                continue
            if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
                print(f"warning: {run_dir} was locked by process {pid}, which is gone (killed?); taking the lock over",
                      file=sys.stderr)
                path.unlink(missing_ok=True)
                continue
            raise InsertgenError(f"{run_dir} is in use by process {pid if pid is not None else '?'} on "
                                 f"{host or '?'} since {owner.get('since', '?')} (one writer per run directory; "
                                 f"if that process is gone for good, remove {path})") from None
        except OSError:  # a read-only run (a shared install): no one writes it here
            return path
        with os.fdopen(fd, "w") as f:
            json.dump(_owner(run_dir), f)
        _held[path] = 1
        return path
    raise InsertgenError(f"could not take the lock {path}: it keeps changing hands")


def release(run_dir) -> None:
    """Give back one hold of ``run_dir``'s lock; the file goes with the last."""
    path = (Path(run_dir) / LOCK_NAME).resolve()
    if path not in _held:
        return
    _held[path] -= 1
    if _held[path] == 0:
        del _held[path]
        _remove_if_ours(path)


def _remove_if_ours(path: Path) -> None:
    owner = _read(path)
    if owner and owner.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


class RunLock:
    """``with RunLock(run_dir):`` holds the lock for the block."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)

    def __enter__(self) -> "RunLock":
        acquire(self.run_dir)
        return self

    def __exit__(self, *exc) -> None:
        release(self.run_dir)


@atexit.register
def _release_all() -> None:
    for path in list(_held):
        del _held[path]
        _remove_if_ours(path)
