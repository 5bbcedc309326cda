"""``insertgen demo``: the main job on the embedded default.

Loads every model that ships inside the package for a task (``star-easy`` by default: FlexMDM,
LoFlexMDM, IP, AO-IP, ARM, MDM, those that are shipped), or with ``--train`` trains each of them afresh on
this CPU under the same wall-clock budget, and evaluates them side by side:

* star graphs: on the same freshly generated graphs (seeds far from the splits'), greedy tokens: exact
  match, plan validity, token accuracy, the generation-order correlation, model evaluations per graph and
  each model's training budget; ``demo_order.png`` (generation step against the distance from the junction,
  one panel per model);
* molecules (``smiles``, ``safe``; the fragment tasks on their benchmark prompts, spread evenly, each with
  the models shipped for it or else those trained on the four tasks' mixture, ``fragment-all``): tokens
  drawn with each model's shipped sampler settings: validity, uniqueness, novelty, quality, FCD (with the
  number of molecules it was computed on), the mean normalised generation step of ring, branch, bond and
  atom tokens, model evaluations per molecule and the training budget; ``demo_molecules_MODEL.png`` (a
  grid of sampled molecules drawn by RDKit, beside the length histograms) and ``demo_order.png`` (the
  generation step per token class, one bar group per model);
* mazes (``maze-{perfect,imperfect,braided}-{easy,medium}``): on the same fresh subgoal lists (in none of the
  task's splits), greedy tokens:
  success, optimal, exact match, token accuracy, the order correlation (step against the distance along the
  plan to the nearest subgoal), evaluations per plan and the training budget; ``demo_plans.png`` (every
  model's plan for the first problem on the maze) and ``demo_trajectory_MODEL.png`` (an insertion model's
  plan growing);

then one generation trajectory per insertion model (molecules: the string growing, ``_`` a mask).
``--out RUN_DIR`` is the first model's run (usable by ``sample``, ``eval`` and ``score``); the other
models' runs are ``RUN_DIR/compare/MODEL``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from importlib import resources
from pathlib import Path

import click
import torch

from insertgen.core.checkpoint import CHECKPOINT
from insertgen.core.errors import InsertgenError
from insertgen.core.run_lock import RunLock
from insertgen.core.io import to_json, write_jsonl
from insertgen.core.rundir import CONFIG, write_config
from insertgen.engine.analysis import (
    class_order_statistics,
    order_statistics,
    plot_class_order_models,
    plot_order_panels,
)
from insertgen.engine.evaluate import evaluate_model, spread
from insertgen.engine.run import load_run
from insertgen.engine.sampler_settings import resolve_sampler_options, sampler_name
from insertgen.engine.training_run import prepare_run, run_training
from insertgen.models.registry import get_family, model_ids
from insertgen.tasks.maze.plots import plot_maze_plans, plot_plan_growth
from insertgen.tasks.maze.task import MazeTask
from insertgen.tasks.molecules.task import MoleculeTask

STAR_TASKS = ("star-easy", "star-medium")
FRAGMENT_DEMO_TASKS = ("fragment-linker", "fragment-motif", "fragment-scaffold", "fragment-superstructure")
FRAGMENT_MIXTURE = "fragment-all"  # a model trained on the four tasks' mixture serves each task it has no own model for
MOLECULE_TASKS = ("smiles", "safe", *FRAGMENT_DEMO_TASKS)
MAZE_TASKS = tuple(f"maze-{family}-{tier}" for tier in ("easy", "medium") for family in ("perfect", "imperfect", "braided"))
DEMO_TASKS = STAR_TASKS + MOLECULE_TASKS + MAZE_TASKS  # the tasks the demo shows (shipped models, or --train)
MOLECULE_DEMO_N = 500  # molecules sampled per model by default (FCD and RDKit scoring included, within a minute)
# fewer where the shipped models' samplers take hundreds of steps (FlexMDM: 256), to stay within a minute
MOLECULE_DEMO_N_BY_TASK = {"smiles": 120}
MAZE_DEMO_N = 200  # fresh maze problems per model by default (six models, 128-step samplers: within a minute)
GROWTH_FRAMES = 8  # frames of a maze plan growing (demo_trajectory_MODEL.png)
DEMO_TASK = "star-easy"
TRAIN_MODELS = ("flexmdm", "loflexmdm")  # --train without --models, when nothing ships for the task
FRESH_SEED_OFFSET = 10_000  # fresh graphs use seeds far from the splits' seed (42)


def pretrained_dir(model: str = "flexmdm", task: str = DEMO_TASK) -> Path:
    """The package directory of the ``model`` shipped for ``task``; for a fragment task without its own, the
    model trained on the mixture of the four (``fragment-all-MODEL``) where that ships."""
    own = Path(str(resources.files("insertgen") / "pretrained" / f"{task}-{model}"))
    if task in FRAGMENT_DEMO_TASKS and not (own / CHECKPOINT).is_file():
        mixture = own.with_name(f"{FRAGMENT_MIXTURE}-{model}")
        if (mixture / CHECKPOINT).is_file():
            return mixture
    return own


def shipped_models(task: str = DEMO_TASK) -> tuple[str, ...]:
    """The models shipped for ``task``, in the library's model order."""
    return tuple(m for m in model_ids() if (pretrained_dir(m, task) / CHECKPOINT).is_file())


