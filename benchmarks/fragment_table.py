"""Tables and a figure of fragment-constrained generation from ``insertgen eval --json`` outputs.

    python benchmarks/fragment_table.py --name frag360 bench-out/frag360-*-seed0 [--plot docs/figures/F.png]

Each argument is a run directory trained on ``fragment-all`` whose ``eval --json`` output was saved
beside it as ``RUN.eval.json``. Prints one markdown table per task (validity / uniqueness / quality over
all samples and over distinct molecules / diversity / distance per model, with the training steps and
seconds), saves them as ``benchmarks/results/fragments-NAME.json``, and with ``--plot`` draws validity
and quality per task and model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from insertgen.apps.benchmarking import save

TASKS = ("linker", "motif", "scaffold", "superstructure")
COLUMNS = ("validity", "uniqueness", "quality_all", "quality_unique", "diversity", "distance")
PERCENT = {"validity", "uniqueness", "quality_all", "quality_unique"}
# published reference (NVIDIA-Digital-Bio/genmol README, GenMol V2 with bracket SAFE, paper scale;
# docs/methods/tasks.md#fragment-reference-numbers): validity / uniqueness / quality (GenMol's: distinct
# molecules) / diversity / distance
GENMOL_V2 = {"linker": (1.000, 0.766, 0.184, 0.512, 0.539), "motif": (0.994, 0.845, 0.490, 0.626, 0.659),
             "scaffold": (0.992, 0.905, 0.397, 0.571, 0.604), "superstructure": (0.997, 0.898, 0.390, 0.551, 0.769)}


def training_summary(run: Path) -> dict:
    config = json.loads((run / "config.json").read_text())
    steps = seconds = None
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        steps = record.get("step", steps)
        seconds = record.get("elapsed", record.get("time", seconds))
    return {"model": config.get("model"), "preset": config.get("preset"), "steps": steps, "seconds": seconds,
            "task_options": config.get("task_options")}


def fmt(value, digits=3, percent=False) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        evaluation = run.parent / f"{run.name}.eval.json"
        if not evaluation.is_file():
            print(f"skipping {run}: no {evaluation}", file=sys.stderr)
            continue
        rows.append({"run": str(run), **training_summary(run), "eval": json.loads(evaluation.read_text())})
    for task in TASKS:
        print(f"\n**{task}** (validity / uniqueness / quality all / quality unique / diversity / distance)\n")
        print("| model | steps | " + " | ".join(COLUMNS) + " |")
        print("|---|---|" + "---|" * len(COLUMNS))
        for r in rows:
            e = r["eval"]
            print(f"| {r['model']} | {r['steps']} | "
                  + " | ".join(fmt(e.get(f"{task}/{c}"), percent=c in PERCENT) for c in COLUMNS) + " |")
        v, u, q, d, dist = GENMOL_V2[task]
        print(f"| GenMol V2 (reference, paper scale) | — | {fmt(v, percent=True)} | {fmt(u, percent=True)} | — "
              f"| {fmt(q, percent=True)} | {d:.3f} | {dist:.3f} |")
    print("\n**mean over the four tasks**\n")
    print("| model | " + " | ".join(COLUMNS) + " | sample_length | sample_seconds |")
    print("|---|" + "---|" * (len(COLUMNS) + 2))
    for r in rows:
        e = r["eval"]
        print(f"| {r['model']} | " + " | ".join(fmt(e.get(c), percent=c in PERCENT) for c in COLUMNS)
              + f" | {fmt(e.get('sample_length'), 1)} | {fmt(e.get('sample_seconds'), 0)} |")
    save(f"fragments-{args.name}", {"command": " ".join(sys.argv), "runs": rows}, quiet=True)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
        width = 0.8 / max(1, len(rows))
        for ax, metric in zip(axes, ("validity", "quality_all")):
            for k, r in enumerate(rows):
                values = [r["eval"].get(f"{t}/{metric}", float("nan")) for t in TASKS]
                ax.bar(np.arange(len(TASKS)) + k * width, values, width, label=r["model"])
            ax.set_xticks(np.arange(len(TASKS)) + width * (len(rows) - 1) / 2, TASKS)
            ax.set_title(metric)
            ax.set_ylim(0, 1)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"fragment-constrained generation ({args.name})")
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=100)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
