#!/usr/bin/env python3
"""Set-up and entry point for a fresh machine that has only Python.

    python3 scripts/dev.py demo [ARGS...]   # create .venv, install insertgen, run `insertgen demo ARGS`
    python3 scripts/dev.py run -- ARGS...   # create .venv and install insertgen when needed, then `insertgen ARGS`
                                            # in the current directory (any subcommand; no shell set-up needed)
                                            # (demo and run also install the molecule extra and the MOSES data
                                            # when ARGS name a molecule task or a run directory of one)
    python3 scripts/dev.py test [ARGS...]   # same as demo, plus the test and molecule extras (and the MOSES data
                                            # files of molsets, installed without its dependencies), Debian's
                                            # chromium for the report rendering test where the machine lets
                                            # root apt-get install it (best effort), then pytest ARGS: both
                                            # tiers, the quick default one and the tests marked slow
    python3 scripts/dev.py test --fast      # the quick default tier only (the quick loop while changing code)

The virtual environment lives in .venv next to this repository. torch is installed first, pinned to the
CPU build torch==2.13.0 that this project's machines provide; the package itself asks only for
torch>=2.3 so users elsewhere keep their own (e.g. CUDA) build. A stamp file skips the installation when
pyproject.toml has not changed since the last run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
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


MOLECULE_TASK = re.compile(r"(?:^|[=,])(smiles|safe|fragment-[a-z]+)(?=$|,)")


def needs_molecules(args: list[str]) -> bool:
    """Whether ``args`` name a molecule task (``--task smiles``, ``--tasks star-easy,safe``,
    ``--task=fragment-linker``) or a run directory trained on one (its config.json)."""
    for arg in args:
        if MOLECULE_TASK.search(arg):
            return True
        config = Path(arg) / "config.json"
        try:
            if config.is_file() and MOLECULE_TASK.search(str(json.loads(config.read_text()).get("task", ""))):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def ensure_browser() -> None:
    """A Chromium for tests/test_report.py: Debian's package where root can apt-get it; otherwise (or when
    the installation fails) that test is skipped and says why."""
    if os.environ.get("INSERTGEN_CHROMIUM") or any(shutil.which(n) for n in ("chromium", "chromium-browser",
                                                                             "google-chrome")):
        return
    if not (sys.platform.startswith("linux") and shutil.which("apt-get") and os.geteuid() == 0):
        print("no Chromium here: the report rendering test will be skipped", flush=True)
        return
    print("installing Debian's chromium (report rendering test)", flush=True)
    done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
                          env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        print(f"could not install chromium (the report rendering test will be skipped): {done.stderr.strip()[-300:]}",
              flush=True)


def test_tiers(args: list[str]) -> list[str]:
    """pytest's arguments for ``test ARGS``: both tiers (the quick default tier and the tests marked
    ``slow``: full demos, torchrun, kill -9 trials, busy benchmarks, grids, MOSES reads, the browser) unless
    ARGS say ``--fast`` (the default tier only, pyproject's ``-m 'not slow'``) or choose markers with ``-m``."""
    if "--fast" in args:
        return [a for a in args if a != "--fast"]
    if "-m" in args or any(a.startswith("-m") and len(a) > 2 for a in args):
        return list(args)
    return ["-m", "slow or not slow", *args]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "run", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run" and rest[:1] == ["--"]:
        rest = rest[1:]
    ensure_env("[test,molecules]" if command == "test" else "[molecules]" if needs_molecules(rest) else "")
    if command == "test":
        ensure_browser()
    if command == "demo":
        cmd = [str(python()), "-m", "insertgen.apps.cli", "demo", *rest]
    elif command == "run":
        cmd = [str(python()), "-m", "insertgen.apps.cli", *rest]
    else:
        cmd = [str(python()), "-m", "pytest", "-q", *test_tiers(rest)]
    env = dict(os.environ)
    env.setdefault("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296")
    # run: the user's own directory, so that relative paths in ARGS mean what they say
    return subprocess.run(cmd, cwd=None if command == "run" else ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
