"""The floor of FlexMDM's ELBO estimate: what a model that knows the molecule exactly still pays.

    python benchmarks/flexmdm_alignment_floor.py [--task smiles] [-n 20] [--times 400] [--seed 0] \
        [--out benchmarks/results/flexmdm-alignment-floor-smiles.json]

FlexMDM's loss and its held-out bound (models/flexmdm/elbo.py) score the network against the rates of the
*aligned* noising chain: the masks to insert into gap k are those deleted between the canvas tokens' own
source positions, and a mask becomes the token at its own source position. The network sees only the
compacted canvas x_t, which does not say which source position each canvas token came from when tokens
repeat ("CCC" with one C deleted) or are masked. So even the best possible network, one that knows the
sequence x, can only predict the averages over the alignments of x_t into x, and the bound it reaches stays
below log p(x) = 0 by

    floor(x) = int_0^1 E_{z_t} [ sum_{masked k} -h(t) log P(x^{s_t[k]} | x_t, x) + sum_{gaps k} h(t) D(G_k, E[G_k | x_t, x]) ] dt

(h(t) = 1 / (1 - t), D the Poisson Bregman divergence of models/flexmdm/loss.py), in nats per scored token
(target + end, as ``insertgen score`` divides). Under the linear schedule every alignment of x_t into x that
is monotone and puts each clean canvas token on an equal token of x is equally likely (each has the same
numbers of deleted, masked and clean positions), so the posterior over alignments is uniform over those;
a forward-backward count over them gives each slot's source distribution and each gap's expected count.
This is a property of the estimate, not of any network: a FlexMDM or LoFlexMDM bound in nats per token is
comparable with another FlexMDM's, but not with MDM's, IP's or the ARM's. Times: ``--times`` stratified on
(0, 1) per sequence, one noised state each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _bregman(target: float, model: float, eps: float = 1e-6) -> float:
    """D(target, model) = model - target + target log(target / model) (Poisson Bregman divergence)."""
    target, model = max(target, eps), max(model, eps)
    return model - target + target * np.log(target / model)


def alignment_counts(canvas: list, x: list, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward and backward counts of the monotone alignments of ``canvas`` into ``x`` (``mask``: the mask
    token, compatible with any source token): ``forward[i, j]`` the alignments of slots 0..i with slot i at
    position j, ``backward[i, j]`` those of slots i+1.. given slot i at j; and ``ok[i, j]``, whether slot i may
    sit at position j."""
    m, n = len(canvas), len(x)
    ok = np.array([[c == mask or c == v for v in x] for c in canvas], dtype=float).reshape(m, n)
    forward, backward = np.zeros((m, n)), np.ones((m, n))
    for i in range(m):
        before = np.ones(n) if i == 0 else np.concatenate([[0.0], np.cumsum(forward[i - 1])[:-1]])
        forward[i] = ok[i] * before
    for i in range(m - 2, -1, -1):
        after = ok[i + 1] * backward[i + 1]
        backward[i] = np.concatenate([np.cumsum(after[::-1])[::-1][1:], [0.0]])
    return forward, backward, ok


def integrand(x: list, t: float, rng: np.random.Generator, mask="<mask>") -> tuple[float, float]:
    """The floor's integrand at time ``t`` for one noised state of ``x``: (unmask part, insertion part)."""
    n = len(x)
    t_in = rng.random(n)
    t_um = t_in + rng.random(n) * (1.0 - t_in)
    kept = np.nonzero(t_in <= t)[0]
    h = 1.0 / (1.0 - t)
    if len(kept) == 0:  # nothing inserted: one gap holding all n tokens, predicted exactly
        return 0.0, 0.0
    canvas = [mask if t < t_um[j] else x[j] for j in kept]
    forward, backward, ok = alignment_counts(canvas, x, mask)
    total = forward[-1].sum()
    positions = np.arange(n)
    unmask = insert = 0.0
    for i, source in enumerate(kept):
        posterior = forward[i] * backward[i] / total
        if canvas[i] == mask:
            unmask += -h * np.log(sum(posterior[j] for j in range(n) if x[j] == x[source]))
        if i == 0:  # the gap left of the first token: every position before it
            expected = float((posterior * positions).sum())
            true = source
        else:  # positions strictly between slot i-1's source a and slot i's source b
            joint = np.triu(np.outer(forward[i - 1], ok[i] * backward[i]), k=1) / total  # (a, b), a < b
            expected = float((joint * (positions[None, :] - positions[:, None] - 1)).sum())
            true = source - kept[i - 1] - 1
        insert += h * _bregman(float(true), expected)
    last = forward[-1] / total  # the gap left of the end: every position after the last token
    insert += h * _bregman(float(n - 1 - kept[-1]), float((last * (n - 1 - positions)).sum()))
    return unmask, insert


def floor(x: list, times: int, rng: np.random.Generator) -> dict:
    """The floor of one sequence in nats per scored token (len(x) + 1), split into its two parts."""
    t = (np.arange(times) + rng.random(times)) / times * (1.0 - 1e-4)
    parts = np.array([integrand(x, float(s), rng) for s in t])
    scored = len(x) + 1
    return {"length": len(x), "unmask": float(parts[:, 0].mean()) / scored,
            "insert": float(parts[:, 1].mean()) / scored,
            "stderr": float(parts.sum(1).std() / np.sqrt(times)) / scored}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="smiles")
    parser.add_argument("-n", type=int, default=20, help="validation sequences")
    parser.add_argument("--times", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.n < 1 or args.times < 1:
        parser.error("-n and --times must be positive")
    from insertgen.apps.benchmarking import machine
    from insertgen.core.io import to_json, write_text_atomic
    from insertgen.tasks import get_task

    task = get_task(args.task)
    rng = np.random.default_rng(args.seed)
    rows = []
    for ex in task.examples("validation")[: args.n]:
        row = {"sequence": task.format(ex.target), **floor([int(v) for v in ex.target], args.times, rng)}
        rows.append(row)
        print(f"{row['sequence']}: unmask {row['unmask']:.3f} + insert {row['insert']:.3f} nats/token "
              f"(+- {row['stderr']:.3f})")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("unmask", "insert")}
    mean["total"] = mean["unmask"] + mean["insert"]
    print(f"mean over {len(rows)}: {mean['total']:.3f} nats per token = unmask {mean['unmask']:.3f} + insert "
          f"{mean['insert']:.3f}")
    if args.out:
        write_text_atomic(args.out, to_json({"settings": {"task": args.task, "n": args.n, "times": args.times,
                                                          "seed": args.seed}, "machine": machine(),
                                             "mean": mean, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
