"""The run-directory format: everything about one training run lives in one folder.

    RUN_DIR/config.json                 task, model id and options, training options, seed, versions, commit
    RUN_DIR/checkpoint.safetensors      model + EMA + optimiser + RNG state (core/checkpoint.py)
    RUN_DIR/metrics.jsonl               one JSON object per logged step / evaluation
    RUN_DIR/*.png, samples.jsonl ...    plots and outputs written by later commands

Loading the model of a run (which needs the model and task registries) is ``engine.run.load_run``.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy
import torch

from insertgen.core.errors import InsertgenError
from insertgen.core.io import to_json, write_text_atomic
from insertgen.core.version import __version__

CONFIG = "config.json"
METRICS = "metrics.jsonl"


def environment() -> dict:
    """Package versions and the git commit of the code (if it is a checkout)."""
    commit = None
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        commit = proc.stdout.strip() or None if proc.returncode == 0 else None
    except Exception:
        pass
    return {
        "insertgen": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
        "python": sys.version.split()[0], "platform": platform.platform(), "git_commit": commit,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }

def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).is_dir():
        raise InsertgenError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise InsertgenError(f"{run_dir} is not a run directory: it has no {CONFIG}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InsertgenError(f"{path} is not valid JSON: {e}") from None
    check_config(config, path)
    return config


# the keys of config.json and the JSON type each must have (the rest are records: environment, threads, ...)
CONFIG_TYPES = {"task": str, "model": str, "model_config": dict, "task_options": dict, "train": dict,
                "sampler_defaults": dict, "seed": int, "preset": (str, type(None))}
REQUIRED = ("task", "model", "model_config")


def check_config(config, path: Path) -> None:
    """A run's config.json, from wherever it came: a JSON object with the required keys, each key of
    :data:`CONFIG_TYPES` of its type; the values inside are checked where they are used (the model's,
    task's, training and sampler options, each with its own one-line error)."""
    if not isinstance(config, dict):
        raise InsertgenError(f"{path} is not a run's config: a JSON object is expected, not {type(config).__name__}")
    for key in REQUIRED:
        if key not in config:
            raise InsertgenError(f"{path} lacks the key {key!r}")
    names = {str: "a string", dict: "an object", int: "an integer"}
    for key, kind in CONFIG_TYPES.items():
        if key in config and (not isinstance(config[key], kind) or (kind is int and isinstance(config[key], bool))):
            want = "a string or null" if isinstance(kind, tuple) else names[kind]
            raise InsertgenError(f"{path}: {key!r} must be {want}, not {json.dumps(config[key])[:40]}")


def write_config(run_dir: Path, config: dict) -> None:
    write_text_atomic(Path(run_dir) / CONFIG, to_json(config, indent=2) + "\n")


def metrics_records(path: Path) -> list[tuple[str, dict]]:
    """``(line, record)`` of each line of a metrics.jsonl file that is a JSON object; a damaged line (the
    half-written last line of a process killed mid-append, or an edit) is left out with a warning naming it."""
    path = Path(path)
    if not path.is_file():
        return []
    kept = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            print(f"warning: {path}:{lineno}: a damaged metrics line, dropped: {line[:60]!r}", file=sys.stderr)
            continue
        kept.append((line, record))
    return kept