def demo_sampler(model_id: str, config: dict, greedy: bool = True, flags: dict | None = None):
    """``(name, options)``: the sampler settings of the run whose config.json is ``config``, resolved as
    ``sample`` / ``eval`` resolve them (engine.sampler_settings: a shipped model's ``sampler_defaults`` hold
    the settings its documented figures were measured with; ``flags``, the demo's sampler flags, change them
    for every model that takes them), with greedy tokens by default where ``greedy`` (conditional tasks;
    molecules draw tokens from the model); ``name`` is the family sampler they set."""
    options = resolve_sampler_options(config, default_greedy=greedy, **(flags or {}))
    return sampler_name(model_id, options), options


def describe_sampler(options) -> str:
    """The demo's settings of a sampler that takes steps, in words: its step count and every option that
    differs from the family's sampler defaults (e.g. ``64 steps, grid unmask, insertion_draw sequence``);
    for samplers without steps (one token per model evaluation) only what differs (e.g. ``temperature
    0.4``), empty when nothing does."""
    steps = getattr(options, "steps", None)
    default = type(options)()
    changed = [f"{f.name} {getattr(options, f.name)}" for f in dataclasses.fields(options)
               if f.name not in ("steps", "top_k", "order") and getattr(options, f.name) != getattr(default, f.name)]
    if steps is None:  # one token per model evaluation (IP, AO-IP, ARM): only what differs
        return ", ".join(changed)
    return ", ".join([f"{steps} steps", *changed])


def trajectory_frames(task, record: dict) -> list[tuple[int, list[tuple[str, str]], dict]]:
    """The target part of the canvas after every step at which something changed, as ``(step, tokens,
    events)``: each token with its state at that step, ``"mask"`` (inserted earlier, still masked),
    ``"new"`` (a mask inserted at this step), ``"revealed"`` (unmasked at this step), ``"shown"``
    (unmasked earlier) or ``"given"`` (in the canvas from the start: a prompt inside the target, step -1);
    ``events`` counts the given tokens, the tokens ``inserted`` already revealed at that step (IP, AO-IP,
    ARM: one per step), the masks inserted and the tokens unmasked at that step."""
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
        inserted = sum(1 for i, u in zip(ins, um) if i == u == step >= 0)
        events = {"given": given, "inserted": inserted, "masks": sum(1 for i in ins if i == step) - given - inserted,
                  "revealed": sum(1 for u in um if u == step) - given - inserted}
        frames.append((step, shown, events))
    return frames


def describe_events(events: dict) -> str:
    """One frame's events in words, e.g. ``+2 mask, 1 unmasked`` or ``+1 inserted``."""
    words = [f"{events['given']} given" if events["given"] else "",
             f"+{events['masks']} mask" if events["masks"] else "",
             f"+{events['inserted']} inserted" if events["inserted"] else "",
             f"{events['revealed']} unmasked" if events["revealed"] else ""]
    return ", ".join(w for w in words if w)


