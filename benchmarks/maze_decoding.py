"""Decoding of trained maze models: the same weights planning under several sampler settings (steps, the
unmasking order by confidence, FlexMDM's two orders and time grids), scored as the learning benchmark scores
a point.

    python benchmarks/maze_decoding.py --run RUN_DIR [--run RUN_DIR2 ...] [--steps 64 --steps 128] \
        [--confidence none --confidence top_prob] [--order joint --order insert_first] \
        [--grid uniform --grid unmask] [-n 500] [--seed 0] [--threads 1] \
        --out benchmarks/results/maze-decoding-NAME.json

``RUN_DIR`` may also be a learning-benchmark directory (its ``run/`` is used). Every combination of the
options that changes the family's sampler is measured once (IP, AO-IP and the ARM take no steps, order or
grid; choices a sampler does not take do not apply) on the first ``-n`` test problems, greedy tokens (as
``insertgen eval`` and ``benchmarks/maze_learning.py`` decode plans), EMA weights: success, optimal, exact
match, token accuracy, the failure kinds, the order statistic, network evaluations per plan and the
sampling seconds. Writes one JSON object (machine, settings, ``rows``) and prints a table.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from insertgen.apps.benchmarking import machine
from insertgen.core.io import to_json, write_text_atomic
from insertgen.core.threads import use_threads
from insertgen.tasks.maze.paths import FAILURE_KINDS

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.maze_decoding by the tests
    from learning_speed import run_directory
    from maze_learning import KEEP
except ImportError:  # pragma: no cover
    from benchmarks.learning_speed import run_directory
    from benchmarks.maze_learning import KEEP

CHOICES = {"confidence": ("none", "top_prob", "prob_diff"), "order": ("joint", "insert_first"),
           "grid": ("uniform", "unmask")}


def sweep(run: Path, steps: list[int], confidences: list[str], orders: list[str], grids: list[str], n: int,
          seed: int = 0) -> list[dict]:
    """One row per distinct sampler of ``run``'s family among the combinations of the choices."""
    from insertgen.engine.evaluate import evaluate_model
    from insertgen.engine.run import load_run
    from insertgen.engine.sampler_settings import resolve_sampler_options

    model = load_run(run_directory(run))
    task, examples = model.task, model.task.examples("test")[:n]
    rows, seen = [], []
    for step_count, confidence, order, grid in itertools.product(steps, confidences, orders, grids):
        if model.model_id == "arm":  # left to right: no order for a confidence to choose
            confidence = "none"
        options = resolve_sampler_options(model.run_config, default_greedy=True, steps=step_count, greedy=True,
                                          confidence=None if confidence == "none" else confidence, order=order,
                                          grid=grid)
        if options in seen:  # a choice this family's sampler does not take
            continue
        seen.append(options)
        with torch.no_grad():
            metrics, _ = evaluate_model(model, task, examples, options, seed=seed)
        row = {"run": str(run), "model": model.model_id, "task": task.name, "step": model.checkpoint_step,
               "seed": seed, "n": len(examples), "sampler": dict(vars(options)),
               "sample_seconds": metrics["sample_seconds"], **{k: metrics[k] for k in KEEP if k in metrics}}
        rows.append(row)
        print(f"{run} {describe(row)}: success {row['success']:.3f} optimal {row['optimal']:.3f} "
              f"evals/plan {row['model_evals_per_seq']:.1f}", flush=True)
    return rows


def describe(row: dict) -> str:
    """The sampler of a row in a few words (the choices this benchmark varies)."""
    s = row["sampler"]
    words = [f"{s['steps']} steps"] if "steps" in s and row["model"] not in ("ip", "ao-ip", "arm") else []
    words += [f"order {s['order']}"] if "order" in s else []
    words += [f"grid {s['grid']}"] if "grid" in s else []
    words += [f"confidence {s.get('confidence') or 'none'}"] if row["model"] != "arm" else ["left to right"]
    return ", ".join(words)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, action="append", required=True)
    parser.add_argument("--steps", type=int, action="append", help="Sampler steps (FlexMDM / LoFlexMDM / MDM).")
    for name, values in CHOICES.items():
        parser.add_argument(f"--{name}", action="append", choices=values)
    parser.add_argument("-n", type=int, default=500, help="Test problems (the first n).")
    parser.add_argument("--seed", type=int, default=0, help="Sampling seed.")
    parser.add_argument("--threads", default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    steps = args.steps or [64]
    if args.n < 1 or min(steps) < 1:
        parser.error("-n and --steps must be positive")
    use_threads(args.threads)
    torch.manual_seed(0)
    choices = {name: getattr(args, name) or [values[0]] for name, values in CHOICES.items()}
    rows = [row for run in args.run
            for row in sweep(run, steps, choices["confidence"], choices["order"], choices["grid"], args.n, args.seed)]
    settings = {"runs": [str(r) for r in args.run], "steps": steps, **choices, "n": args.n, "seed": args.seed,
                "decoding": "greedy"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, to_json({"machine": machine(), "settings": settings, "rows": rows}, indent=1) + "\n")
    print("| run | step | sampler | success | optimal | " + " / ".join(FAILURE_KINDS) + " | evals / plan | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        failures = " / ".join(f"{r.get(f'failure_{kind}', 0):.1%}" for kind in FAILURE_KINDS)
        print(f"| {r['run']} | {r['step']:,} | {describe(r)} | {r['success']:.1%} | {r['optimal']:.1%} | {failures} | "
              f"{r['model_evals_per_seq']:.1f} | {r['sample_seconds']:.1f} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
