"""Held-out likelihoods of trained runs on one scale: each model's usual bound (exact for the ARM, the ELBO
for the others) on the first test examples of its task, in nats per sequence (with the standard error
over the examples) and per token (the target's tokens plus the end).

    python benchmarks/likelihood_table.py RUN_DIR [RUN_DIR ...] [--examples 200] [--samples 16] [--name NAME]

Writes benchmarks/results/likelihood-NAME.json and prints a Markdown table (docs/results.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from insertgen.apps.benchmarking import save
from insertgen.engine.evaluate import held_out_likelihood
from insertgen.engine.run import load_run


def measure(run_dir: Path, examples: int, samples: int) -> dict:
    model = load_run(run_dir)
    start = time.perf_counter()
    with torch.inference_mode():
        result = held_out_likelihood(model, model.task, model.task.examples("test")[:examples], samples, seed=0)
    return {"run": str(run_dir), "model": model.model_id, "task": model.task.name, **result,
            "seconds": time.perf_counter() - start}


def markdown(rows: list[dict]) -> str:
    lines = ["| task | model | bound | nats / sequence | nats / token | examples x samples |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['model']} | {r['likelihood_bound']} | {r['nats_per_seq']:.2f} ± "
                     f"{r['nats_per_seq_stderr']:.2f} | {r['nats_per_token']:.3f} | {r['likelihood_examples']} x "
                     f"{r['likelihood_samples']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--name", default="star-easy")
    args = parser.parse_args()
    rows = [measure(run, args.examples, args.samples) for run in args.runs]
    save(f"likelihood-{args.name}", {"command": " ".join(sys.argv), "rows": rows}, quiet=True)
    print(markdown(rows))


if __name__ == "__main__":
    main()
