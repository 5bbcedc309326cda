"""Learning speed: how many steps (and FLOPs) a model needs to solve a star task, with the sub-skills it
has learned along the way.

    # one model, one task: a point every --every steps
    python benchmarks/learning_speed.py --task star-tiny --model flexmdm --steps 20000 --every 500 \
        --out bench-out/learning/tiny-flexmdm [--preset P] [--set fresh_data=true ...] [--seed S] [--threads 1]
    # a ladder: every model on every rung, then "time to solve" per model and rung
    python benchmarks/learning_speed.py --ladder star-tiny,star-small,star-easy --models flexmdm,arm \
        --steps 20000 --every 500 --out bench-out/learning/ladder

Each point: the mean training loss since the last point, then with the EMA weights exact match, token
accuracy, plan validity and the generation order (``order_corr_unmask`` / ``_insert``: Spearman's
correlation of a token's generation step with its distance from the junction) of greedy sampling (64
sampler steps, the run's sampler order) on the first ``--eval-n`` test graphs (default 500), the exact
match of the family's other samplers (``exact_match_other_samplers``: FlexMDM / LoFlexMDM's other
tau-leaping order, MDM's confidence order; ``evaluate.family_samplers``), for IP the
order of its posterior (``posterior_order_corr``: the same correlation for the ranks of 4 orders drawn
from q(order | target) per graph, on the first 100 test graphs), the sub-skill probes of
``insertgen.engine.star_probes`` on the same graphs, and the failure kinds of the wrong outputs
(``star_probes.failure_kinds``: which look-up the first wrong decision needed; the instrument for IP /
AO-IP, which the probes do not ask). The model is
trained with ``insertgen train``'s own trainer (preset default: the task's own CPU preset of the model,
e.g. ``star-tiny-ip-cpu`` for IP on star-tiny, else the star-easy one), resumably: rerunning the same
command continues from the last point, and a run directory trained elsewhere (e.g. a ``reproduce`` cell),
copied to ``OUT/run``, is continued from its last checkpoint, its curve starting at that step. FLOPs are
the counted matrix-product FLOPs of one training step (as ``insertgen bench`` counts them, on a
throw-away copy) times the steps. ``--stop-at 0.95`` ends a run early
once two points in a row reach that exact match.

Writes ``OUT/learning.json`` (settings, points) and ``OUT/learning.png`` after every point; a ladder writes
one such directory per rung and model, and ``OUT/ladder.json`` / ``OUT/ladder.md``: per model and rung the
first step (and FLOPs) at which exact match reached 50% and 95%, or "not within budget".
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from insertgen.apps.benchmarking import POSTERIOR_EXAMPLES, POSTERIOR_SAMPLES, machine
from insertgen.core.io import to_json, write_text_atomic
from insertgen.core.memory import blocks_mapped_apart
from insertgen.core.options import parse_assignments
from insertgen.core.threads import use_threads

THRESHOLDS = (0.5, 0.95)
SAMPLER_STEPS = 64


def default_preset(task: str, model: str) -> str:
    """The task's own CPU preset of ``model`` where there is one (``star-tiny-ip-cpu``), else star-easy's."""
    from insertgen.engine.presets import cpu_preset_name, has_preset

    own = cpu_preset_name(task, model)
    return own if has_preset(own) else cpu_preset_name("star-easy", model)


def flops_per_step(task: str, model: str, preset: str, seed: int, overrides: dict) -> float:
    from insertgen.apps.bench import count_step_flops
    from insertgen.engine.training_run import prepare_run

    with tempfile.TemporaryDirectory() as tmp:
        _, probe = prepare_run(task=task, model=model, preset=preset, steps=10, out=Path(tmp) / "probe", seed=seed,
                               overrides={**overrides, "eval_every": 0}, resume=False)
        return count_step_flops(probe)




def evaluate_point(trainer, eval_n: int, model_id: str) -> dict:
    from insertgen.engine.analysis import posterior_order_profile
    from insertgen.engine.evaluate import evaluate_model, family_samplers
    from insertgen.engine.star_probes import failure_kinds, probe
    from insertgen.models.registry import get_family

    task, model = trainer.task, trainer.model
    examples = task.examples("test")[:eval_n]
    model.eval()
    with trainer.ema.applied(model):
        metrics, pairs = evaluate_model(model, task, examples, get_family(model_id).sampler_options(dict(
            steps=SAMPLER_STEPS, top_k=1, order=trainer.cfg.eval_sampler.get("order", "joint"))), seed=0)
        target_format = getattr(task, "target_format", "edges")
        probes = probe(model, examples, target_format)
        failures = failure_kinds(examples, pairs, target_format)
        posterior = posterior_order_profile(model, task, examples[:POSTERIOR_EXAMPLES], POSTERIOR_SAMPLES)
        others = {name: evaluate_model(model, task, examples, options, seed=0)[0]["exact_match"]
                  for name, options in family_samplers(model_id, SAMPLER_STEPS).items()
                  if name not in ("ancestral", "left_to_right", trainer.cfg.eval_sampler.get("order", "joint"))}
    model.train()
    keep = ("exact_match", "token_accuracy", "plan_validity", "model_evals_per_seq", "order_corr_unmask",
            "order_corr_insert")
    extra = {"posterior_order_corr": posterior["rank_distance_corr"]} if posterior else {}
    if others:
        extra["exact_match_other_samplers"] = others
    return {**{k: metrics[k] for k in keep if k in metrics}, "probes": probes, "failures": failures, **extra}


def run_directory(path: Path) -> Path:
    """The run of ``path``: its ``run/`` when ``path`` is a learning-benchmark directory, else ``path``."""
    return path / "run" if (path / "run" / "config.json").is_file() else path


def mean_loss_since(run_dir: Path, after: int) -> float | None:
    losses = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record and record["step"] > after:
            losses.append(record["loss"])
    return sum(losses) / len(losses) if losses else None


def solved(points: list[dict], stop_at: float | None, key: str = "exact_match") -> bool:
    """True when the last two points both reached ``key`` (exact match) ``stop_at`` (a solve seen twice)."""
    return stop_at is not None and len(points) >= 2 and all(p[key] >= stop_at for p in points[-2:])


class StarCurve:
    """What a point of a star run records and how the run is drawn and summarised; a sibling benchmark
    (molecule_learning.py) passes its own object with the same four members to :func:`learn`."""

    headline = "exact_match"  # the metric of "time to solve" and of --stop-at
    thresholds = THRESHOLDS

    @staticmethod
    def settings() -> dict:
        """What a point depends on beyond the run's settings (checked when a run is continued)."""
        return {"sampler_steps": SAMPLER_STEPS}

    @staticmethod
    def evaluate(trainer, eval_n: int, model_id: str) -> dict:
        return evaluate_point(trainer, eval_n, model_id)

    @staticmethod
    def describe(point: dict) -> str:
        return (f"exact {point['exact_match']:.3f} token {point['token_accuracy']:.3f} "
                + "".join(f"({k} {v:.3f}) " for k, v in point.get("exact_match_other_samplers", {}).items())
                + "probes " + " ".join(f"{k} {v:.2f}" for k, v in point["probes"].items() if v is not None))

    @staticmethod
    def plot(record: dict, path: Path) -> None:
        plot(record, path)


