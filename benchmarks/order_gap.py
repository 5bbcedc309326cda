"""How much could a learned insertion order gain over the uniform one, for a trained IP / AO-IP decoder?

    python benchmarks/order_gap.py RUN_DIR [RUN_DIR ...] [--n 100] [--samples 32] [--out NAME]

For an insertion-process decoder p(x, sigma) (a policy over slots and tokens) every variational posterior
q(sigma | x) gives the bound ELBO(q) = E_q[log p(x, sigma) - log q(sigma | x)] <= log p(x), with equality
exactly when q is the decoder's own order distribution p(sigma | x) = p(x, sigma) / p(x); the gap is
KL(q || p(sigma | x)). So, at the decoder's current weights,

    gain available to any learned posterior over the uniform one = log p(x) - ELBO(uniform)
                                                                   = KL(uniform || p(sigma | x)),

and where this is near zero the posterior's objective is flat around the uniform order: learning an order
cannot improve the bound, and its gradient carries no signal. This script measures, on the first N test
examples of the run's task (nats per sequence, means over examples):

- ``log_px``: the exact log p(x) (the permutation sum by dynamic programming over subsets, with the stop
  decision; targets of at most 12 tokens);
- ``elbo_uniform``, ``gain_uniform``: the uniform-order ELBO, log L! + E_uniform[log p(x, sigma)] over M
  random orders, and log p(x) minus it (with its standard error over examples);
- ``elbo_posterior``, ``gain_posterior``: the same for the run's learned posterior (IP only);
- for two named orders, junction first (increasing distance from the junction, the task's
  ``order_reference``) and goal first (decreasing): ``log L! + log p(sigma | x)``, how many nats more (or
  less) probable the decoder makes that order than the uniform 1/L!.

Writes benchmarks/results/NAME.json (default ``order_gap``) and prints one line per run.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from insertgen.engine.run import load_run
from insertgen.apps.benchmarking import save
from insertgen.core.errors import InsertgenError


def _mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")


def named_orders(task, prompt: list[int], target: list[int]) -> dict[str, list[int]]:
    """Junction-first and goal-first permutations of the target positions (ties kept left to right)."""
    dist = task.order_reference(prompt, target)
    if dist is None:
        return {}
    positions = range(len(target))
    return {"junction_first": sorted(positions, key=lambda k: (dist[k], k)),
            "goal_first": sorted(positions, key=lambda k: (-dist[k], k))}


def order_gap(model, task, examples, samples: int, seed: int = 0) -> dict:
    """The measures of the module docstring for ``model`` (IP / AO-IP) on ``examples``: per key, the mean
    over examples and its standard error."""
    if not hasattr(model, "exact_log_likelihood"):
        raise InsertgenError(f"model {model.model_id!r} is not an insertion process (IP / AO-IP)")
    generator = torch.Generator().manual_seed(seed)
    rows: dict[str, list[float]] = {}
    for ex in examples:
        prompt, target = list(ex.prompt), list(ex.target)
        length = len(target)
        log_l_fact = math.lgamma(length + 1)
        log_px = model.exact_log_likelihood(prompt, target)
        uniform = [torch.randperm(length, generator=generator).tolist() for _ in range(samples)]
        elbo_u = log_l_fact + float(model.trajectory_log_prob(prompt, target, uniform).mean())
        values = {"log_px": log_px, "elbo_uniform": elbo_u, "gain_uniform": log_px - elbo_u}
        if getattr(model, "learned_order", False):
            orders, log_q = model.sample_orders(prompt, target, samples, generator)
            elbo_q = float((model.trajectory_log_prob(prompt, target, orders) - log_q).mean())
            values.update(elbo_posterior=elbo_q, gain_posterior=log_px - elbo_q)
        named = named_orders(task, prompt, target)
        if named:
            log_joint = model.trajectory_log_prob(prompt, target, list(named.values()))
            for name, lp in zip(named, log_joint.tolist()):
                values[f"{name}_vs_uniform"] = log_l_fact + lp - log_px
        for key, value in values.items():
            rows.setdefault(key, []).append(value)
    summary = {}
    for key, values in rows.items():
        mean, se = _mean_se(values)
        summary[key] = {"mean": mean, "se": se}
    return {"model": model.model_id, "task": task.name, "n": len(examples), "samples": samples, **summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--n", type=int, default=100, help="test examples (the first N)")
    parser.add_argument("--samples", type=int, default=32, help="orders drawn per example for each ELBO")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="order_gap")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for run in args.runs:
        model = load_run(run)
        with torch.inference_mode():
            r = {"run": str(run), **order_gap(model, model.task, model.task.examples("test")[: args.n], args.samples,
                                              args.seed)}
        results.append(r)
        fmt = lambda k: f"{r[k]['mean']:+.3f} +- {r[k]['se']:.3f}" if k in r else "-"
        print(f"{run}: log p(x) {fmt('log_px')}, gain over uniform {fmt('gain_uniform')}, over the posterior "
              f"{fmt('gain_posterior')}; junction first {fmt('junction_first_vs_uniform')}, goal first "
              f"{fmt('goal_first_vs_uniform')} (nats vs uniform)", flush=True)
    save(args.out, {"command": " ".join(sys.argv), "n": args.n, "samples": args.samples, "runs": results}, quiet=True)


if __name__ == "__main__":
    main()
