"""Run directories: everything about one training run, and ``load_run``.

    RUN_DIR/config.json                 task, model id and options, training options, seed, versions, commit
    RUN_DIR/checkpoint.safetensors      model + EMA + optimiser + RNG state (see checkpoint.py)
    RUN_DIR/metrics.jsonl               one JSON object per logged step / evaluation
    RUN_DIR/*.png, samples.jsonl ...    plots and outputs written by later commands
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from insertgen.checkpoint import CHECKPOINT, check_checkpoint_identity, load_checkpoint, split_prefix
from insertgen.errors import InsertgenError
from insertgen.io import write_text_atomic
from insertgen.models import build_model
from insertgen.tasks import get_task
from insertgen.threads import govern

CONFIG = "config.json"
METRICS = "metrics.jsonl"


def environment() -> dict:
    """Package versions and the git commit of the code (if it is a checkout)."""
    import numpy

    import insertgen

    commit = None
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        commit = proc.stdout.strip() or None if proc.returncode == 0 else None
    except Exception:
        pass
    return {
        "insertgen": insertgen.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
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
    except json.JSONDecodeError as e:
        raise InsertgenError(f"{path} is not valid JSON: {e}") from None
    for key in ("task", "model", "model_config"):
        if key not in config:
            raise InsertgenError(f"{path} lacks the key {key!r}")
    return config


def write_config(run_dir: Path, config: dict) -> None:
    write_text_atomic(Path(run_dir) / CONFIG, json.dumps(config, indent=2) + "\n")


def model_from_config(config: dict):
    task = get_task(config["task"], config.get("task_options"))
    model = build_model(config["model"], task.vocab, config["model_config"])
    return task, model


def load_run(run_dir, weights: str = "ema", device: str | torch.device = "cpu"):
    """The trained model of ``run_dir`` in eval mode with EMA weights (``weights="raw"`` for the raw ones).

    The model carries ``model.task`` (the task object), ``model.vocab`` and ``model.run_dir``.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    task, model = model_from_config(config)
    tensors, state = load_checkpoint(run_dir / CHECKPOINT)
    check_checkpoint_identity(state, model, task.vocab, run_dir / CHECKPOINT)
    prefix = "ema" if weights == "ema" and any(k.startswith("ema.") for k in tensors) else "model"
    params = split_prefix(tensors, prefix)
    if prefix == "ema":  # EMA holds trainable parameters; buffers come from the raw state
        params = {**split_prefix(tensors, "model"), **params}
    try:
        model.load_state_dict(params, strict=True)
    except RuntimeError as e:
        raise InsertgenError(f"checkpoint in {run_dir} does not match its config: {str(e).splitlines()[0]}") from None
    model.task = task
    model.run_dir = run_dir
    model.run_config = config
    govern(model)  # an adaptive thread count follows the load while this model computes (threads.py)
    return model.to(device).eval()
