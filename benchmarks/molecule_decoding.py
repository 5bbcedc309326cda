"""Decoding of trained molecule models: the same weights sampled at several temperatures, nucleus sizes and
(FlexMDM / LoFlexMDM / MDM) unmasking orders, scored as the learning benchmark scores a point.

    python benchmarks/molecule_decoding.py --run RUN_DIR [--run RUN_DIR2 ...] --temperature 1 --temperature 0.7 \
        [--top-p 1 --top-p 0.9] [--confidence none --confidence top_prob] [-n 500] [--steps 64] \
        [--seed 0] [--threads 1] --out benchmarks/results/molecule-decoding-NAME.json

``RUN_DIR`` may also be a learning-benchmark directory (its ``run/`` is used). Every combination of the
options is measured on ``-n`` samples (sampling seed ``--seed`` [0]: a setting chosen on one seed's samples
is confirmed on another's; EMA weights) with ``molecule_learning.measure``: validity,
uniqueness, novelty, quality, FCD (with ``fcd_n``), the partial-progress signals and the order statistics.
Writes one JSON object (machine, settings, ``rows``) and prints a table; ``--top-p 1`` means no nucleus cut.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from insertgen.apps.benchmarking import machine
from insertgen.core.io import to_json, write_text_atomic
from insertgen.core.threads import use_threads

try:
    from learning_speed import run_directory
    from molecule_learning import family_sampler, measure
except ImportError:  # pragma: no cover
    from benchmarks.learning_speed import run_directory
    from benchmarks.molecule_learning import family_sampler, measure


def sweep(run: Path, temperatures, top_ps, confidences, n: int, steps: int, seed: int = 0) -> list[dict]:
    from insertgen.engine.run import load_run

    model = load_run(run_directory(run))
    model_id, task = model.model_id, model.task
    step = model.checkpoint_step  # the weights' own step (a run stopped between checkpoints logged steps past it)
    rows = []
    for temperature, top_p, confidence in itertools.product(temperatures, top_ps, confidences):
        choices = {} if confidence in (None, "none") else {"confidence": confidence}
        try:
            options = family_sampler(model_id, steps, temperature, None if top_p >= 1 else top_p, **choices)
        except ValueError:  # e.g. IP has no unmasking order to choose: measured once, without it
            continue
        point = measure(model, task, model_id, n, options, [], seed=seed)
        rows.append({"run": str(run), "model": model_id, "task": task.name, "step": step, "seed": seed,
                     "temperature": temperature,
                     "top_p": top_p, "confidence": confidence, **point})
        print(f"{run} T={temperature} top_p={top_p} confidence={confidence}: valid {point['validity']:.3f} "
              f"unique {point.get('uniqueness', 0):.3f} quality {point.get('quality_all', 0):.3f} "
              f"valences {point['valences_legal']:.2f}", flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, action="append", required=True)
    parser.add_argument("--temperature", type=float, action="append")
    parser.add_argument("--top-p", type=float, action="append")
    parser.add_argument("--confidence", action="append", help="none, top_prob, ... (unmasking samplers only)")
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--steps", type=int, default=64, help="FlexMDM / LoFlexMDM / MDM sampler steps.")
    parser.add_argument("--seed", type=int, default=0, help="Sampling seed.")
    parser.add_argument("--threads", default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    temperatures, top_ps = args.temperature or [1.0], args.top_p or [1.0]
    if any(t <= 0 for t in temperatures) or any(not 0 < p <= 1 for p in top_ps) or args.n < 1:
        parser.error("temperatures must be > 0, top-p values in (0, 1] and -n positive")
    use_threads(args.threads)
    torch.manual_seed(0)
    rows = [row for run in args.run for row in sweep(run, temperatures, top_ps, args.confidence or ["none"],
                                                     args.n, args.steps, args.seed)]
    settings = {"runs": [str(r) for r in args.run], "temperatures": temperatures, "top_p": top_ps,
                "confidence": args.confidence or ["none"], "n": args.n, "steps": args.steps, "seed": args.seed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, to_json({"machine": machine(), "settings": settings, "rows": rows}, indent=1) + "\n")
    print("| run | step | T | top-p | confidence | valid | unique | novel | quality | valences | scaffold-atom |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        order = r.get("scaffold_minus_atom")
        print(f"| {r['run']} | {r['step']:,} | {r['temperature']:g} | {r['top_p']:g} | {r['confidence']} | "
              f"{r['validity']:.1%} | {r.get('uniqueness', 0):.1%} | {r.get('novelty', 0):.1%} | "
              f"{r.get('quality_all', 0):.1%} | {r['valences_legal']:.1%} | "
              + (f"{order:+.2f} |" if order is not None else "- |"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
