"""``insertgen demo``: the main job on the embedded default.

Loads the small star-easy models that ship inside the package (FlexMDM, and LoFlexMDM when shipped), or
with ``--train`` trains each of them afresh on this CPU under the same wall-clock budget, evaluates them
side by side on the same freshly generated test graphs, and prints exact match, plan validity, the
generation-order correlation and one generation trajectory per model. ``--out RUN_DIR`` is the FlexMDM
run (usable by ``sample``, ``eval`` and ``score``); the other models' runs are ``RUN_DIR/compare/MODEL``.
"""

from __future__ import annotations

import json
import shutil
import time
from importlib import resources
from pathlib import Path

import click
import torch

from insertgen.checkpoint import CHECKPOINT
from insertgen.errors import InsertgenError
from insertgen.run import CONFIG

DEMO_MODELS = ("flexmdm", "loflexmdm")  # the first one's run is --out itself
DEMO_TASK = "star-easy"
FRESH_SEED_OFFSET = 10_000  # fresh graphs use seeds far from the splits' seed (42)
DEMO_SAMPLER_STEPS = 40  # two models on 1,000 graphs within a minute on a 2-core CPU (docs/results.md)


def pretrained_dir(model: str = "flexmdm") -> Path:
    return Path(str(resources.files("insertgen") / "pretrained" / f"{DEMO_TASK}-{model}"))


def trajectory_frames(task, record: dict) -> list[tuple[int, list[tuple[str, str]], dict]]:
    """The target part of the canvas after every step at which something changed, as ``(step, tokens,
    events)``: each token with its state at that step, ``"mask"`` (inserted earlier, still masked),
    ``"new"`` (a mask inserted at this step), ``"revealed"`` (unmasked at this step), ``"shown"``
    (unmasked earlier) or ``"given"`` (in the canvas from the start: a prompt inside the target, step -1);
    ``events`` counts the given tokens, the masks inserted and the tokens unmasked at that step."""
    vocab = task.vocab
    canvas = record["canvas"]
    start = canvas.index(vocab.bos_id) + 1
    end = len(canvas) - 1  # EOS
    ins, um = record["insert_step"][start:end], record["unmask_step"][start:end]
    toks = [vocab.tokens[i] for i in canvas[start:end]]
    frames = []
    for step in sorted(set(ins) | set(um)):
        shown = []
        for tok, i, u in zip(toks, ins, um):
            if i > step:
                continue
            if i == u < 0:
                state = "given"
            elif u < step:
                state = "shown"
            elif u == step:
                state = "revealed"
            else:
                state = "new" if i == step else "mask"
            shown.append((tok, state))
        given = sum(1 for i, u in zip(ins, um) if i == u == step < 0)
        events = {"given": given, "masks": sum(1 for i in ins if i == step) - given,
                  "revealed": sum(1 for u in um if u == step) - given}
        frames.append((step, shown, events))
    return frames


def render_trajectory(task, record: dict) -> list[str]:
    """Lines showing the target part of the canvas after every step at which something changed
    (:func:`trajectory_frames`). ``_`` is a mask; tokens appear at their insertion step and are revealed
    at their unmasking step. Tokens given in the canvas from the start show at step -1 as given."""
    lines = []
    for step, shown, events in trajectory_frames(task, record):
        text = " ".join("_" if state in ("mask", "new") else tok for tok, state in shown)
        words = [f"{events['given']} given" if events["given"] else "", f"+{events['masks']} mask" if events["masks"]
                 else "", f"{events['revealed']} unmasked" if events["revealed"] else ""]
        lines.append(f"  step {step:>3}: [BOS] {text} [EOS]   ({', '.join(w for w in words if w)})")
    return lines


def _model_dir(out: Path, model: str, primary: str) -> Path:
    return out if model == primary else out / "compare" / model


