"""`insertgen analysis`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.apps.commands.common import RUN_DIR, SPLIT, THREADS
from insertgen.apps.sampler_flags import sampler_flags
from insertgen.core.io import to_json
from insertgen.core.run_lock import RunLock
from insertgen.core.threads import use_threads
from insertgen.engine.analysis import plot_class_order, save_order_report
from insertgen.engine.trained_run import TrainedRun


@click.command(name="analysis")
@RUN_DIR
@SPLIT
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Analyse the first N examples.")
@click.option("--seed", type=int, default=0, show_default=True)
@sampler_flags
@THREADS
def analysis(run_dir, split, limit, seed, sampler, threads):
    """Generation order: when each target token / edge was inserted and unmasked, the order correlation
    with the distance from the junction, and the learned insertion schedule (LoFlexMDM) or the
    posterior's orders (IP). Writes RUN_DIR/order.json and RUN_DIR/order.png (format:
    docs/formats.md#generation-order)."""

    use_threads(threads)
    with RunLock(run_dir):  # eval / analysis write their results into the run (core/run_lock.py)
        run = TrainedRun.open(run_dir)
        task, title = run.task, f"{run.model.model_id} on {run.task.name}"
        result = run.order_analysis(split, limit, seed, progress=True, **sampler)
        if "classes" in result:
            classes = result["classes"]
            (Path(run_dir) / "order.json").write_text(to_json(classes, indent=2) + "\n")
            png = plot_class_order(classes, Path(run_dir) / "order.png", title=title)
            for name, v in classes["classes"].items():
                click.echo(f"{name:>10}: mean step decided {v['unmask']:.3f}, inserted {v['insert']:.3f} "
                           f"({v['tokens']:,} tokens)")
            click.echo(f"wrote {Path(run_dir) / 'order.json'} and {png}")
            return
        metrics, stats, profile = result["metrics"], result["order"], result["profile"]
        json_path, png_path = save_order_report(run_dir, stats, profile, title=title)
        click.echo(f"exact_match {metrics['exact_match']:.4f}  order correlation (unmask) "
                   f"{stats['order_corr_unmask']:.3f}  (insert) {stats['order_corr_insert']:.3f}  "
                   f"over {stats['order_corr_examples']} examples")
        if profile:
            what = ("median rank in IP's posterior orders" if profile["kind"] == "posterior_rank"
                    else "learned median insertion time")
            click.echo(f"{what} by {task.order_reference_label}: " +
                       ", ".join(f"{d}: {v['q50']:.2f}" for d, v in profile["by_distance"].items()))
        click.echo(f"wrote {json_path} and {png_path}")


command = analysis
