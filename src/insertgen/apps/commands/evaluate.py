"""`insertgen eval`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.apps.commands.common import RUN_DIR, SPLIT, THREADS
from insertgen.apps.sampler_flags import sampler_flags
from insertgen.core.io import to_json
from insertgen.core.run_lock import RunLock
from insertgen.core.threads import use_threads
from insertgen.engine.evaluate import LIKELIHOOD_EXAMPLES, LIKELIHOOD_SAMPLES
from insertgen.engine.trained_run import TrainedRun


@click.command(name="eval")
@RUN_DIR
@SPLIT
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Evaluate the first N examples only (unconditional tasks: N samples; molecules default to 1,000).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the metrics.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--likelihood-samples", type=click.IntRange(min=0), default=LIKELIHOOD_SAMPLES, show_default=True,
              help="Monte-Carlo samples per text of the held-out bound (nats per sequence and per token) on the "
                   f"first {LIKELIHOOD_EXAMPLES} examples; 0 skips it.")
@sampler_flags
@THREADS
def evaluate(run_dir, split, limit, as_json, seed, likelihood_samples, sampler, threads):
    """Sample for the split's prompts and print the task metrics (also saved to RUN_DIR/eval-SPLIT.json;
    mazes also draw the first plans to RUN_DIR/eval-SPLIT.png). Format: docs/formats.md#evaluation.

    A sampler flag not given takes the run's sampler_defaults (a shipped model's measured settings), else
    the run's evaluation settings, else the sampler's own."""

    use_threads(threads)
    with RunLock(run_dir):  # eval / analysis write their results into the run (core/run_lock.py)
        run = TrainedRun.open(run_dir)
        metrics, examples, pairs = run.evaluate_with_outputs(split, limit, seed, likelihood_samples,
                                                             progress=not as_json, **sampler)
        try:
            (Path(run_dir) / f"eval-{split}.json").write_text(to_json(metrics, indent=2) + "\n")
            figure = run.task.save_figure(examples, [o for o, _ in pairs], Path(run_dir) / f"eval-{split}.png")
        except OSError as e:  # a read-only run (a shared install): the metrics are printed all the same
            click.echo(f"note: eval-{split}.json not written into {run_dir} ({e.strerror})", err=True)
            figure = None
        if as_json:
            click.echo(to_json(metrics))
        else:
            for key, value in metrics.items():
                if key != "sampler":
                    click.echo(f"{key:>22}: {value:.4f}" if isinstance(value, float) else f"{key:>22}: {value}")
            if figure is not None:
                click.echo(f"wrote {figure}")


command = evaluate