def render_trajectory(task, record: dict, joiner: str = " ") -> list[str]:
    """Lines showing the target part of the canvas after every step at which something changed
    (:func:`trajectory_frames`). ``_`` is a mask; tokens appear at their insertion step and are revealed
    at their unmasking step (at once for the models that insert tokens, not masks). Tokens given in the
    canvas from the start show at step -1 as given. ``joiner`` "" writes molecules as strings."""
    lines = []
    for step, shown, events in trajectory_frames(task, record):
        text = joiner.join("_" if state in ("mask", "new") else tok for tok, state in shown)
        lines.append(f"  step {step:>3}: [BOS] {text} [EOS]   ({describe_events(events)})")
    return lines


def command_name() -> str:
    """How to call the ``insertgen`` command from the user's shell: ``insertgen`` when it is on PATH (an
    activated virtual environment), else the script next to this Python (e.g. ``.venv/bin/insertgen`` after
    ``python3 scripts/dev.py demo``)."""
    script = Path(sys.executable).parent / "insertgen"
    on_path = shutil.which("insertgen")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "insertgen"
    if script.is_file():
        try:
            return str(script.relative_to(Path.cwd()))
        except ValueError:
            return str(script)
    return "insertgen"


def _model_dir(out: Path, model: str, primary: str) -> Path:
    return out if model == primary else out / "compare" / model


def _prepare(out: Path, task: str, model: str, primary: str, train: bool, seed: int,
             train_seconds: float) -> str:
    """Train or copy one model into its run directory; returns a line describing its training budget."""
    run_dir = _model_dir(out, model, primary)
    if train:

        if (run_dir / CONFIG).exists():
            raise InsertgenError(f"{run_dir} already holds a run; choose another --out for demo --train")
        click.echo(f"\ntraining a fresh {model} on {task} ({train_seconds:.0f}-second budget) into {run_dir}")
        _, trainer = prepare_run(task=task, model=model, preset=None, steps=None, out=run_dir, seed=seed,
                                 overrides={"eval_every": 0}, resume=False, time_budget=train_seconds)
        run_training(trainer, progress=True)
        return f"{trainer.step} steps in {train_seconds:.0f} s here"
    source = pretrained_dir(model, task)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, CHECKPOINT, "metrics.jsonl"):
        if (source / name).is_file():
            shutil.copyfile(source / name, run_dir / name)
    config = json.loads((source / CONFIG).read_text())
    if config["task"] != task:  # a fragment-all model evaluated on one of its four tasks (same vocabulary)
        config = {**config, "task": task, "trained_on": config["task"]}
        write_config(run_dir, config)
    note = config.get("budget_note")  # written by scripts/ship_pretrained.py; it starts with the steps
    return f"shipped: {note}" if note else f"shipped, {config['train']['steps']:,} steps (see docs/results.md)"


def default_demo_n(task: str) -> int:
    """Examples per model when ``-n`` is not given: 1,000 star graphs, :data:`MAZE_DEMO_N` maze problems,
    :data:`MOLECULE_DEMO_N` molecules (:data:`MOLECULE_DEMO_N_BY_TASK` where the demo would take over a minute)."""
    if task in MOLECULE_TASKS:
        return MOLECULE_DEMO_N_BY_TASK.get(task, MOLECULE_DEMO_N)
    return MAZE_DEMO_N if task in MAZE_TASKS else 1000


def _choose_models(task: str, train: bool, models: tuple[str, ...] | None) -> tuple[str, ...]:
    if task not in DEMO_TASKS:
        raise InsertgenError(f"--task {task!r}: the demo runs on {', '.join(DEMO_TASKS)}")
    shipped = shipped_models(task)
    if models is None:
        models = shipped or (TRAIN_MODELS if train else ())
    if not models:
        raise InsertgenError(f"no model is shipped for {task} in this installation; train some with "
                             f"`insertgen demo --task {task} --train` (or reinstall insertgen)")
    missing = [m for m in models if m not in shipped]
    if missing and not train:
        raise InsertgenError(f"no shipped {', '.join(missing)} model for {task} (shipped: "
                             f"{', '.join(shipped) or 'none'}); use --train to train it here")
    return models


