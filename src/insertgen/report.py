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

import base64
import html
import json
from pathlib import Path

from insertgen.errors import InsertgenError
from insertgen.io import write_text_atomic

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0;font-size:14px;display:block;overflow-x:auto}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
img{max-width:100%;border:1px solid #eee}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:12px}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em}.traj td{font-family:monospace;font-size:12px;border:none;padding:1px 4px}
.traj .mask{color:#aaa}.traj .new{color:#aaa;background:#fff3c4}.traj .revealed{background:#c8f0c8;font-weight:bold}
.traj .given{color:#1f5fa8}.cards{display:flex;flex-wrap:wrap;gap:1em}.card{flex:1 1 520px;border:1px solid #ddd;
padding:.5em;border-radius:4px;max-width:100%}.card h4{margin:.2em 0}"""
ORDER_FIGURES = ("order.png", "schedule.png")


def image_tag(path: Path, alt: str | None = None) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt or Path(path).name)}" src="data:image/png;base64,{data}">'


def _image(path: Path) -> str:
    return f"<p>{image_tag(path)}</p>"


def _table(rows: dict) -> str:
    cells = []
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
        cells.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(str(value))}</td></tr>")
    return "<table>" + "".join(cells) + "</table>"


def page(title: str, body: list[str]) -> str:
    return "\n".join([f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                      f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>", *body, "</body></html>"])


def trajectory_html(task, record: dict, max_rows: int = 40) -> str:
    """A table, one row per step at which something changed: masks appear (highlighted) when inserted and
    show their token (highlighted) when unmasked; prompt tokens given in the canvas are blue. Longer
    trajectories show their first and last ``max_rows / 2`` rows."""
    from insertgen.demo import describe_events, trajectory_frames

    rows = []
    frames = trajectory_frames(task, record)
    if len(frames) > max_rows:
        skipped = len(frames) - max_rows
        frames = frames[: max_rows // 2] + [None] + frames[-(max_rows - max_rows // 2):]
    for frame in frames:
        if frame is None:
            rows.append(f"<tr><td>…</td><td>({skipped} steps not shown)</td><td></td></tr>")
            continue
        step, shown, events = frame
        tokens = " ".join(f'<span class="{state}">{html.escape("_" if state in ("mask", "new") else tok)}</span>'
                          for tok, state in shown)
        what = describe_events(events)
        rows.append(f"<tr><td>step {step}</td><td>{tokens}</td><td>{html.escape(what)}</td></tr>")
    return '<table class="traj">' + "".join(rows) + "</table>"


def sample_records(model, n: int, seed: int = 0):
    """(prompts, outputs, records) for the first ``n`` validation prompts (or ``n`` unconditional
    samples), sampled with the run's evaluation settings."""
    from insertgen.evaluate import generate, run_sampler_options, task_prompts

    task = model.task
    options = run_sampler_options(model.run_config, default_greedy=task.greedy_by_default)
    prompts = task_prompts(task, n)
    outputs, records = generate(model, prompts, options, seed=seed, prompt_in_target=task.prompt_in_target)
    return prompts, outputs, records


def trajectories(model, n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(prompt text, step-by-step HTML, output text) for the first ``n`` validation prompts."""
    task = model.task
    prompts, outputs, records = sample_records(model, n, seed)
    return [(task.format(p) if p else "(unconditional)", trajectory_html(task, rec), task.format(out))
            for p, out, rec in zip(prompts, outputs, records)]


def ensure_order_figures(model, run_dir: Path, n: int = 200, seed: int = 0) -> list[Path]:
    """The order figures the run should have (module docstring), drawn from ``n`` validation prompts
    when missing; returns those that exist."""
    from insertgen.analysis import write_order_figures
    from insertgen.tasks.base import Task

    task = model.task
    has_reference = type(task).order_reference is not Task.order_reference
    has_classes = type(task).token_class is not Task.token_class
    learned = hasattr(model, "schedule_rates") or getattr(model, "learned_order", False)
    wanted = (["order.png"] if has_reference or has_classes else []) + \
        (["schedule.png"] if learned and not has_reference else [])
    if any(not (run_dir / name).is_file() for name in wanted):
        examples = task.examples("validation")[:n]
        _, outputs, records = sample_records(model, len(examples), seed)
        write_order_figures(model, task, examples, outputs, records, run_dir)
    return [run_dir / name for name in ORDER_FIGURES if (run_dir / name).is_file()]


def build_report(path, out: Path | None = None, examples: int = 3, seed: int = 0) -> Path:
    """Write the report of a run directory or of a reproduce directory (default ``PATH/report.html``)
    and return its path."""
    from insertgen.reproduce.grid import SETTINGS

    path = Path(path)
    if not path.is_dir():
        raise InsertgenError(f"{path} is not a directory (give a run directory or a reproduce directory)")
    if (path / SETTINGS).is_file():
        from insertgen.report_grid import build_grid_report

        return build_grid_report(path, out, examples, seed)
    return build_run_report(path, out, examples, seed)


def build_run_report(run_dir, out: Path | None = None, examples: int = 3, seed: int = 0) -> Path:
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
    parts = ["<h2>Run</h2>", _table({"run directory": str(run_dir.resolve()), "task": config["task"],
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
    figures = ensure_order_figures(model, run_dir, seed=seed)
    if figures:
        parts.append("<h2>Learned order</h2>" + "".join(_image(f) for f in figures))
    parts.append("<h2>Generation, step by step</h2><p>Validation prompts sampled with the run's evaluation "
                 "settings. <code>_</code> is a mask: a token appears (yellow) when inserted and shows its value "
                 "(green) when unmasked; blue tokens are given.</p>")
    for prompt, table, output in trajectories(model, examples, seed):
        parts.append(f"<h3>prompt: {html.escape(prompt)}</h3>{table}"
                     f"<p>output: <code>{html.escape(output)}</code></p>")
    write_text_atomic(out, page(f"{config['task']} / {config['model']}", parts))
    return out
