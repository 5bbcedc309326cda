"""`insertgen demo`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.apps.commands.common import THREADS
from insertgen.apps.demo import DEMO_TASKS, MAZE_DEMO_N, MOLECULE_DEMO_N, MOLECULE_DEMO_N_BY_TASK, run_demo
from insertgen.apps.sampler_flags import sampler_flags
from insertgen.core.errors import InsertgenError
from insertgen.core.threads import use_threads
from insertgen.models.registry import model_ids


@click.command(name="demo")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("insertgen-demo"),
              show_default=True, help="Run directory to write (usable by sample / eval / score).")
@click.option("--train", "do_train", is_flag=True,
              help="Train fresh models on this CPU (same budget each) instead of loading the shipped ones.")
@click.option("-n", "n_graphs", type=click.IntRange(min=1), default=None,
              help=f"Fresh test graphs (default 1,000), maze problems ({MAZE_DEMO_N:,}), or molecules sampled per "
                   f"model ({MOLECULE_DEMO_N:,}; " + ", ".join(f"{t} {n:,}" for t, n in MOLECULE_DEMO_N_BY_TASK.items())
                   + ": its FlexMDM and LoFlexMDM take 256 steps a molecule).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--train-seconds", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Training budget of --train, per model.")
@click.option("--models", default=None,
              help="Comma-separated models to compare (default: every model shipped for the task); the first "
                   "one's run is --out.")
@click.option("--task", default="star-easy", show_default=True, type=click.Choice(list(DEMO_TASKS)),
              help="Task whose shipped models to compare (star levels, de novo molecules, fragment linking, mazes).")
@sampler_flags
@THREADS
def demo(out: Path, do_train: bool, n_graphs: int, seed: int, train_seconds: float, models: str | None, task: str,
         sampler: dict, threads):
    """Compare every shipped model of a task (FlexMDM, LoFlexMDM, IP, AO-IP, ARM, MDM, those shipped) side
    by side on fresh graphs or sampled molecules, or train them afresh with --train.

    Writes --out (default ./insertgen-demo): the first model's run directory, the others' in
    --out/compare/MODEL, each with demo.json and demo_samples.jsonl, and --out/demo_order.png. Formats:
    docs/formats.md#demo-directory. Each model samples with its shipped settings; a sampler flag changes
    them for every model whose sampler takes it (e.g. --steps 64 for the step-taking samplers)."""

    use_threads(threads)
    chosen = None
    if models is not None:
        chosen = tuple(m.strip() for m in models.split(",") if m.strip())
        unknown = [m for m in chosen if m not in model_ids()]
        if not chosen or unknown or len(set(chosen)) != len(chosen):
            raise InsertgenError(f"--models: unknown or repeated model(s) {', '.join(unknown) or models!r}; "
                                 f"known models: {', '.join(model_ids())}")
    run_demo(out, task=task, train=do_train, n_graphs=n_graphs, seed=seed, train_seconds=train_seconds, models=chosen,
             sampler=sampler)


command = demo
