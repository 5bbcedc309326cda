"""Sampling throughput: sequences/s and model evaluations per sequence, for several step counts.

    python benchmarks/sampling_throughput.py [--run RUN_DIR] [--n 1000] [--steps 16 32 64 128] [--name NAME]

Without --run it uses the star-easy FlexMDM model shipped with the package. Each setting samples the
first ``n`` test prompts in batches of 500 and also reports the exact match it reaches (mazes: also
success and optimal plans; star graphs and mazes: token accuracy; IP / AO-IP and ARM: the termination
rate). The Insertion Process and ARM have no time grid (one token per
model evaluation until they stop), so for them ``--steps`` and ``--orders`` are ignored and one setting
is run; MDM runs its random and top_prob orders at every step count.
Writes benchmarks/results/sampling_throughput[-NAME].json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from insertgen.engine.run import load_run
from insertgen.apps.benchmarking import GRID_FREE_SAMPLERS, greedy_samplers, save
from insertgen.apps.demo import pretrained_dir
from insertgen.engine.evaluate import evaluate_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--orders", nargs="+", default=["joint", "insert_first"])
    parser.add_argument("--grid", choices=["uniform", "unmask"], default="uniform",
                        help="time grid of the tau-leaping samplers (FlexMDM / LoFlexMDM)")
    parser.add_argument("--confidence", choices=["top_prob", "prob_diff"], default=None,
                        help="confidence-ordered unmasking for the tau-leaping samplers")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    run = args.run or pretrained_dir()
    model = load_run(run)
    examples = model.task.examples("test")[: args.n]
    results = []
    for order, make_options in greedy_samplers(model.model_id, args.orders).items():
        for steps in ([None] if order in GRID_FREE_SAMPLERS else args.steps):
            options = make_options(steps)
            if order in ("joint", "insert_first"):
                options = dataclasses.replace(options, grid=args.grid, confidence=args.confidence or options.confidence)
            start = time.perf_counter()
            with torch.inference_mode():
                metrics, _ = evaluate_model(model, model.task, examples, options, seed=0)
            seconds = time.perf_counter() - start
            results.append({"order": order, "grid": options.grid, "confidence": options.confidence, "steps": steps, "n": len(examples), "seconds": seconds,
                            "sequences_per_s": len(examples) / seconds,
                            "model_evals_per_seq": metrics["model_evals_per_seq"],
                            "exact_match": metrics["exact_match"],
                            **{k: metrics[k] for k in ("success", "optimal", "token_accuracy") if k in metrics},
                            "termination_rate": metrics.get("termination_rate")})
            print(results[-1], flush=True)
    save("sampling_throughput" + (f"-{args.name}" if args.name else ""),
         {"command": " ".join(sys.argv), "run": str(run), "model": model.model_id, "task": model.task.name,
          "results": results})


if __name__ == "__main__":
    main()
