"""``insertgen report``: one self-contained HTML page for a run directory (or, see :mod:`report_grid`,
for a reproduce directory).

The page (``RUN_DIR/report.html``, every image embedded as a data URI, no script, no external resource)
shows what the run is (task, model, preset, seed, steps trained, options), its training curves
(``training.png``, drawn from ``metrics.jsonl`` when missing), every evaluation the run directory holds
(``eval-SPLIT.json`` as a table, with the task's picture ``eval-SPLIT.png``: maze plans, molecule grids),
the learned order (``order.png``: order against the star's junction distance with LoFlexMDM's learned
insertion times or IP's posterior order, token classes for molecules; ``schedule.png``: the learned
order per target position on tasks without a reference distance), drawn from validation prompts when
the run directory lacks them, and generation trajectories of a few validation prompts sampled now, step
by step: a token appears as a mask when it is inserted and shows its value when it is unmasked.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from pathlib import Path

from insertgen.apps.report_grid import build_grid_report
from insertgen.apps.report_page import (
    ORDER_FIGURES,
    embedded_image,
    ensure_order_figures,
    html_table,
    page,
    trajectories,
)
from insertgen.apps.reproduce.cells import SETTINGS
from insertgen.core.errors import InsertgenError
from insertgen.core.io import write_text_atomic
from insertgen.engine.plots import plot_training, read_metrics
from insertgen.engine.run import load_run


def build_report(path, out: Path | None = None, examples: int = 3, seed: int = 0) -> Path:
    """Write the report of a run directory or of a reproduce directory (default ``PATH/report.html``)
    and return its path."""

    path = Path(path)
    if not path.is_dir():
        raise InsertgenError(f"{path} is not a directory (give a run directory or a reproduce directory)")
    if (path / SETTINGS).is_file():

        return build_grid_report(path, out, examples, seed)
    return build_run_report(path, out, examples, seed)


def build_run_report(run_dir, out: Path | None = None, examples: int = 3, seed: int = 0) -> Path:
    """Write the report of ``run_dir`` (default ``RUN_DIR/report.html``) and return its path."""

    run_dir = Path(run_dir)
    model = load_run(run_dir)
    config = model.run_config
    out = Path(out) if out else run_dir / "report.html"
    records = read_metrics(run_dir)
    steps = max((r.get("step", 0) for r in records), default=0)
    parts = ["<h2>Run</h2>", html_table({"run directory": str(run_dir.resolve()), "task": config["task"],
                                     "model": config["model"], "preset": config.get("preset"),
                                     "seed": config.get("seed"), "steps trained": steps,
                                     "model options": config.get("model_config"),
                                     "task options": config.get("task_options"),
                                     "training options": config.get("train")})]
    parts.append("<h2>Training</h2>")
    figures_dir = run_dir
    if not os.access(run_dir, os.W_OK):  # a read-only run (a shared install): what it lacks is drawn elsewhere
        figures_dir = Path(tempfile.mkdtemp(prefix="insertgen-report-"))
        for name in ("metrics.jsonl", "training.png", *ORDER_FIGURES):
            if (run_dir / name).is_file():
                shutil.copyfile(run_dir / name, figures_dir / name)
    curves = figures_dir / "training.png"
    if not curves.is_file() and records:
        plot_training(figures_dir)
    parts.append(embedded_image(curves) if curves.is_file() else "<p>No training curves (no metrics logged).</p>")
    evals = sorted(run_dir.glob("eval-*.json"))
    parts.append("<h2>Evaluation</h2>")
    if not evals:
        parts.append(f"<p>No evaluation yet: <code>insertgen eval --run {html.escape(str(run_dir))}</code>.</p>")
    for path in evals:
        try:
            metrics = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InsertgenError(f"{path} is not valid JSON ({e})") from None
        parts.append(f"<h3>{html.escape(path.stem)}</h3>" + html_table(metrics))
        picture = path.with_suffix(".png")
        if picture.is_file():
            parts.append(embedded_image(picture))
    figures = ensure_order_figures(model, figures_dir, seed=seed)
    if figures:
        parts.append("<h2>Learned order</h2>" + "".join(embedded_image(f) for f in figures))
    parts.append("<h2>Generation, step by step</h2><p>Validation prompts sampled with the run's evaluation "
                 "settings. <code>_</code> is a mask: a token appears (yellow) when inserted and shows its value "
                 "(green) when unmasked; blue tokens are given.</p>")
    for prompt, table, output in trajectories(model, examples, seed):
        parts.append(f"<h3>prompt: {html.escape(prompt)}</h3>{table}"
                     f"<p>output: <code>{html.escape(output)}</code></p>")
    write_text_atomic(out, page(f"{config['task']} / {config['model']}", parts))
    return out
