"""The HTML page of a reproduce directory (``insertgen report REPRODUCE_DIR``), self-contained like a
run's page.

It shows the grid's ``results.md`` (settings, the task x model table, the claims, the per-task tables
with mean and spread over seeds; regenerated from the finished cells first) with its figures embedded,
then per task one card per model (its first seed's run): the task's picture of the evaluation (maze
plans, molecule grid), its training curves, the learned-order figures (order against the junction distance, LoFlexMDM's
insertion schedule, IP's posterior order, token classes) and generation trajectories step by step.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from insertgen.apps.report_page import (
    ensure_order_figures,
    image_tag,
    page,
    trajectories,
)
from insertgen.apps.reproduce.summary import write_summary
from insertgen.core.io import write_text_atomic
from insertgen.engine.run import load_run
from insertgen.models.registry import model_ids

_INLINE = [(re.compile(r"\*\*(.+?)\*\*"), r"<b>\1</b>"), (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
           (re.compile(r"(?<![\w*])\*([^*]+)\*(?![\w*])"), r"<i>\1</i>")]
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def markdown_html(text: str, base: Path) -> str:
    """The Markdown that ``reproduce`` writes (headings, pipe tables, images, paragraphs, bold, italics,
    code) as HTML; images are read from ``base`` and embedded."""

    out, table, paragraph = [], [], []

    def flush():
        if table:
            head, *body = table
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>" +
                       "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body)
                       + "</table>")
            table.clear()
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            if paragraph:
                flush()
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                table.append(cells)
            continue
        flush()
        if not stripped:
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        image = _IMAGE.match(stripped)
        if heading:
            level = min(6, len(heading.group(1)) + 1)  # the page's title is the only <h1>
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif image and (base / image.group(2)).is_file():
            out.append(f"<p>{image_tag(base / image.group(2), image.group(1))}</p>")
        else:
            paragraph.append(stripped)
    flush()
    return "\n".join(out)


def _card(run_dir: Path, model_id: str, examples: int, seed: int) -> str:

    parts = [f"<div class='card'><h4>{html.escape(model_id)}</h4>"]
    evaluation = run_dir / "eval-test.json"
    if evaluation.is_file():
        metrics = json.loads(evaluation.read_text())
        shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
        parts.append("<p>" + html.escape(f"sampler {metrics.get('sampler_name', '?')}: " + ", ".join(
            f"{k} {v:.3g}" for k, v in list(shown.items())[:6])) + "</p>")
    for picture in ("eval-test.png", "training.png"):
        if (run_dir / picture).is_file():
            parts.append(image_tag(run_dir / picture))
    model = load_run(run_dir)
    for figure in ensure_order_figures(model, run_dir, seed=seed):
        parts.append(image_tag(figure))
    for prompt, table, output in trajectories(model, examples, seed):
        parts.append(f"<p>prompt: <code>{html.escape(prompt)}</code></p>{table}"
                     f"<p>output: <code>{html.escape(output)}</code></p>")
    parts.append("</div>")
    return "".join(parts)


def build_grid_report(grid_dir: Path, out: Path | None = None, examples: int = 1, seed: int = 0) -> Path:
    """Write ``GRID_DIR/report.html`` (or ``out``) and return its path."""

    grid_dir = Path(grid_dir)
    result = write_summary(grid_dir)
    settings = result["settings"]
    text = (grid_dir / "results.md").read_text()
    if text.startswith("# "):  # the file's own title; the page has its own
        text = text.split("\n", 1)[1]
    parts = [markdown_html(text, grid_dir)]
    models = [m for m in model_ids() if m in settings["models"]]
    for task in settings["tasks"]:
        finished = result["summary"].get(task, {})  # model -> its finished seeds, among others
        cards = [_card(grid_dir / "runs" / task / model / f"seed{finished[model]['seeds'][0]}", model, examples, seed)
                 for model in models if model in finished]
        if cards:
            parts.append(f"<h2>{html.escape(task)}: what each model does (seed {min(settings['seeds'])})</h2>"
                         "<p>Evaluation picture, training curves, learned order, and generation step by step: a "
                         "mask appears "
                         "(yellow) when inserted and shows its token (green) when unmasked; blue tokens are "
                         "given.</p><div class='cards'>" + "".join(cards) + "</div>")
    out = Path(out) if out else grid_dir / "report.html"
    write_text_atomic(out, page(f"insertgen reproduce: {grid_dir.name}", parts))
    return out