def order_panels_figure(results: dict, task, examples, path: Path) -> Path | None:
    """``demo_order.png``: star graphs: per model, the normalised generation step of each output token
    against its distance from the junction (analysis.plot_order_panels); molecules: per model, the mean
    normalised step of each token class (analysis.plot_class_order_models)."""

    stats, classes = {}, {}
    for model_id, res in results.items():
        outputs, records = [o for o, _ in res["pairs"]], [r for _, r in res["pairs"]]
        s = order_statistics(task, examples, outputs, records)
        if s is not None:
            stats[model_id] = s
        c = class_order_statistics(task, outputs, records)
        if c is not None:
            classes[model_id] = c
    if stats:
        what = "problems" if isinstance(task, MazeTask) else "graphs"
        return plot_order_panels(stats, path, title=f"generation order on {len(examples):,} fresh {task.name} {what}")
    if classes:
        return plot_class_order_models(classes, path, title=f"generation order by token class, {task.name}")
    return None


def demo_examples(task_obj, n: int, seed: int) -> list:
    """What the models are evaluated on: fresh star graphs / molecules (seeds far from the splits'); for a
    fragment task, ``n`` samples spread evenly over its benchmark prompts (each prompt's samples together)."""
    if isinstance(task_obj, MoleculeTask) and task_obj.conditional:
        return spread(task_obj.examples("test"), n)
    return task_obj.fresh_examples(n, seed=FRESH_SEED_OFFSET + seed)


def _pct(value) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1%}"


def _print_model_table(title: str, columns: list[tuple[str, int, str, str]], results: dict, note: str) -> None:
    """One row per model: its name, sampler, the ``columns`` (header, width, metric key, format spec; a missing
    metric is NaN) and its training budget; ``note`` explains the columns."""
    click.echo(title)
    click.echo(f"  {'model':<10} {'sampler':<14} " + " ".join(f"{head:>{width}}" for head, width, _, _ in columns)
               + "   trained")
    for model_id, res in results.items():
        m = res["metrics"]
        cells = " ".join(f"{m.get(key, float('nan')):>{width}{spec}}" for _, width, key, spec in columns)
        click.echo(f"  {model_id:<10} {res['sampler']:<14} {cells}   {res['budget']}")
    click.echo(note)


def print_star_table(results: dict, n: int, task: str) -> None:
    _print_model_table(
        f"\n{n:,} fresh {task} graphs, greedy tokens:",
        [("exact match", 11, "exact_match", ".1%"), ("plan validity", 13, "plan_validity", ".1%"),
         ("token accuracy", 14, "token_accuracy", ".1%"), ("order corr.", 11, "order_corr_unmask", ".2f"),
         ("evals/graph", 11, "model_evals_per_seq", ".1f")], results,
        "  (order corr.: Spearman correlation between the step a token is revealed and its distance from the "
        "junction; negative = the path is built from its far end)")


ORDER_CLASSES = ("ring", "branch", "bond", "atom")


def print_molecule_table(results: dict, n: int, task_obj) -> None:
    what = (f"{n:,} samples on the {task_obj.name} benchmark prompts" if task_obj.conditional
            else f"{n:,} sampled {task_obj.name} molecules per model")
    click.echo(f"\n{what}, tokens drawn with each model's sampler settings:")
    click.echo(f"  {'model':<10} {'sampler':<12} {'valid':>6} {'unique':>6} {'novel':>6} {'quality':>7} "
               f"{'FCD (n)':>13}  {'order: ring branch bond atom':>28} {'evals':>6}   trained")
    for model_id, res in results.items():
        m = res["metrics"]
        fcd = "-" if m.get("fcd") is None or math.isnan(m["fcd"]) else f"{m['fcd']:.2f} ({m.get('fcd_n', 0)})"
        order = " ".join(f"{m[f'order_step_{c}']:.2f}" if f"order_step_{c}" in m else "  - " for c in ORDER_CLASSES)
        click.echo(f"  {model_id:<10} {res['sampler']:<12} {_pct(m.get('validity')):>6} {_pct(m.get('uniqueness')):>6} "
                   f"{_pct(m.get('novelty')):>6} {_pct(m.get('quality_all')):>7} {fcd:>13}  {order:>28} "
                   f"{m['model_evals_per_seq']:>6.1f}   {res['budget']}")
    click.echo("  (valid: RDKit parses the molecule" + (", one component holding the prompt's fragments"
                                                         if task_obj.conditional else "")
               + "; order: mean normalised step at which tokens of that class are decided, 0 = first, 1 = last; "
               "FCD: Frechet ChemNet distance to the MOSES test set on the n valid molecules)")


