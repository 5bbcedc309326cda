"""Where a FlexMDM / LoFlexMDM run's held-out bound goes: its ELBO split into the unmasking part (which token)
and the insertion part (how many masks in which gap), in nats per token, overall and per tenth of time.

    python benchmarks/elbo_parts.py --run RUN_DIR [--run RUN_DIR ...] [-n 100] [--samples 32] [--threads 1] \
        [--out benchmarks/results/elbo-parts.json]

For each of the first ``-n`` validation (prompt, target) pairs, ``--samples`` times stratified on (0, 1) with
one noised state each give the ELBO's integrand (models/flexmdm/elbo.py) split into its two sums; each part is
averaged over the times and summed over the pairs, then divided by the scored tokens (target + end, as
``insertgen score`` divides). ``by_time`` splits the same sums by the tenth of (0, 1) the time fell in, so the
ten entries of a part add up to that part; t = 0 is the empty sequence, t = 1 the clean one. Deterministic
under ``--seed``. The EMA weights of each run (``load_run``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from insertgen.apps.benchmarking import machine
from insertgen.core.data import Example, collate
from insertgen.core.io import to_json, write_text_atomic
from insertgen.core.threads import use_threads
from insertgen.engine.evaluate import scored_tokens
from insertgen.engine.run import load_run
from insertgen.models.flexmdm.elbo import elbo_integrand_parts
from insertgen.models.schedules import stratified_times

BINS = 10


@torch.no_grad()
def elbo_parts(model, examples, samples: int, seed: int = 0) -> dict:
    """The ELBO's unmask / insert parts (and the unmask part's cross-entropy) in nats per scored token,
    overall and per tenth of time (module docstring)."""
    if model.model_id not in ("flexmdm", "loflexmdm"):
        raise SystemExit(f"elbo_parts: {model.model_id} has no FlexMDM ELBO (flexmdm and loflexmdm only)")
    generator = torch.Generator().manual_seed(seed)
    names = ("unmask", "insert", "cross_entropy")
    total = dict.fromkeys(names, 0.0)
    by_time = {name: [0.0] * BINS for name in names}
    tokens = 0
    for ex in examples:
        batch = collate([Example(tuple(ex.prompt), tuple(ex.target))], model.vocab, model.config.max_len)
        x1, fixed = batch.tokens.expand(samples, -1), batch.fixed.expand(samples, -1)
        t = stratified_times(samples, 0.0, 1.0, generator, x1.device)
        t_in, t_um, b_in, b_um = model.noising_event_times(x1, t, generator, "learned")
        parts = elbo_integrand_parts(model, x1, fixed, t, t_in, t_um, b_in, b_um)
        bins = (t * BINS).long().clamp(max=BINS - 1).tolist()
        for name in names:
            values = parts[name].double() / samples
            total[name] += float(values.sum())
            for b, v in zip(bins, values.tolist()):
                by_time[name][b] += v
        tokens += scored_tokens(list(ex.target))
    return {"nats_per_token": {name: total[name] / tokens for name in names}
            | {"total": (total["unmask"] + total["insert"]) / tokens},
            "by_time": {name: [v / tokens for v in values] for name, values in by_time.items()},
            "examples": len(examples), "samples": samples, "tokens": tokens}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, action="append", required=True)
    parser.add_argument("-n", type=int, default=100, help="validation pairs")
    parser.add_argument("--samples", type=int, default=32, help="times per pair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.n < 1 or args.samples < 1:
        parser.error("-n and --samples must be positive")
    use_threads(args.threads)
    rows = []
    for run in args.run:
        model = load_run(run)
        row = {"run": str(run), "model": model.model_id, "task": model.task.name, "step": model.checkpoint_step,
               **elbo_parts(model, model.task.examples("validation")[: args.n], args.samples, args.seed)}
        rows.append(row)
        nats = row["nats_per_token"]
        print(f"{run}: step {row['step']}: {nats['total']:.3f} nats/token = unmask {nats['unmask']:.3f} "
              f"(cross-entropy {nats['cross_entropy']:.3f}) + insert {nats['insert']:.3f}")
        for name in ("unmask", "insert"):
            print(f"  {name:>6} by tenth of t: " + " ".join(f"{v:.3f}" for v in row["by_time"][name]))
    if args.out:
        settings = {"runs": [str(r) for r in args.run], "n": args.n, "samples": args.samples, "seed": args.seed}
        write_text_atomic(args.out, to_json({"settings": settings, "machine": machine(), "rows": rows}, indent=1)
                          + "\n")


if __name__ == "__main__":
    main()
