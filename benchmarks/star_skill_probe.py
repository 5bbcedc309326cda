"""Which sub-skills of star-graph traversal has a FlexMDM denoiser learned, against training time?

    python benchmarks/star_skill_probe.py --preset star-easy-cpu --budget 720 --every 90 --threads 1 \
        [--name NAME] [--set key=value ...]
    python benchmarks/star_skill_probe.py --run RUN_DIR --name NAME      # probe a trained run (EMA weights)

Exact match only says *that* a model fails; this probe says *why*. The target of a path
``p_0 .. p_n`` is written as edges, ``p0 p1 | p1 p2 | ... | p_{n-1} p_n`` (positions 2k, 2k+1 hold edge
k). Each probe builds a full-length canvas (every target token present), masks some of it, runs the
denoiser once at t = 0.95 and scores the arg-max at one position on 500 held-out graphs:

    copy_source     all masked; position 0 = the source, the second-to-last prompt token
    copy_goal       all masked; position 2n-1 = the goal, the last prompt token
    parent_of_goal  all masked; position 2n-2 = p_{n-1}: the u of the prompt edge (u, goal), one hop
    parent_lookup   positions >= 2n-3 revealed; position 2n-4 = p_{n-2}: the u of the edge (u, p_{n-1})
                    where p_{n-1} is the revealed token at 2n-3 (a lookup, not a copy of a neighbour)
    twin_copy       position 1 revealed; position 2 = p_1 again (the shortcut of the edge encoding)

Chance is about 1/13 for the node lookups. Greedy sampling solves a graph only through the lookups
(a confidence-ordered sampler can chain ``parent_of_goal`` then ``parent_lookup`` back to the source),
so a model whose lookup probes stay at chance cannot exceed chance-level exact match.
Training runs in segments of ``--every`` seconds (resume is exact); the probe uses the raw weights.
Writes benchmarks/results/star_skill_probe-NAME.json after every point.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from insertgen.engine.run import load_run
from insertgen.apps.benchmarking import parse_overrides, save
from insertgen.core.data import collate
from insertgen.core.rundir import read_config
from insertgen.engine.training_run import prepare_run

PROBE_TIME = 0.95


def probe_canvases(tokens: torch.Tensor, fixed: torch.Tensor, mask_id: int, pad_id: int):
    """Yield (probe name, canvas, target position per row) for a collated batch of star examples."""
    target = ~fixed & (tokens != pad_id)
    first = target.float().argmax(1)  # index of p_0
    n2 = target.sum(1)  # 2n target tokens
    col = torch.arange(tokens.shape[1])[None, :]
    rel = col - first[:, None]  # position within the target
    all_masked = torch.where(target, torch.full_like(tokens, mask_id), tokens)

    def reveal(where):
        return torch.where(target & where, tokens, all_masked)

    yield "copy_source", all_masked, first
    yield "copy_goal", all_masked, first + n2 - 1
    yield "parent_of_goal", all_masked, first + n2 - 2
    yield "parent_lookup", reveal(rel >= (n2 - 3)[:, None]), first + n2 - 4
    yield "twin_copy", reveal(rel == 1), first + 2


@torch.no_grad()
def probe(model, task, n: int = 500) -> dict[str, float]:
    examples = (task.examples("validation") + task.examples("test"))[:n]
    batch = collate(examples, task.vocab)
    v = task.vocab
    rows = torch.arange(len(examples))
    was_training = model.training
    model.eval()
    result = {}
    for name, canvas, position in probe_canvases(batch.tokens, batch.fixed, v.mask_id, v.pad_id):
        logits, _ = model(canvas, torch.full((len(examples),), PROBE_TIME))
        predicted = logits[rows, position].argmax(-1)
        result[name] = round(float((predicted == batch.tokens[rows, position]).float().mean()), 4)
    model.train(was_training)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="star-easy-cpu")
    parser.add_argument("--model", default=None, help="model id (default: the preset's; its sizes then via --set)")
    parser.add_argument("--name", default=None, help="result name (default: the preset)")
    parser.add_argument("--budget", type=float, default=720.0, help="Total training seconds.")
    parser.add_argument("--every", type=float, default=90.0, help="Training seconds between probes.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--set", dest="sets", nargs="*", default=[], help="key=value overrides")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--run", type=Path, default=None, help="probe this trained run instead of training")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run is not None:
        model = load_run(args.run)
        point = {"steps": read_config(args.run)["train"]["steps"], **probe(model, model.task)}
        save(f"star_skill_probe-{args.name or args.run.name}", {"command": " ".join(sys.argv),
                                                                "run": str(args.run), "weights": "ema",
                                                                "probe_time": PROBE_TIME, "points": [point]})
        return
    name = args.name or args.preset
    out = args.out or Path("bench-out") / f"probe-{name}"
    overrides = parse_overrides(args.sets)
    overrides.setdefault("eval_every", 0)
    overrides.setdefault("steps", 10**6)
    points, trained, resume = [], 0.0, False
    while trained < args.budget - 1e-6:
        _, trainer = prepare_run(task=None, model=args.model, preset=args.preset, steps=None, out=out, seed=args.seed,
                                 overrides={} if resume else overrides, resume=resume,
                                 time_budget=min(args.every, args.budget - trained))
        start = time.time()
        trainer.train(progress=False)
        trained += time.time() - start
        resume = True
        point = {"train_seconds": round(trained, 1), "step": trainer.step, **probe(trainer.model, trainer.task)}
        points.append(point)
        print(point, flush=True)
        save(f"star_skill_probe-{name}", {"command": " ".join(sys.argv), "preset": args.preset,
                                          "model": trainer.model.model_id, "overrides": overrides, "seed": args.seed, "probe_time": PROBE_TIME,
                                          "points": points}, quiet=True)


if __name__ == "__main__":
    main()
