"""`insertgen train`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.apps.commands.common import THREADS, parse_set
from insertgen.core.distributed import barrier, init_world, shutdown
from insertgen.core.errors import InsertgenError
from insertgen.core.threads import use_threads
from insertgen.engine.training_run import prepare_run, run_training


@click.command(name="train")
@click.option("--task", default=None, help="Task id, e.g. star-easy (with --data: sequences).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Train on your own JSONL file: lines {\"text\": ...} or {\"prompt\": ..., \"target\": ...} "
                   "(the sequences task; docs/formats.md#your-own-sequences).")
@click.option("--valid", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --data: the validation file (default: drawn from --data).")
@click.option("--test", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --data: the test file (default: drawn from --data).")
@click.option("--model", default=None, help="Model id, e.g. flexmdm.")
@click.option("--preset", default=None, help="Named configuration (default: TASK-cpu when it exists).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Total training steps.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Run directory.")
@click.option("--seed", type=int, default=None, help="Random seed (default 0).")
@click.option("--set", "sets", multiple=True, help="Override an option: KEY=VALUE (a training option when KEY names one, else a model option), "
                   "model.KEY=VALUE, train.KEY=VALUE or task.KEY=VALUE.")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")
@click.option("--from-previous", is_flag=True,
              help="With --resume: continue from the checkpoint before the last (when the last is corrupt).")
@click.option("--time-budget", type=click.FloatRange(min=1), default=None, help="Stop after this many seconds.")
@click.option("--device", default=None, help="torch device (default: cuda:LOCAL_RANK when CUDA is available, else cpu).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@THREADS
def train(task, data, valid, test, model, preset, steps, out, seed, sets, resume, from_previous, time_budget, device,
          quiet, threads):
    """Train a model; writes config.json, checkpoint.safetensors and metrics.jsonl into --out (default
    runs/TASK-MODEL-TIME; the run directory's files: docs/formats.md#run-directory).

    Under torchrun (e.g. `torchrun --standalone --nproc_per_node=4 -m insertgen.apps.cli train ...`) every
    process trains its share of each global batch (data parallel); rank 0 writes the run directory."""

    overrides = parse_set(sets)
    if data is not None or valid is not None or test is not None:
        if data is None:
            raise InsertgenError("--valid and --test go with --data FILE (the training file)")
        if task not in (None, "sequences"):
            raise InsertgenError(f"--data trains the sequences task on your file, not {task!r}; drop --task")
        task = "sequences"
        for key, path in (("train", data), ("valid", valid), ("test", test)):
            if path is not None:
                overrides[f"task.{key}"] = str(path)
    use_threads(threads)
    world, device = init_world(device)
    try:
        run_dir, trainer = prepare_run(task=task, model=model, preset=preset, steps=steps, out=out, seed=seed,
                                       overrides=overrides, resume=resume, time_budget=time_budget,
                                       device=device, world=world, from_previous=from_previous)
        if world.is_main:
            click.echo(f"run directory: {run_dir}" + (f" ({world.world_size} processes)" if world.distributed else ""))
        last = run_training(trainer, progress=not quiet)
        if world.is_main:
            click.echo(f"finished at step {trainer.step}: loss {last.get('loss', float('nan')):.4f}")
        barrier(world)  # rank 0 may still be drawing its plots: tearing gloo down under it aborts the peer
    finally:
        shutdown()


command = train
