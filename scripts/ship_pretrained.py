#!/usr/bin/env python3
"""Copy a trained run into the package as the shipped demo model (EMA weights only, no optimiser state).

    python scripts/ship_pretrained.py RUN_DIR [--name TASK-MODEL] [--note "how it was trained"] [--sampler NAME] \
        [--sampler-option KEY=VALUE ...]

Writes src/insertgen/pretrained/NAME/{config.json, checkpoint.safetensors, metrics.jsonl} (the weights as 8-bit
integers with one float32 scale per row, core/quantized_weights.py, a quarter of their float32 size; NAME defaults to
the run's task and model, e.g. star-easy-ip, which is where `insertgen demo` looks); the config records the
source run, the training step it was exported at and, in ``sampler_defaults``, every option of the sampler
the demo, `sample`, `eval` and `analysis` use by default: the run's own settings (greedy tokens on
conditional tasks), turned into the family's sampler ``--sampler`` (one of ModelFamily.samplers, e.g.
``insert_first`` or MDM's ``top_prob``) and changed by ``--sampler-option`` (e.g. ``steps=64``,
``grid=unmask``, ``temperature=0.7``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from insertgen.core.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint, split_prefix
from insertgen.core.quantized_weights import FORMAT as QUANTIZED
from insertgen.core.quantized_weights import quantize
from insertgen.core.rundir import CONFIG, METRICS, read_config
from insertgen.apps.benchmarking import parse_overrides
from insertgen.core.errors import InsertgenError
from insertgen.engine.run import load_run
from insertgen.engine.sampler_settings import as_named_sampler, resolve_sampler_options, shipped_settings

ROOT = Path(__file__).resolve().parent.parent


def store_shipped_weights(dest: Path, weights: dict, step: int) -> None:
    """Write ``weights`` (the model's, without a prefix) to DEST/checkpoint.safetensors as 8-bit integers with
    one scale per row (core/quantized_weights.py): a quarter of the float32 bytes; loading dequantizes them."""
    save_checkpoint(dest / CHECKPOINT, quantize({f"model.{k}": v for k, v in weights.items()}),
                    {"step": step, "weights_format": QUANTIZED})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default=None, help="default: TASK-MODEL of the run")
    parser.add_argument("--note", default=None, help="training budget in words (shown by insertgen demo)")
    parser.add_argument("--sampler", default=None, help="the sampler insertgen demo uses for this model")
    parser.add_argument("--sampler-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of that sampler for the demo (repeatable)")
    args = parser.parse_args()
    config = read_config(args.run)
    greedy = load_run(args.run).task.greedy_by_default
    try:  # the run's own settings, as `sample` resolves them, then the sampler and options asked for
        options = resolve_sampler_options(config, default_greedy=greedy)
        if args.sampler is not None:
            options = as_named_sampler(config["model"], options, args.sampler)
        options = dataclasses.replace(options, **parse_overrides(args.sampler_option))
    except (TypeError, ValueError, InsertgenError) as e:
        raise SystemExit(f"--sampler / --sampler-option: {e}") from None
    config.pop("demo_sampler", None)  # written by earlier versions of this script
    config["sampler_defaults"] = shipped_settings(options)
    name = args.name or f"{config['task']}-{config['model']}"
    tensors, state = load_checkpoint(args.run / CHECKPOINT)
    weights = {**split_prefix(tensors, "model"), **split_prefix(tensors, "ema")}
    dest = ROOT / "src" / "insertgen" / "pretrained" / name
    dest.mkdir(parents=True, exist_ok=True)
    config["exported"] = {"from_run": str(args.run), "step": state["step"], "weights": "ema"}
    if args.note:
        config["budget_note"] = args.note
    config["train"]["steps"] = state["step"]
    source = config["train"].get("init_from")
    if source and Path(source).is_relative_to(ROOT):  # a warm start from this checkout: say it portably
        config["train"]["init_from"] = str(Path(source).relative_to(ROOT))
    (dest / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    store_shipped_weights(dest, weights, state["step"])
    prev = dest / "checkpoint.prev.safetensors"
    prev.unlink(missing_ok=True)
    if (args.run / METRICS).is_file():
        shutil.copyfile(args.run / METRICS, dest / METRICS)
    print(f"shipped {args.run} (step {state['step']}) to {dest}")


if __name__ == "__main__":
    main()
