"""Task metrics (exact match on 1,000 test graphs, maze success, molecule validity ...) against training
wall-clock time.

    python benchmarks/accuracy_vs_time.py --preset star-easy-cpu --budget 600 --every 120 [--out DIR] [--threads N]

Trains the preset in segments of ``--every`` seconds of training (resume is exact, so segmenting does
not change the run), and after each segment evaluates the EMA weights on the first ``--n`` test
examples (unconditional tasks: ``--n`` samples), greedy for conditional tasks and sampled from the
model otherwise, with every sampler of the model's family (``insertgen.apps.benchmarking.greedy_samplers``): FlexMDM /
LoFlexMDM with both tau-leaping orders (joint, insert_first) of ``--sampler-steps`` steps, IP / AO-IP
with their ancestral sampler, ARM left to right, MDM in random and in confidence (top_prob) order. Evaluation time is not counted as
training time. Writes benchmarks/results/accuracy_vs_time-NAME-seedS.json (NAME defaults to the preset)
after every point and leaves the run directory in --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from insertgen.engine.run import load_run
from insertgen.apps.benchmarking import greedy_samplers, parse_overrides, save
from insertgen.engine.evaluate import evaluate_model
from insertgen.engine.training_run import prepare_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="star-easy-cpu")
    parser.add_argument("--name", default=None, help="result name (default: the preset)")
    parser.add_argument("--budget", type=float, default=600.0, help="Total training seconds.")
    parser.add_argument("--every", type=float, default=120.0, help="Training seconds between evaluations.")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler-steps", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--set", dest="sets", nargs="*", default=[], help="key=value overrides")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or Path("bench-out") / f"{args.preset}-seed{args.seed}"
    overrides = parse_overrides(args.sets)
    overrides.setdefault("eval_every", 0)
    overrides.setdefault("steps", 10**6)
    points, trained = [], 0.0
    resume = False
    while trained < args.budget - 1e-6:
        segment = min(args.every, args.budget - trained)
        _, trainer = prepare_run(task=None, model=None, preset=args.preset, steps=None, out=out, seed=args.seed,
                                 overrides={} if resume else overrides, resume=resume, time_budget=segment)
        start = time.time()
        trainer.train(progress=False)
        trained += time.time() - start
        resume = True
        model = load_run(out)
        point = {"train_seconds": trained, "step": trainer.step}
        for order, make_options in greedy_samplers(model.model_id, greedy=model.task.conditional).items():
            options = make_options(args.sampler_steps)
            with torch.inference_mode():
                metrics, _ = evaluate_model(model, model.task, model.task.examples("test")[: args.n], options, seed=0)
            point[order] = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "sample_seconds"}
        points.append(point)
        print(point, flush=True)
        save(f"accuracy_vs_time-{args.name or args.preset}-seed{args.seed}", {  # after every point, so a stopped run keeps them
            "command": " ".join(sys.argv), "name": args.name or args.preset, "preset": args.preset,
            "overrides": overrides, "model": model.model_id, "seed": args.seed,
            "run_dir": str(out),
            "sampler_steps": args.sampler_steps, "points": points})


if __name__ == "__main__":
    main()
