"""How the tau-leaping sampler draws new masks, against what the trained FlexMDM / LoFlexMDM get right.

    python benchmarks/insertion_draw.py RUN [RUN ...] [--n 500] [--steps 64] [--draws poisson binomial sequence] \
        [--grids uniform unmask] [--confidence none top_prob] [--fresh SEED] [--name NAME]

For every run and every combination of ``insertion_draw`` (TauLeapingOptions: ``poisson``, the tau-leap
per gap; ``binomial``, per gap at most its rounded expected count; ``sequence``, one count per sequence
spread over the gaps), time grid and unmasking choice, samples the first ``--n`` test prompts (with
``--fresh SEED``: ``--n`` freshly generated star graphs of that seed, as ``insertgen demo`` draws them with
seed 10,000 + its ``--seed``) greedily
(joint order) and records exact match, token accuracy, model evaluations per sequence and how the wrong
outputs are wrong: ``length_short`` / ``length_long`` (fewer / more tokens than the target) or ``tokens``
(right length, a wrong token). Writes benchmarks/results/insertion_draw[-NAME].json.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch

from insertgen.engine.run import load_run
from insertgen.apps.benchmarking import save
from insertgen.engine.evaluate import evaluate_model
from insertgen.models.flexmdm.sampler import INSERTION_DRAWS, TauLeapingOptions


def failure_kinds(examples, outputs) -> dict[str, int]:
    kinds = collections.Counter()
    for example, output in zip(examples, outputs):
        target = list(example.target)
        if list(output) == target:
            continue
        kinds["length_short" if len(output) < len(target) else "length_long" if len(output) > len(target)
              else "tokens"] += 1
    return {k: kinds.get(k, 0) for k in ("length_short", "length_long", "tokens")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--steps", type=int, nargs="+", default=[64])
    parser.add_argument("--draws", nargs="+", default=list(INSERTION_DRAWS), choices=INSERTION_DRAWS)
    parser.add_argument("--grids", nargs="+", default=["uniform", "unmask"], choices=["uniform", "unmask"])
    parser.add_argument("--confidence", nargs="+", default=["none"], choices=["none", "top_prob", "prob_diff"])
    parser.add_argument("--fresh", type=int, default=None, metavar="SEED",
                        help="freshly generated graphs of this seed instead of the test split")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    results = []
    for run in args.runs:
        model = load_run(run)
        examples = (model.task.fresh_examples(args.n, seed=args.fresh) if args.fresh is not None
                    else model.task.examples("test")[: args.n])
        for steps in args.steps:
            for grid in args.grids:
                for confidence in args.confidence:
                    for draw in args.draws:
                        options = TauLeapingOptions(steps=steps, top_k=1, grid=grid, insertion_draw=draw,
                                                    confidence=None if confidence == "none" else confidence)
                        start = time.perf_counter()
                        with torch.inference_mode():
                            metrics, pairs = evaluate_model(model, model.task, examples, options, seed=0)
                        row = {"run": str(run), "model": model.model_id, "task": model.task.name,
                               "examples": "test" if args.fresh is None else f"fresh seed {args.fresh}", "steps": steps,
                               "grid": grid, "confidence": confidence, "insertion_draw": draw, "n": len(examples),
                               "exact_match": metrics["exact_match"], "token_accuracy": metrics["token_accuracy"],
                               "model_evals_per_seq": metrics["model_evals_per_seq"],
                               "seconds": time.perf_counter() - start,
                               **failure_kinds(examples, [o for o, _ in pairs])}
                        results.append(row)
                        print(f"{str(run)[-40:]:>40} {steps:>4} {grid:<8} {confidence:<9} {draw:<9} "
                              f"exact {row['exact_match']:.3f}  short {row['length_short']:>3}  "
                              f"long {row['length_long']:>3}  tokens {row['tokens']:>3}  "
                              f"evals {row['model_evals_per_seq']:.1f}", flush=True)
    save("insertion_draw" + (f"-{args.name}" if args.name else ""), {"command": " ".join(sys.argv), "results": results})


if __name__ == "__main__":
    main()