def print_maze_table(results: dict, n: int, task: str) -> None:
    _print_model_table(
        f"\n{n:,} fresh {task} problems (subgoal lists), greedy tokens:",
        [("success", 8, "success", ".1%"), ("optimal", 8, "optimal", ".1%"), ("exact", 6, "exact_match", ".1%"),
         ("token acc.", 10, "token_accuracy", ".1%"), ("order corr.", 11, "order_corr_unmask", ".2f"),
         ("evals/plan", 10, "model_evals_per_seq", ".1f")], results,
        "  (success: a valid plan through the subgoals in order; optimal: valid and shortest; order corr.: "
        "Spearman correlation between the step a cell is decided and its distance along the plan to the "
        "nearest subgoal, positive = segments filled from their ends)")


def maze_figures(results: dict, task_obj, examples, out: Path) -> list[Path]:
    """``demo_plans.png``: every model's plan for the first problem, side by side on its maze; and for each
    insertion model ``demo_trajectory_MODEL.png``: that plan growing (:data:`GROWTH_FRAMES` frames spread
    over its steps, the last included)."""
    ex = examples[0]
    subgoals = task_obj._cells_of(ex.prompt)
    panels = [{"label": model_id, "subgoals": subgoals, "plan": task_obj._cells_of(res["pairs"][0][0]),
               "reference": task_obj._cells_of(ex.target), "problem": task_obj.plan_problem(ex, res["pairs"][0][0])}
              for model_id, res in results.items()]
    paths = [plot_maze_plans(task_obj.maze, panels, out / "demo_plans.png", title=f"{task_obj.name}, one fresh problem")]
    for model_id, res in results.items():
        if not get_family(model_id).can("trajectory"):
            continue
        frames = trajectory_frames(task_obj, res["pairs"][0][1])
        keep = sorted({round(i * (len(frames) - 1) / max(1, GROWTH_FRAMES - 1)) for i in range(GROWTH_FRAMES)})
        growth = [(step, [None if state in ("mask", "new") else int(tok) for tok, state in shown])
                  for step, shown, _ in (frames[i] for i in keep)]
        paths.append(plot_plan_growth(task_obj.maze, subgoals, growth, out / f"demo_trajectory_{model_id}.png",
                                      title=f"{model_id}: the plan growing (cells decided by each step; masks not drawn)"))
    return paths


def run_demo(out: Path, task: str = DEMO_TASK, train: bool = False, n_graphs: int | None = None, seed: int = 0,
             train_seconds: float = 300.0, models: tuple[str, ...] | None = None,
             sampler: dict | None = None) -> dict:
    """The demo (module docstring); ``models`` None: every model shipped for ``task``; ``n_graphs`` None: 1,000
    star graphs, :data:`MAZE_DEMO_N` maze problems or :func:`default_demo_n` molecules; ``sampler``: sampler
    choices (the command line's flags, None = not given) that change every model's shipped settings."""

    out = Path(out)
    models = _choose_models(task, train, models)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):  # one writer per demo directory (core/run_lock.py)
        return _run_demo(out, task, train, n_graphs, seed, train_seconds, models, sampler)


