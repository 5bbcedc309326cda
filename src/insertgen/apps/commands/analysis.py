"""`insertgen analysis`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.apps.commands.common import RUN_DIR, SPLIT, THREADS
from insertgen.apps.sampler_flags import sampler_flags
from insertgen.core.errors import InsertgenError
from insertgen.core.io import to_json
from insertgen.core.threads import use_threads
from insertgen.engine.analysis import (
    class_order_statistics,
    insertion_time_profile,
    order_statistics,
    plot_class_order,
    posterior_order_profile,
    save_order_report,
)
from insertgen.engine.evaluate import evaluate_model
from insertgen.engine.run import load_run
from insertgen.engine.sampler_settings import resolve_sampler_options


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
    model = load_run(run_dir)
    task = model.task
    options = resolve_sampler_options(model.run_config, default_greedy=task.greedy_by_default, **sampler)
    examples = task.examples(split)[:limit]
    metrics, pairs = evaluate_model(model, task, examples, options, seed=seed, progress=True)
    stats = order_statistics(task, examples, [o for o, _ in pairs], [r for _, r in pairs])
    classes = class_order_statistics(task, [o for o, _ in pairs], [r for _, r in pairs])
    if stats is None and classes is not None:
        (Path(run_dir) / "order.json").write_text(to_json(classes, indent=2) + "\n")
        png = plot_class_order(classes, Path(run_dir) / "order.png", title=f"{model.model_id} on {task.name}")
        for name, v in classes["classes"].items():
            click.echo(f"{name:>10}: mean step decided {v['unmask']:.3f}, inserted {v['insert']:.3f} "
                       f"({v['tokens']:,} tokens)")
        click.echo(f"wrote {Path(run_dir) / 'order.json'} and {png}")
        return
    if stats is None:
        raise InsertgenError(f"task {task.name!r} defines no reference order to analyse")
    profile = insertion_time_profile(model, task, examples) or posterior_order_profile(model, task, examples[:200])
    json_path, png_path = save_order_report(run_dir, stats, profile, title=f"{model.model_id} on {task.name}")
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
