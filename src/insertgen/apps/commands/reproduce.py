"""`insertgen reproduce`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.apps.commands.common import THREADS, csv_list, parse_set
from insertgen.apps.reproduce import make_grid, run_grid, write_summary
from insertgen.apps.reproduce.grid import SETTINGS, check_settings
from insertgen.core.errors import InsertgenError
from insertgen.core.threads import resolve_threads


@click.command(name="reproduce")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Grid directory (default reproduce-SCALE); rerunning skips the cells already done.")
@click.option("--scale", type=click.Choice(["cpu", "paper"]), default="cpu", show_default=True,
              help="cpu: small presets for a 2-core CPU (a few hours with --jobs 2); paper: the papers' sizes "
                   "and steps, for GPUs.")
@click.option("--tasks", default=None, help="Comma-separated task ids (default: the scale's tasks).")
@click.option("--models", default=None, help="Comma-separated model ids (default: all six).")
@click.option("--seeds", default=None, help="Comma-separated seeds (default: the scale's seeds).")
@click.option("--budget", default=None,
              help="Training budget per cell, the same for every model: wall-clock (240s, 4m, 1h), model FLOPs "
                   "(2e13flop) or 'preset' (the preset's steps). Default: model FLOPs per task at cpu scale "
                   "(reproduce.grid.CPU_FLOPS), the preset's steps at paper scale.")
@click.option("--eval-n", type=click.IntRange(min=1), default=None,
              help="Test examples (samples) per evaluation (default: 500 at cpu scale, the task's at paper).")
@click.option("--sampler-steps", type=click.IntRange(min=1), default=None, help="Sampler steps (default 64).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cells trained at once (each on cores / jobs threads).")
@click.option("--set", "sets", multiple=True, help="Override an option of every cell: KEY=VALUE (as train --set).")
@click.option("--docs", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the tables into this Markdown file (between reproduce markers), e.g. docs/results.md.")
@click.option("--summary-only", is_flag=True, help="Only regenerate the tables and figures from finished cells.")
@THREADS
def reproduce(out, scale, tasks, models, seeds, budget, eval_n, sampler_steps, jobs, sets, docs, summary_only,
              threads):
    """Train and evaluate the model x task grid under equal budgets, several seeds; write results.json,
    results.md (mean and spread over seeds, the papers' claims checked) and figures/ into --out.
    Directory layout: docs/formats.md#reproduce-directory."""

    try:
        seed_list = tuple(int(s) for s in csv_list(seeds, "--seeds")) if seeds else None
    except ValueError:
        raise InsertgenError(f"--seeds {seeds!r}: give comma-separated integers") from None
    grid = make_grid(out or Path(f"reproduce-{scale}"), scale, csv_list(tasks, "--tasks"), csv_list(models, "--models"),
                     seed_list, budget, eval_n, sampler_steps, parse_set(sets))
    if summary_only:

        if not (grid.out / SETTINGS).is_file():
            raise InsertgenError(f"--summary-only: {grid.out} is not a reproduce directory (no {SETTINGS}); "
                                 f"run the grid first")
        check_settings(grid)
        result = write_summary(grid.out, docs)
        click.echo(f"{result['cells']} finished cells summarised in {grid.out / 'results.md'}")
        return

    _, failures = run_grid(grid, jobs=jobs, report=click.echo, docs=docs, threads=resolve_threads(threads))
    click.echo(f"wrote {grid.out / 'results.json'}, {grid.out / 'results.md'} and {grid.out / 'figures'}"
               + (f"; updated {docs}" if docs else ""))
    if failures:
        raise InsertgenError(f"{len(failures)} cell(s) failed: {', '.join(f['key'] for f in failures)} "
                             f"(see runs/TASK/MODEL/seedS.log); rerun to retry them")


command = reproduce