def learn(task: str, model: str, steps: int, every: int, out: Path, preset: str | None = None, seed: int = 0,
          overrides: dict | None = None, eval_n: int = 500, report=print, stop_at: float | None = None,
          curve=StarCurve, max_flops: float | None = None) -> dict:
    """Train ``model`` on ``task`` for ``steps`` steps with a point every ``every`` steps (module
    docstring), or until two points in a row reach ``curve.headline`` ``stop_at``, or until the counted
    training FLOPs reach ``max_flops``; resumes from ``out`` when it holds an earlier invocation with the
    same settings. ``curve`` says what a point records (:class:`StarCurve`)."""
    from insertgen.engine.training_run import prepare_run

    preset = preset or default_preset(task, model)
    overrides = {"eval_every": 0, "log_every": min(50, every), "checkpoint_every": every, **(overrides or {})}
    settings = {"task": task, "model": model, "preset": preset, "seed": seed, "overrides": overrides,
                "steps": steps, "every": every, "eval_n": eval_n, **curve.settings()}
    path = out / "learning.json"
    if path.is_file():
        record = json.loads(path.read_text())
        if {k: record["settings"][k] for k in settings if k != "steps"} != {k: v for k, v in settings.items()
                                                                          if k != "steps"}:
            raise SystemExit(f"{out} holds a learning run with other settings: {record['settings']}")
        record["settings"]["steps"] = steps
    else:
        record = {"settings": settings, "machine": machine(),
                  "flops_per_step": flops_per_step(task, model, preset, seed, overrides), "points": []}
    run_dir = out / "run"
    resume = (run_dir / "config.json").is_file()
    _, trainer = prepare_run(task=None if resume else task, model=None if resume else model,
                             preset=None if resume else preset, steps=steps, out=run_dir, seed=seed,
                             overrides={} if resume else overrides, resume=resume)
    if max_flops is not None:  # the FLOP budget as a step budget
        steps = min(steps, max(1, int(max_flops // record["flops_per_step"])))

    def point(loss, seconds: float, **extra) -> dict:
        with blocks_mapped_apart():  # the evaluation does not grow the heap of the steps after it (core/memory.py)
            measured = curve.evaluate(trainer, eval_n, model)
        return {"step": trainer.step, "flops": trainer.step * record["flops_per_step"], "loss": loss,
                "seconds": seconds, **extra, **measured}

    if not record["points"]:  # the first point: step 0, or the step of a run directory continued here
        record["points"].append(point(None, 0.0))
    elif trainer.step > record["points"][-1]["step"]:  # stopped while scoring its last checkpoint: score it now
        last = record["points"][-1]
        # its training time was not measured: the run's mean seconds a step
        record["points"].append(point(mean_loss_since(run_dir, last["step"]),
                                      last["seconds"] * trainer.step / max(last["step"], 1), seconds_estimated=True))
        write_text_atomic(path, to_json(record, indent=1) + "\n")
    while trainer.step < steps and not solved(record["points"], stop_at, curve.headline):
        start, before = time.time(), trainer.step
        trainer.cfg.steps = min(steps, (trainer.step // every + 1) * every)
        trainer.train(progress=False)
        record["points"].append(point(mean_loss_since(run_dir, before),
                                      record["points"][-1]["seconds"] + time.time() - start))
        record["time_to_solve"] = time_to_solve(record["points"], curve.headline, curve.thresholds)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, to_json(record, indent=1) + "\n")
        curve.plot(record, out / "learning.png")
        latest = record["points"][-1]
        report(f"{task} {model} step {latest['step']}: loss {latest['loss']:.4f} {curve.describe(latest)}")
    record["time_to_solve"] = time_to_solve(record["points"], curve.headline, curve.thresholds)
    write_text_atomic(path, to_json(record, indent=1) + "\n")
    return record


def time_to_solve(points: list[dict], key: str = "exact_match", thresholds=THRESHOLDS) -> dict:
    """First (step, flops) at which ``key`` (exact match) reached each threshold, or None."""
    out = {}
    for threshold in thresholds:
        hit = next((p for p in points if p[key] >= threshold), None)
        out[f"{threshold:g}"] = {"step": hit["step"], "flops": hit["flops"]} if hit else None
    return out


def draw_training_loss(ax, points: list[dict]):
    """The points' training loss on a twin of ``ax`` (grey, dotted), log-scaled unless a loss is not positive
    (LoFlexMDM's objective may fall below zero); the twin axis, or None when no point has a loss yet."""
    losses = [(p["step"], p["loss"]) for p in points if p["loss"] is not None]
    if not losses:
        return None
    twin = ax.twinx()
    twin.plot(*zip(*losses), color="grey", ls=":", label="training loss")
    twin.set_yscale("log" if all(loss > 0 for _, loss in losses) else "linear")
    twin.set_ylabel("training loss")
    return twin


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = record["points"]
    steps = [p["step"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(steps, [p["exact_match"] for p in points], label="exact match", lw=2)
    left.plot(steps, [p["token_accuracy"] for p in points], label="token accuracy")
    for name in points[-1].get("exact_match_other_samplers", {}):
        left.plot(steps, [p.get("exact_match_other_samplers", {}).get(name, float("nan")) for p in points],
                  ls="--", label=f"exact match, {name} sampler")
    draw_training_loss(left, points)
    left.set_ylim(0, 1.02)
    left.set_xlabel("step")
    left.legend(loc="upper left")
    s = record["settings"]
    left.set_title(f"{s['model']} on {s['task']}")
    probed = False
    for name in points[0]["probes"]:
        values = [p["probes"][name] for p in points]
        if any(v is not None for v in values):
            right.plot(steps, [float("nan") if v is None else v for v in values], label=name)
            probed = True
    if probed:
        right.set_ylim(0, 1.02)
        right.set_title("sub-skill probes (arg-max accuracy)")
    else:  # IP / AO-IP: the failure kinds (fraction of the evaluated graphs) and the generation order
        n = record["settings"]["eval_n"]
        kinds = [k for k in (points[-1].get("failures") or {})]
        for kind in kinds:
            right.plot(steps, [(p.get("failures") or {}).get(kind, float("nan")) / n for p in points],
                       label=f"failure: {kind}")
        right.plot(steps, [p.get("order_corr_unmask", float("nan")) for p in points], ls="--",
                   label="sampler order corr.")
        if any("posterior_order_corr" in p for p in points):
            right.plot(steps, [p.get("posterior_order_corr", float("nan")) for p in points], ls="--", marker=".",
                       label="posterior order corr.")
        right.axhline(0, color="grey", lw=0.5)
        right.set_ylim(-1.02, 1.02)
        right.set_title(f"{s['model']}: failure kinds (fraction) and order correlations")
    right.set_xlabel("step")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ladder(rungs: list[str], models: list[str], steps: int, every: int, out: Path, seed: int, overrides: dict,
           eval_n: int, stop_at: float | None = None, curve=StarCurve) -> dict:
    """Every model on every rung (:func:`learn`, points as ``curve`` records them), then per model and rung
    the first step (and FLOPs) at which ``curve.headline`` reached each of ``curve.thresholds``:
    ``OUT/ladder.json`` and the table ``OUT/ladder.md``."""
    key = curve.headline
    rows = []
    for rung in rungs:
        for model in models:
            record = learn(rung, model, steps, every, out / rung / model, seed=seed, overrides=overrides,
                           eval_n=eval_n, stop_at=stop_at, curve=curve)
            best = max(record["points"], key=lambda p: p[key])
            rows.append({"task": rung, "model": model, "time_to_solve": record["time_to_solve"],
                         f"best_{key}": best[key], "best_step": best["step"],
                         "flops_per_step": record["flops_per_step"], "budget_steps": steps})
    summary = {"settings": {"rungs": rungs, "models": models, "steps": steps, "every": every, "seed": seed,
                            "overrides": overrides, "eval_n": eval_n, "headline": key}, "machine": machine(),
               "rows": rows}
    write_text_atomic(out / "ladder.json", to_json(summary, indent=1) + "\n")
    label = key.replace("_", " ")
    lines = ["| task | model | " + " | ".join(f"{t:.0%} {label}" for t in curve.thresholds) + " | best (step) |",
             "|---|---|" + "---|" * len(curve.thresholds) + "---|"]
    for r in rows:
        cells = []
        for threshold in (f"{t:g}" for t in curve.thresholds):
            hit = r["time_to_solve"][threshold]
            cells.append(f"step {hit['step']:,} ({hit['flops']:.2e} FLOPs)" if hit else
                         f"not within {steps:,} steps")
        lines.append(f"| {r['task']} | {r['model']} | {' | '.join(cells)} | "
                     f"{r[f'best_{key}']:.1%} ({r['best_step']:,}) |")
    write_text_atomic(out / "ladder.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return summary


def add_run_options(parser: argparse.ArgumentParser, headline: str) -> None:
    """The options of a learning run shared by this benchmark and its siblings (molecule_learning.py):
    budget, evaluation size, seed, threads, ``--set`` overrides, early stop on ``headline``, output."""
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--every", type=int, required=True)
    parser.add_argument("--eval-n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", default=None)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--stop-at", type=float, default=None, metavar="FRACTION",
                        help=f"Stop early once two points in a row reach this {headline}.")
    parser.add_argument("--out", type=Path, required=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--preset", default=None)
    parser.add_argument("--ladder", default=None, help="Comma-separated tasks (rungs).")
    parser.add_argument("--models", default=None, help="Comma-separated models (with --ladder).")
    add_run_options(parser, "exact match (e.g. 0.95)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.every < 1 or args.eval_n < 1:
        parser.error("--steps, --every and --eval-n must be positive")
    if args.stop_at is not None and not 0 < args.stop_at <= 1:
        parser.error("--stop-at is a fraction of exact match in (0, 1]")
    use_threads(args.threads)
    torch.manual_seed(args.seed)
    overrides = parse_assignments(args.sets, "--set")
    if args.ladder:
        if not args.models:
            parser.error("--ladder needs --models")
        ladder(args.ladder.split(","), args.models.split(","), args.steps, args.every, args.out, args.seed,
               overrides, args.eval_n, args.stop_at)
    else:
        if not (args.task and args.model):
            parser.error("give --task and --model, or --ladder and --models")
        learn(args.task, args.model, args.steps, args.every, args.out, args.preset, args.seed, overrides,
              args.eval_n, stop_at=args.stop_at)


if __name__ == "__main__":
    main()