def _run_demo(out: Path, task: str, train: bool, n_graphs: int | None, seed: int, train_seconds: float,
              models: tuple[str, ...], sampler: dict | None) -> dict:
    n_graphs = n_graphs or default_demo_n(task)
    primary = models[0]
    budgets = {m: _prepare(out, task, m, primary, train, seed, train_seconds) for m in models}
    results: dict[str, dict] = {}
    examples = task_obj = None
    for model_id in models:
        run_dir = _model_dir(out, model_id, primary)
        model = load_run(run_dir)
        task_obj = model.task
        if isinstance(task_obj, MoleculeTask):
            task_obj.kl_reference_size = 0  # the table shows no KL score: skip its 30-second first-use build
        examples = examples or demo_examples(task_obj, n_graphs, seed)
        sampler_name, options = demo_sampler(model_id, json.loads((run_dir / CONFIG).read_text()),
                                             greedy=task_obj.greedy_by_default, flags=sampler)
        start = time.time()
        with torch.inference_mode():
            metrics, pairs = evaluate_model(model, task_obj, examples, options, seed=seed, progress=True)
        metrics["seconds"] = time.time() - start
        results[model_id] = {"metrics": metrics, "pairs": pairs, "budget": budgets[model_id], "sampler": sampler_name,
                             "settings": describe_sampler(options)}
        write_jsonl(run_dir / "demo_samples.jsonl", [
            {"prompt": task_obj.format(e.prompt), "output": task_obj.format(o), "target": task_obj.format(e.target),
             "insert_step": r["insert_step"], "unmask_step": r["unmask_step"]}
            for e, (o, r) in zip(examples, pairs)
        ])
        (run_dir / "demo.json").write_text(to_json(
            {"n": n_graphs, "model": model_id, **metrics, "sampler": sampler_name, "sampler_options": options.__dict__,
             "budget": budgets[model_id]}, indent=2) + "\n")

    molecules, mazes = isinstance(task_obj, MoleculeTask), isinstance(task_obj, MazeTask)
    if molecules:
        print_molecule_table(results, n_graphs, task_obj)
    elif mazes:
        print_maze_table(results, n_graphs, task)
    else:
        print_star_table(results, n_graphs, task)
    for model_id, res in results.items():
        if res["settings"]:
            click.echo(f"  {model_id}: {res['sampler']} sampler, {res['settings']}")
    figures = []
    if molecules:
        for model_id, res in results.items():
            path = out / f"demo_molecules_{model_id}.png"
            task_obj.save_figure(examples, [o for o, _ in res["pairs"]], path)
            figures.append(path)
    if mazes:
        figures += maze_figures(results, task_obj, examples, out)
    for model_id, res in results.items():
        if not get_family(model_id).can("trajectory"):  # the insertion models show one trajectory
            continue
        index = _trajectory_index(task_obj, res["pairs"]) if molecules else 0
        ex, (output, record) = examples[index], res["pairs"][index]
        click.echo(f"\n{model_id}: one generation trajectory (step at which each mask was inserted / each token "
                   "revealed):")
        if ex.prompt or not molecules:
            click.echo(f"  prompt: {task_obj.format(ex.prompt)}")
        for line in render_trajectory(task_obj, record, joiner="" if molecules else " "):
            click.echo(line)
        if molecules:
            smiles = task_obj.to_smiles(output)
            click.echo(f"  output: {task_obj.format(output)}   " + (f"valid: {smiles}" if smiles else "not a molecule"))
        else:
            click.echo(f"  output: {task_obj.format(output)}   target: {task_obj.format(ex.target)}   "
                       f"{'correct' if list(output) == list(ex.target) else 'wrong'}")
    figure = order_panels_figure(results, task_obj, examples, out / "demo_order.png")
    first = results[models[0]]["metrics"]
    summary = {"n": n_graphs, "task": task, **first,
               "models": {m: {**r["metrics"], "sampler": r["sampler"], "sampler_settings": r["settings"],
                              "budget": r["budget"]}
                          for m, r in results.items()}}
    (out / "demo.json").write_text(to_json(summary, indent=2) + "\n")
    command = command_name()
    click.echo(f"\nrun directory {out} ({models[0]})" +
               "".join(f", {_model_dir(out, m, primary)} ({m})" for m in models[1:]) +
               (f"; order figure {figure}" if figure else "") +
               (f"; {'maze plans' if mazes else 'molecule grids'} {', '.join(str(f) for f in figures)}"
                if figures else "") +
               f": try `{command} eval --run {out} --limit 200` or `{command} analysis --run {out}`")
    return summary


def _trajectory_index(task_obj, pairs) -> int:
    """The first sample that decodes to a molecule (else the first): the trajectory worth reading."""
    return next((i for i, (o, _) in enumerate(pairs) if task_obj.to_smiles(o)), 0)
