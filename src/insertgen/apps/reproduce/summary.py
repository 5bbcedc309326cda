"""Summary of a reproduce grid: ``results.json`` (every finished cell and the aggregates), ``results.md``
(Markdown tables) and ``figures/`` (plots), regenerated from the ``cells/`` records.

Aggregates: for each (task, model, sampler), the mean, standard deviation (over seeds, ``ddof = 1``; 0
for one seed), minimum and maximum over the seeds of every headline metric of the task
(``Task.headline_metrics``) and of the order statistics. A model's *best sampler* on a task is the one
with the highest mean of the task's first headline metric over seeds (chosen on the test examples the
table reports: an optimistic choice between two or three samplers, stated next to the table).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import defaultdict
from pathlib import Path

from insertgen.apps.reproduce.cells import SETTINGS, cell_key, read_cell
from insertgen.apps.reproduce.claims import evaluate_claims
from insertgen.apps.reproduce.formatting import PERCENT, fmt
from insertgen.core.errors import InsertgenError
from insertgen.core.io import to_json, write_text_atomic
from insertgen.models.registry import model_ids

ORDER_KEYS = ("order_corr_unmask", "order_corr_insert")
CLASS_KEYS = ("order_step_ring", "order_step_branch", "order_step_bond", "order_step_atom", "scaffold_minus_atom")
def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min, max and count of the finite ``values``."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(xs), "max": max(xs), "n": len(xs)}


def load_cells(out: Path, tasks, models, seeds) -> list[dict]:

    cells = []
    for task in tasks:
        for model in models:
            for seed in seeds:
                record = read_cell(out / "cells" / f"{cell_key(task, model, seed)}.json")
                if record is not None:
                    cells.append(record)
    return cells


def aggregate(cells: list[dict]) -> dict:
    """``{task: {model: {"best_sampler", "samplers": {name: {metric: spread}}, "training": {...}}}}``."""
    grouped: dict = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        grouped[cell["task"]][cell["model"]].append(cell)
    summary: dict = {}
    for task, by_model in grouped.items():
        summary[task] = {}
        for model, group in by_model.items():
            headline = group[0]["headline"]
            metrics = list(group[0]["headline_metrics"]) + ["token_accuracy", "model_evals_per_seq",
                                                            "termination_rate", *ORDER_KEYS, *CLASS_KEYS]
            samplers = {}
            for name in group[0]["samplers"]:
                rows = [c["samplers"].get(name, {}) for c in group]
                samplers[name] = {m: spread([r.get(m) for r in rows]) for m in dict.fromkeys(metrics)
                                  if any(m in r for r in rows)}
            best = max(samplers, key=lambda s: _finite(samplers[s].get(headline, {}).get("mean")))
            training = {k: spread([c["training"].get(k) for c in group])
                        for k in ("steps", "train_seconds", "train_flops", "flops_per_step", "params")}
            orders = [c.get("order", {}) for c in group]
            profile = {"rank_distance_corr": spread([(o.get("profile") or {}).get("rank_distance_corr")
                                                     for o in orders])}
            likelihood = {"nats_per_token": spread([(c.get("likelihood") or {}).get("nats_per_token") for c in group]),
                          "bound": (group[0].get("likelihood") or {}).get("likelihood_bound")}
            summary[task][model] = {"headline": headline, "likelihood": likelihood, "seeds": sorted(c["seed"] for c in group),
                                    "eval_examples": min(int(c.get("eval_examples") or 0) for c in group),
                                    "best_sampler": best, "samplers": samplers, "training": training,
                                    "posterior": profile if profile["rank_distance_corr"]["n"] else None}
    return summary


def _finite(x) -> float:
    return x if x is not None and math.isfinite(x) else float("-inf")


def _bound(likelihood: dict | None) -> str:
    """The held-out bound's column: nats per token (``exact`` or ``elbo``), or a dash."""
    if not likelihood or not likelihood["nats_per_token"].get("n"):
        return "—"
    return f"{fmt(likelihood['nats_per_token'], 'nats_per_token')} ({likelihood['bound']})"


def _flops(x: float) -> str:
    return f"{x:.2g}" if math.isfinite(x) else "—"


