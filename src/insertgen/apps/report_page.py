"""The parts of an HTML report page: style, embedded images, tables, generation trajectories and the
order figures a page shows (used by :mod:`report` for a run and :mod:`report_grid` for a reproduce grid)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from insertgen.apps.demo import describe_events, trajectory_frames
from insertgen.engine.analysis import write_order_figures
from insertgen.engine.evaluate import generate, task_prompts
from insertgen.engine.sampler_settings import resolve_sampler_options
from insertgen.models.registry import family_of
from insertgen.tasks.base import Task

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


def embedded_image(path: Path) -> str:
    return f"<p>{image_tag(path)}</p>"


def html_table(rows: dict) -> str:
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

    task = model.task
    options = resolve_sampler_options(model.run_config, default_greedy=task.greedy_by_default)
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

    task = model.task
    has_reference = type(task).order_reference is not Task.order_reference
    has_classes = type(task).token_class is not Task.token_class
    learned = family_of(model).can("schedule_profile") or family_of(model).can("posterior_orders")
    wanted = (["order.png"] if has_reference or has_classes else []) + \
        (["schedule.png"] if learned and not has_reference else [])
    if any(not (run_dir / name).is_file() for name in wanted):
        examples = task.examples("validation")[:n]
        _, outputs, records = sample_records(model, len(examples), seed)
        write_order_figures(model, task, examples, outputs, records, run_dir)
    return [run_dir / name for name in ORDER_FIGURES if (run_dir / name).is_file()]
