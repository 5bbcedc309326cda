"""Learning speed on mazes: how many steps (and FLOPs) a model needs to plan, what is wrong with its plans
along the way, and the order it writes them in.

    # one model, one maze task: a point every --every steps
    python benchmarks/maze_learning.py --task maze-perfect-easy --model ip --steps 20000 --every 1000 \
        --out runs-in-progress/mazes/easy-ip-s0 [--preset P] [--set token_shift=true ...] [--seed S] [--threads 1]
    # a ladder over maze size and subgoal count: every model on every rung, then time to 50% / 95% success
    python benchmarks/maze_learning.py --ladder maze-perfect-7x7-k2,maze-perfect-11x11-k3,maze-perfect-15x15-k4 \
        --models ip,arm --steps 20000 --every 1000 --stop-at 0.95 --out runs-in-progress/mazes/ladder

Tasks: the named tiers (``maze-{perfect,imperfect,braided}-{easy,medium,hard}``) and the ladder rungs
``maze-FAMILY-NxN-kK`` (an N x N grid, exactly K subgoal cells with start and goal; tasks/maze/task.py),
whose default presets are those of the named tier of the nearest size. The run is trained with ``insertgen
train``'s own trainer, resumably, by the loop of ``learning_speed.py`` (rerunning the same command continues
it; ``--max-flops`` turns a FLOP budget into steps). Every ``--every`` steps, with the EMA weights, on the
first ``--eval-n`` test problems (default 500), decoded greedily (the most likely token at every decision,
``--sampler-steps`` steps where the family's sampler takes steps, the run's sampler order), as ``insertgen
eval`` decodes plans:

* ``loss``: the mean training loss since the last point;
* ``success`` (a valid plan: open cells, steps to 4-neighbours, from the start to the goal through the
  subgoals in order), ``optimal`` (valid and shortest), ``exact_match``, ``token_accuracy``;
* the failure kinds, ``failure_<kind>``: the share of plans that break a wall, jump (a move that is not a
  step), start or end in the wrong cell, skip a subgoal, are too short or too long
  (``tasks.maze.paths.FAILURE_KINDS``; a plan may have several);
* the order statistic, ``order_corr_unmask`` (``_insert``): Spearman's correlation, per plan, between the
  step at which a plan cell was decided (inserted) and its distance along the plan to the nearest subgoal,
  averaged over plans; positive when the cells next to the subgoals come first (a segment filled from its
  fixed ends), about 0 for a left-to-right model;
* ``model_evals_per_seq``: network evaluations per plan.

Writes ``OUT/learning.json`` (settings, machine, FLOPs per step, points, ``time_to_solve``: the first step and
FLOPs at which success reached 50% and 95%) and ``OUT/learning.png`` after every point; a ladder writes one
such directory per rung and model, and ``OUT/ladder.json`` / ``OUT/ladder.md``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from insertgen.core.options import parse_assignments
from insertgen.core.threads import use_threads
from insertgen.tasks.maze.paths import FAILURE_KINDS

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.maze_learning by the tests
    from learning_speed import add_run_options, draw_training_loss, ladder, learn
except ImportError:  # pragma: no cover
    from benchmarks.learning_speed import add_run_options, draw_training_loss, ladder, learn

SUCCESS_THRESHOLDS = (0.5, 0.95)
KEEP = ("success", "optimal", "exact_match", "token_accuracy", "order_corr_unmask", "order_corr_insert",
        "order_corr_examples", "model_evals_per_seq", "termination_rate",
        *(f"failure_{kind}" for kind in FAILURE_KINDS))


class MazeCurve:
    """The points of a maze run (module docstring); the ``curve`` of ``learning_speed.learn``."""

    headline = "success"
    thresholds = SUCCESS_THRESHOLDS

    def __init__(self, sampler_steps: int = 64):
        self.sampler_steps = sampler_steps

    def settings(self) -> dict:
        return {"sampler_steps": self.sampler_steps, "decoding": "greedy"}

    def evaluate(self, trainer, eval_n: int, model_id: str) -> dict:
        from insertgen.engine.evaluate import evaluate_model
        from insertgen.models.registry import get_family

        task, model = trainer.task, trainer.model
        options = get_family(model_id).sampler_options({"steps": self.sampler_steps, "top_k": 1,
                                                        "order": trainer.cfg.eval_sampler.get("order", "joint")})
        model.eval()
        with trainer.ema.applied(model), torch.no_grad():
            metrics, _ = evaluate_model(model, task, task.examples("test")[:eval_n], options, seed=0)
        model.train()
        return {k: metrics[k] for k in KEEP if k in metrics}  # an undefined correlation (NaN) is written as null

    @staticmethod
    def describe(point: dict) -> str:
        faults = " ".join(f"{k} {point[f'failure_{k}']:.2f}" for k in FAILURE_KINDS if point.get(f"failure_{k}"))
        order = point.get("order_corr_unmask")
        return (f"success {point['success']:.3f} optimal {point['optimal']:.3f} token {point['token_accuracy']:.3f}"
                + (f" | order {order:+.2f}" if order is not None and not math.isnan(order) else "")
                + (f" | {faults}" if faults else ""))

    @staticmethod
    def plot(record: dict, path: Path) -> None:
        plot(record, path)


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = record["points"]
    steps = [p["step"] for p in points]
    nan = float("nan")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for key, style in (("success", {"lw": 2.5, "color": "k"}), ("optimal", {}), ("exact_match", {}),
                       ("token_accuracy", {"ls": "--"})):
        left.plot(steps, [p.get(key, nan) for p in points], label=key.replace("_", " "), **style)
    twin = draw_training_loss(left, points)
    if twin is not None:
        twin.legend(loc="upper right", fontsize=7)
    s = record["settings"]
    left.set_ylim(0, 1.02)
    left.set_xlabel("step")
    left.set_title(f"{s['model']} on {s['task']}: plans (greedy)")
    left.legend(loc="upper left", fontsize=7)
    for kind in FAILURE_KINDS:
        values = [p.get(f"failure_{kind}", nan) for p in points]
        if any(v for v in values if not math.isnan(v)):
            right.plot(steps, values, label=kind.replace("_", " "))
    for key, label in (("order_corr_unmask", "order corr. (decided)"), ("order_corr_insert", "order corr. (inserted)")):
        values = [p.get(key) for p in points]
        right.plot(steps, [nan if v is None else v for v in values], ls="--", marker=".", label=label)
    right.axhline(0, color="grey", lw=0.5)
    right.set_ylim(-1.02, 1.02)
    right.set_xlabel("step")
    right.set_title("failure kinds (share of plans); order vs distance to a subgoal")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--preset", default=None)
    parser.add_argument("--ladder", default=None, help="Comma-separated maze tasks (rungs).")
    parser.add_argument("--models", default=None, help="Comma-separated models (with --ladder).")
    parser.add_argument("--max-flops", type=float, default=None, help="Stop once the counted training FLOPs reach this.")
    parser.add_argument("--sampler-steps", type=int, default=64, help="Sampler steps where the family takes steps.")
    add_run_options(parser, "success (e.g. 0.95)")
    args = parser.parse_args(argv)
    if min(args.steps, args.every, args.eval_n, args.sampler_steps) < 1:
        parser.error("--steps, --every, --eval-n and --sampler-steps must be positive")
    if args.stop_at is not None and not 0 < args.stop_at <= 1:
        parser.error("--stop-at is a fraction of success in (0, 1]")
    tasks = args.ladder.split(",") if args.ladder else [args.task]
    if any(t is not None and not t.startswith("maze-") for t in tasks):
        parser.error(f"maze tasks only (maze-...), not {', '.join(t for t in tasks if not t.startswith('maze-'))}")
    use_threads(args.threads)
    torch.manual_seed(args.seed)
    curve = MazeCurve(args.sampler_steps)
    overrides = parse_assignments(args.sets, "--set")
    if args.ladder:
        if not args.models:
            parser.error("--ladder needs --models")
        if args.max_flops is not None:
            parser.error("--max-flops applies to one run (--task), not a ladder")
        ladder(tasks, args.models.split(","), args.steps, args.every, args.out, args.seed, overrides, args.eval_n,
               args.stop_at, curve=curve)
    else:
        if not (args.task and args.model):
            parser.error("give --task and --model, or --ladder and --models")
        learn(args.task, args.model, args.steps, args.every, args.out, args.preset, args.seed, overrides,
              args.eval_n, stop_at=args.stop_at, curve=curve, max_flops=args.max_flops)


if __name__ == "__main__":
    main()
