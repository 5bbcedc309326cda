"""``insertgen demo``: the main job on the embedded default.

Loads the small FlexMDM model for star-easy that ships inside the package (or trains a fresh one with
``--train``), evaluates it on freshly generated test graphs, prints exact match, plan validity and
one generation trajectory, and leaves a run directory that ``sample``, ``eval`` and ``score`` accept.
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

PRETRAINED = "star-easy-flexmdm"
DEMO_TASK = "star-easy"
FRESH_SEED_OFFSET = 10_000  # fresh graphs use seeds far from the splits' seed (42)
DEMO_SAMPLER_STEPS = 64


def pretrained_dir() -> Path:
    return Path(str(resources.files("insertgen") / "pretrained" / PRETRAINED))


def render_trajectory(task, record: dict) -> list[str]:
    """Lines showing the target part of the canvas after every step at which something changed.
    ``_`` is a mask; tokens appear at their insertion step and are revealed at their unmasking step."""
    vocab = task.vocab
    canvas = record["canvas"]
    start = canvas.index(vocab.bos_id) + 1
    end = len(canvas) - 1  # EOS
    ins, um = record["insert_step"][start:end], record["unmask_step"][start:end]
    toks = [vocab.tokens[i] for i in canvas[start:end]]
    lines = []
    for step in sorted(set(ins) | set(um)):
        shown = [(tok if u <= step else "_") for tok, i, u in zip(toks, ins, um) if i <= step]
        events = [f"+{sum(1 for i in ins if i == step)} mask" if step in ins else "",
                  f"{sum(1 for u in um if u == step)} unmasked" if step in um else ""]
        lines.append(f"  step {step:>3}: [BOS] {' '.join(shown)} [EOS]   ({', '.join(e for e in events if e)})")
    return lines


def run_demo(out: Path, train: bool = False, n_graphs: int = 1000, seed: int = 0, train_seconds: float = 600.0) -> dict:
    from insertgen import load_run
    from insertgen.evaluate import evaluate_model
    from insertgen.flex.sampler import SamplerOptions
    from insertgen.io import write_jsonl

    out = Path(out)
    if train:
        from insertgen.training_run import prepare_run, run_training

        if (out / CONFIG).exists():
            raise InsertgenError(f"{out} already holds a run; choose another --out for demo --train")
        click.echo(f"training a fresh FlexMDM on {DEMO_TASK} (preset {DEMO_TASK}-cpu, {train_seconds:.0f}-second "
                   f"budget) into {out}")
        _, trainer = prepare_run(task=DEMO_TASK, model="flexmdm", preset=None, steps=None, out=out, seed=seed,
                                 overrides={"eval_every": 0}, resume=False, time_budget=train_seconds)
        run_training(trainer, progress=True)
    else:
        source = pretrained_dir()
        if not (source / CHECKPOINT).is_file():
            raise InsertgenError(f"the shipped model is missing from {source}; reinstall insertgen or use --train")
        out.mkdir(parents=True, exist_ok=True)
        for name in (CONFIG, CHECKPOINT, "metrics.jsonl"):
            if (source / name).is_file():
                shutil.copyfile(source / name, out / name)
        click.echo(f"loaded the shipped star-easy FlexMDM model; run directory: {out}")

    model = load_run(out)
    task = model.task
    examples = task.fresh_examples(n_graphs, seed=FRESH_SEED_OFFSET + seed)
    options = SamplerOptions(steps=DEMO_SAMPLER_STEPS, top_k=1)
    start = time.time()
    with torch.inference_mode():
        metrics, results = evaluate_model(model, task, examples, options, seed=seed, progress=True)
    seconds = time.time() - start
    click.echo(f"\nFlexMDM on {n_graphs} fresh {DEMO_TASK} graphs ({options.steps}-step tau-leaping, greedy tokens, "
               f"{metrics['model_evals_per_seq']:.1f} model evaluations per graph, {seconds:.1f}s):")
    click.echo(f"  exact match    {metrics['exact_match']:.1%}")
    click.echo(f"  plan validity  {metrics['plan_validity']:.1%}")
    click.echo(f"  token accuracy {metrics['token_accuracy']:.1%}")
    ex, (output, record) = examples[0], results[0]
    click.echo("\nOne generation trajectory (step at which each mask was inserted / each token revealed):")
    click.echo(f"  prompt: {task.format(ex.prompt)}")
    for line in render_trajectory(task, record):
        click.echo(line)
    click.echo(f"  output: {task.format(output)}   target: {task.format(ex.target)}   "
               f"{'correct' if list(output) == list(ex.target) else 'wrong'}")
    write_jsonl(out / "demo_samples.jsonl", [
        {"prompt": task.format(e.prompt), "output": task.format(o), "target": task.format(e.target),
         "insert_step": r["insert_step"], "unmask_step": r["unmask_step"]}
        for e, (o, r) in zip(examples, results)
    ])
    summary = {"n": n_graphs, **{k: v for k, v in metrics.items()}, "sampler_steps": options.steps,
               "seconds": seconds}
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(f"\nrun directory {out}: try `insertgen eval --run {out} --limit 200` or `insertgen sample --run {out} --input PROMPTS.jsonl`")
    return summary