def markdown(settings: dict, summary: dict, tasks, models, claims: list[dict], figures: dict[str, str]) -> str:
    """The Markdown of ``results.md``; ``figures`` maps a figure's name to its path relative to the file."""

    models = [m for m in model_ids() if m in models] + [m for m in models if m not in model_ids()]
    lines = [f"Grid: scale `{settings['settings']['scale']}`, budget: {settings['budget']} (equal for every "
             f"model), seeds {', '.join(map(str, settings['seeds']))}, evaluation on "
             f"{settings['settings']['eval_n'] or 'each task default number of'} test examples (unconditional "
             f"tasks: samples), {settings['settings']['sampler_steps']} sampler steps where a sampler takes steps. "
             "Values are mean ± standard deviation over seeds (in %, except where a column says otherwise); "
             "each model is shown with its best sampler on the task (named in the per-task tables; chosen "
             "on the reported test examples among its family's two samplers, where it has two).", ""]
    lines += ["### Headline metric per task and model", "",
              "| task (metric) | " + " | ".join(models) + " |", "|" + "---|" * (len(models) + 1)]
    for task in tasks:
        if task not in summary:
            continue
        headline = next(iter(summary[task].values()))["headline"]
        cells = []
        for m in models:
            entry = summary[task].get(m)
            cells.append(fmt(entry["samplers"][entry["best_sampler"]].get(headline), headline) if entry else "—")
        lines.append(f"| {task} ({headline}) | " + " | ".join(cells) + " |")
    if "headline" in figures:
        lines += ["", f"![headline metric per task and model]({figures['headline']})"]
    if claims:
        lines += ["", "### The papers' claims at this scale", "", "| claim | task | compared | verdict |",
                  "|---|---|---|---|"]
        for c in claims:
            lines.append(f"| {c['claim']} | {c['task']} | {c['evidence']} | **{c['verdict']}** |")
        lines += ["", "Verdicts: *holds* when every seed of the first side beats every seed of the second and "
                  "the difference of the means exceeds twice its binomial standard error over the evaluated "
                  "examples (for an order claim: every seed's correlation is below -0.1); *reversed* when the "
                  "same holds the other way; *not shown* otherwise (the seeds overlap, the difference is within "
                  "evaluation noise, or the correlation is within ±0.1 of 0)."]
    for task in tasks:
        if task not in summary:
            continue
        entries = summary[task]
        first = next(iter(entries.values()))
        metric_names = [m for m in first["samplers"][first["best_sampler"]] if m != "model_evals_per_seq"]
        shown = [m for m in metric_names if m not in ORDER_KEYS + CLASS_KEYS][:5]
        order_cols = [m for m in ORDER_KEYS[:1] + CLASS_KEYS if m in metric_names]
        lines += ["", f"### {task}", "",
                  "| model | sampler | seeds | steps | training s | train FLOPs | " + " | ".join(shown + order_cols)
                  + " | evals/seq | nats/token |", "|" + "---|" * (8 + len(shown) + len(order_cols))]
        for m in models:
            if m not in entries:
                continue
            entry = entries[m]
            for name, stats in entry["samplers"].items():
                mark = "**" if name == entry["best_sampler"] else ""
                t = entry["training"]
                lines.append("| " + " | ".join([
                    f"{mark}{m}{mark}", f"{mark}{name}{mark}", str(len(entry["seeds"])),
                    f"{t['steps']['mean']:,.0f}", f"{t['train_seconds']['mean']:.0f}", _flops(t["train_flops"]["mean"]),
                    *(fmt(stats.get(k), k, with_range=True) for k in shown + order_cols),
                    fmt(stats.get("model_evals_per_seq"), "model_evals_per_seq"),
                    _bound(entry.get("likelihood"))]) + " |")
        posterior = [(m, e["posterior"]) for m, e in entries.items() if e.get("posterior")]
        for m, p in posterior:
            lines.append(f"\n{m}: rank-distance correlation of the posterior's orders on test targets "
                         f"{fmt(p['rank_distance_corr'], 'rho', with_range=True)} (negative: endpoints first).")
        if task in figures:
            lines += ["", f"![{task}]({figures[task]})"]
    lines += ["", f"Metrics in %: {', '.join(sorted(PERCENT))}. Order columns: `order_corr_unmask` is Spearman's "
              "correlation between a token's generation step and its distance from the junction (negative: the "
              "path's endpoints first); `order_step_*` is the mean normalised step (0 first, 1 last) at which "
              "ring digits / branches / bonds / atoms are decided. Steps and FLOPs: mean over seeds; FLOPs are "
              "the counted matrix-product FLOPs of a training step times the steps."]
    return "\n".join(lines) + "\n"


