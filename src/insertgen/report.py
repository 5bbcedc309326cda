"""``insertgen report``: one self-contained HTML page for a run directory.

The page (``RUN_DIR/report.html``, every image embedded as a data URI, no script, no external resource)
shows what the run is (task, model, preset, seed, steps trained, options), its training curves
(``training.png``, drawn from ``metrics.jsonl`` when missing), every evaluation the run directory holds
(``eval-SPLIT.json`` as a table, with the task's picture ``eval-SPLIT.png``: maze plans, molecule grids),
the generation-order figure of ``analysis`` (``order.png``: order against the star's junction distance,
LoFlexMDM's learned insertion times, token classes for molecules) when it was run, and generation
trajectories of a few validation prompts sampled now, step by step: a token appears (as ``_``) when it
is inserted and shows its value when it is unmasked.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from insertgen.errors import InsertgenError
from insertgen.io import write_text_atomic

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
img{max-width:100%;border:1px solid #eee}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:12px}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"""


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}"></p>'


def _table(rows: dict) -> str:
    cells = []
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
        cells.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(str(value))}</td></tr>")
    return "<table>" + "".join(cells) + "</table>"


def trajectories(model, n: int, seed: int = 0) -> list[tuple[str, list[str], str]]:
    """(prompt text, step-by-step lines, output text) for the first ``n`` validation prompts (or ``n``
    unconditional samples), sampled with the run's evaluation settings."""
    from insertgen.demo import render_trajectory
    from insertgen.evaluate import generate, run_sampler_options, task_prompts

    task = model.task
    options = run_sampler_options(model.run_config, default_greedy=task.greedy_by_default)
    prompts = task_prompts(task, n)
    outputs, records = generate(model, prompts, options, seed=seed, prompt_in_target=task.prompt_in_target)
    return [(task.format(p) if p else "(unconditional)", render_trajectory(task, rec), task.format(out))
            for p, out, rec in zip(prompts, outputs, records)]


def build_report(run_dir, out: Path | None = None, examples: int = 3, seed: int = 0) -> Path:
    """Write the report of ``run_dir`` (default ``RUN_DIR/report.html``) and return its path."""
    from insertgen.plots import plot_training
    from insertgen.run import load_run

    run_dir = Path(run_dir)
    model = load_run(run_dir)
    config = model.run_config
    out = Path(out) if out else run_dir / "report.html"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (run_dir / "metrics.jsonl").is_file() else []
    steps = max((r.get("step", 0) for r in records), default=0)
    title = f"{config['task']} / {config['model']}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<h2>Run</h2>", _table({"run directory": str(run_dir.resolve()), "task": config["task"],
                                     "model": config["model"], "preset": config.get("preset"),
                                     "seed": config.get("seed"), "steps trained": steps,
                                     "model options": config.get("model_config"),
                                     "task options": config.get("task_options"),
                                     "training options": config.get("train")})]
    parts.append("<h2>Training</h2>")
    curves = run_dir / "training.png"
    if not curves.is_file() and records:
        plot_training(run_dir)
    parts.append(_image(curves) if curves.is_file() else "<p>No training curves (no metrics logged).</p>")
    evals = sorted(run_dir.glob("eval-*.json"))
    parts.append("<h2>Evaluation</h2>")
    if not evals:
        parts.append(f"<p>No evaluation yet: <code>insertgen eval --run {html.escape(str(run_dir))}</code>.</p>")
    for path in evals:
        try:
            metrics = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InsertgenError(f"{path} is not valid JSON ({e})") from None
        parts.append(f"<h3>{html.escape(path.stem)}</h3>" + _table(metrics))
        picture = path.with_suffix(".png")
        if picture.is_file():
            parts.append(_image(picture))
    if (run_dir / "order.png").is_file():
        parts.append("<h2>Generation order</h2>" + _image(run_dir / "order.png"))
    parts.append("<h2>Generation, step by step</h2><p>Validation prompts sampled with the run's evaluation "
                 "settings. <code>_</code> is a mask: a token appears when inserted and shows its value "
                 "when unmasked.</p>")
    for prompt, lines, output in trajectories(model, examples, seed):
        parts.append(f"<h3>prompt: {html.escape(prompt)}</h3><pre>{html.escape(chr(10).join(lines))}</pre>"
                     f"<p>output: <code>{html.escape(output)}</code></p>")
    parts.append("</body></html>")
    write_text_atomic(out, "\n".join(parts))
    return out
