#!/usr/bin/env python3
"""Set-up and entry point for a fresh machine that has only Python.

    python3 scripts/dev.py demo [ARGS...]   # create .venv, install insertgen, run `insertgen demo ARGS`
    python3 scripts/dev.py test [ARGS...]   # same, plus the test and molecule extras (and the MOSES data
                                            # files of molsets, installed without its dependencies), then pytest ARGS

The virtual environment lives in .venv next to this repository. torch is installed first, pinned to the
CPU build torch==2.13.0 that this project's machines provide; the package itself asks only for
torch>=2.3 so users elsewhere keep their own (e.g. CUDA) build. A stamp file skips the installation when
pyproject.toml has not changed since the last run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
TORCH = "torch==2.13.0"
MOSES_DATA = "molsets==0.3.1"  # the MOSES data files; installed without its (obsolete) dependencies


def python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_env(extras: str) -> None:
    if not python().exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".insertgen-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + Path(__file__).read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    pip = [str(python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print(f"installing {TORCH} (CPU build) and insertgen{extras}", flush=True)
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}{extras}"], check=True)
    if "molecules" in extras:
        subprocess.run([*pip, "--no-deps", MOSES_DATA], check=True)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_env("[test,molecules]" if command == "test" else "")
    if command == "demo":
        cmd = [str(python()), "-m", "insertgen.cli", "demo", *rest]
    else:
        cmd = [str(python()), "-m", "pytest", "-q", *rest]
    env = dict(os.environ)
    env.setdefault("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296")
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