def plot_headline(summary: dict, tasks, models, path: Path) -> Path:
    """One panel per task: each model's best-sampler headline metric, mean over seeds (bar) and the seeds
    (dots)."""
    import matplotlib  # heavy: loaded only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: loaded only when a figure is drawn


    tasks = [t for t in tasks if t in summary]
    models = [m for m in model_ids() if m in models]
    cols = min(3, len(tasks)) or 1
    rows = math.ceil(len(tasks) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    for ax, task in zip(axes.flat, tasks):
        headline = next(iter(summary[task].values()))["headline"]
        for j, m in enumerate(models):
            entry = summary[task].get(m)
            if not entry:
                continue
            stat = entry["samplers"][entry["best_sampler"]].get(headline, {})
            if not stat.get("n"):
                continue
            ax.bar(j, stat["mean"], color=colors[j % len(colors)], alpha=0.8)
            ax.errorbar(j, stat["mean"], yerr=stat["std"] if stat["n"] > 1 else None, color="black", capsize=3)
            ax.plot([j] * 2, [stat["min"], stat["max"]], "k.", ms=4)
            ax.text(j, stat["mean"] + 0.02, f"{stat['mean']:.0%}" if headline in PERCENT else f"{stat['mean']:.2f}",
                    ha="center", fontsize=7)
        ax.set_xticks(range(len(models)), models, rotation=30, fontsize=8)
        ax.set_ylim(0, 1.1 if headline in PERCENT else None)
        ax.set_title(f"{task}: {headline}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("equal training budget per model (best sampler; dots: seeds' min and max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_summary(out: Path, docs: Path | None = None) -> dict:
    """Write results.json, results.md and figures/headline.png of the reproduce directory ``out`` from its
    finished cells; with ``docs``, also replace the generated section of that Markdown file (see
    :func:`update_docs`). Returns what results.json holds."""

    out = Path(out)
    if not (out / SETTINGS).is_file():
        raise InsertgenError(f"{out} is not a reproduce directory (no {SETTINGS})")
    settings = json.loads((out / SETTINGS).read_text())
    tasks, models, seeds = settings["tasks"], settings["models"], settings["seeds"]
    cells = load_cells(out, tasks, models, seeds)
    summary = aggregate(cells)
    claims = evaluate_claims(summary)
    (out / "figures").mkdir(exist_ok=True)
    figures = {}
    if summary:
        plot_headline(summary, tasks, models, out / "figures" / "headline.png")
        figures["headline"] = "figures/headline.png"
    result = {"settings": settings, "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cells": len(cells),
              "summary": summary, "claims": claims, "cell_records": cells}
    write_text_atomic(out / "results.json", to_json(result, indent=2) + "\n")
    write_text_atomic(out / "results.md", "# insertgen reproduce\n\n" +
                      markdown(settings, summary, tasks, models, claims, figures))
    if docs is not None:
        update_docs(docs, out, settings, summary, tasks, models, claims)
    return result


BEGIN, END = "<!-- reproduce:begin -->", "<!-- reproduce:end -->"


def update_docs(docs: Path, out: Path, settings: dict, summary: dict, tasks, models, claims) -> Path:
    """Replace the text between ``<!-- reproduce:begin -->`` and ``<!-- reproduce:end -->`` of ``docs``
    (appended when absent) with the grid's tables, its figure copied beside the file under
    ``figures/reproduce-<scale>-headline.png``."""

    docs = Path(docs)
    figure_dir = docs.parent / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    figures = {}
    if (out / "figures" / "headline.png").is_file():
        name = f"reproduce-{settings['settings']['scale']}-headline.png"
        shutil.copyfile(out / "figures" / "headline.png", figure_dir / name)
        figures["headline"] = f"figures/{name}"
    body = markdown(settings, summary, tasks, models, claims, figures)
    text = docs.read_text() if docs.is_file() else ""
    block = f"{BEGIN}\n{body}{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    write_text_atomic(docs, text)
    return docs
