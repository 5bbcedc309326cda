#!/usr/bin/env python3
"""Copy a trained run into the package as the shipped demo model (EMA weights only, no optimiser state).

    python scripts/ship_pretrained.py RUN_DIR [--name star-easy-flexmdm] [--note "how it was trained"]

Writes src/insertgen/pretrained/NAME/{config.json, checkpoint.safetensors, metrics.jsonl}; the config
records the source run and the training step it was exported at.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from insertgen.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint, split_prefix
from insertgen.run import CONFIG, METRICS, read_config

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default="star-easy-flexmdm")
    parser.add_argument("--note", default=None, help="training budget in words (shown by insertgen demo)")
    args = parser.parse_args()
    config = read_config(args.run)
    tensors, state = load_checkpoint(args.run / CHECKPOINT)
    weights = {**split_prefix(tensors, "model"), **split_prefix(tensors, "ema")}
    dest = ROOT / "src" / "insertgen" / "pretrained" / args.name
    dest.mkdir(parents=True, exist_ok=True)
    config["exported"] = {"from_run": str(args.run), "step": state["step"], "weights": "ema"}
    if args.note:
        config["budget_note"] = args.note
    config["train"]["steps"] = state["step"]
    (dest / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    save_checkpoint(dest / CHECKPOINT, {f"model.{k}": v for k, v in weights.items()}, {"step": state["step"]})
    prev = dest / "checkpoint.prev.safetensors"
    prev.unlink(missing_ok=True)
    if (args.run / METRICS).is_file():
        shutil.copyfile(args.run / METRICS, dest / METRICS)
    print(f"shipped {args.run} (step {state['step']}) to {dest}")


if __name__ == "__main__":
    main()