def _prepare(out: Path, model: str, primary: str, train: bool, seed: int, train_seconds: float) -> str | None:
    """Train or copy one model into its run directory; returns a line describing its budget (None: skip)."""
    run_dir = _model_dir(out, model, primary)
    if train:
        from insertgen.training_run import prepare_run, run_training

        if (run_dir / CONFIG).exists():
            raise InsertgenError(f"{run_dir} already holds a run; choose another --out for demo --train")
        click.echo(f"\ntraining a fresh {model} on {DEMO_TASK} ({train_seconds:.0f}-second budget) into {run_dir}")
        _, trainer = prepare_run(task=DEMO_TASK, model=model, preset=None, steps=None, out=run_dir, seed=seed,
                                 overrides={"eval_every": 0}, resume=False, time_budget=train_seconds)
        run_training(trainer, progress=True)
        return f"{trainer.step} steps in {train_seconds:.0f} s here"
    source = pretrained_dir(model)
    if not (source / CHECKPOINT).is_file():
        if model == primary:
            raise InsertgenError(f"the shipped model is missing from {source}; reinstall insertgen or use --train")
        click.echo(f"(no shipped {model} model in this installation; skipped)")
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, CHECKPOINT, "metrics.jsonl"):
        if (source / name).is_file():
            shutil.copyfile(source / name, run_dir / name)
    config = json.loads((source / CONFIG).read_text())
    return f"shipped, {config['train']['steps']} training steps ({config.get('budget_note', 'see docs/results.md')})"


def run_demo(out: Path, train: bool = False, n_graphs: int = 1000, seed: int = 0, train_seconds: float = 300.0,
             models: tuple[str, ...] = DEMO_MODELS) -> dict:
    from insertgen import load_run
    from insertgen.evaluate import evaluate_model
    from insertgen.flex.sampler import SamplerOptions
    from insertgen.io import write_jsonl

    out = Path(out)
    primary = models[0]
    budgets = {m: _prepare(out, m, primary, train, seed, train_seconds) for m in models}
    models = tuple(m for m in models if budgets[m] is not None)
    options = SamplerOptions(steps=DEMO_SAMPLER_STEPS, top_k=1)
    results: dict[str, dict] = {}
    examples = None
    for model_id in models:
        run_dir = _model_dir(out, model_id, primary)
        model = load_run(run_dir)
        task = model.task
        examples = examples or task.fresh_examples(n_graphs, seed=FRESH_SEED_OFFSET + seed)
        start = time.time()
        with torch.inference_mode():
            metrics, pairs = evaluate_model(model, task, examples, options, seed=seed, progress=True)
        metrics["seconds"] = time.time() - start
        results[model_id] = {"metrics": metrics, "pairs": pairs, "budget": budgets[model_id]}
        write_jsonl(run_dir / "demo_samples.jsonl", [
            {"prompt": task.format(e.prompt), "output": task.format(o), "target": task.format(e.target),
             "insert_step": r["insert_step"], "unmask_step": r["unmask_step"]}
            for e, (o, r) in zip(examples, pairs)
        ])
        (run_dir / "demo.json").write_text(json.dumps(
            {"n": n_graphs, "model": model_id, **metrics, "sampler_steps": options.steps,
             "budget": budgets[model_id]}, indent=2) + "\n")

    click.echo(f"\n{n_graphs} fresh {DEMO_TASK} graphs, {options.steps}-step tau-leaping sampler, greedy tokens:")
    click.echo(f"  {'model':<10} {'exact match':>11} {'plan validity':>13} {'token accuracy':>14} "
               f"{'order corr.':>11} {'evals/graph':>11}   trained")
    for model_id, res in results.items():
        m = res["metrics"]
        click.echo(f"  {model_id:<10} {m['exact_match']:>11.1%} {m['plan_validity']:>13.1%} {m['token_accuracy']:>14.1%} "
                   f"{m.get('order_corr_unmask', float('nan')):>11.2f} {m['model_evals_per_seq']:>11.1f}   {res['budget']}")
    click.echo("  (order corr.: Spearman correlation between the step a token is revealed and its distance from the "
               "junction; negative = the path is built from its far end)")
    ex = examples[0]
    for model_id, res in results.items():
        output, record = res["pairs"][0]
        click.echo(f"\n{model_id}: one generation trajectory (step at which each mask was inserted / each token "
                   "revealed):")
        click.echo(f"  prompt: {task.format(ex.prompt)}")
        for line in render_trajectory(task, record):
            click.echo(line)
        click.echo(f"  output: {task.format(output)}   target: {task.format(ex.target)}   "
                   f"{'correct' if list(output) == list(ex.target) else 'wrong'}")
    primary = results[models[0]]["metrics"]
    summary = {"n": n_graphs, **primary, "sampler_steps": options.steps,
               "models": {m: {**r["metrics"], "budget": r["budget"]} for m, r in results.items()}}
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(f"\nrun directory {out} ({models[0]})" +
               "".join(f", {_model_dir(out, m, primary)} ({m})" for m in models[1:]) +
               f": try `insertgen eval --run {out} --limit 200` or `insertgen analysis --run {out}`")
    return summary
