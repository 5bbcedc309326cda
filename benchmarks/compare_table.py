"""Markdown tables from accuracy-vs-time results: one row per (preset, seed) and the mean over seeds.

    python benchmarks/compare_table.py benchmarks/results/accuracy_vs_time-cmp600-*.json [--point -1]

For each result file it reports the chosen evaluation point (default: the last), for both samplers:
exact match, token accuracy, plan validity, order correlation (unmasking step against distance from
the junction) and model evaluations per sequence; then the same averaged over the seeds of a preset
(with the spread as min-max).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

SAMPLERS = ("joint", "insert_first", "ancestral")  # ancestral: the Insertion Process's only sampler


def fmt(value, pct=False):
    if value is None:
        return "—"
    if isinstance(value, float) and value != value:  # NaN
        return "n/a"
    return f"{value:.1%}" if pct else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--point", type=int, default=-1, help="which evaluation point (index) to report")
    args = parser.parse_args()
    rows = []
    for path in args.files:
        data = json.loads(path.read_text())
        point = data["points"][args.point]
        rows.append((data["preset"], data.get("model", "?"), data["seed"], point))
    rows.sort(key=lambda r: (r[0], r[2]))
    header = ("| preset | model | seed | minutes | steps | " +
              " | ".join(f"{s}: exact | token acc. | order corr. | evals/seq" for s in SAMPLERS) + " |")
    print(header)
    print("|" + "---|" * (5 + 4 * len(SAMPLERS)))
    groups = defaultdict(list)
    for preset, model, seed, point in rows:
        cells = [preset, model, str(seed), f"{point['train_seconds'] / 60:.0f}", f"{point['step']:,}"]
        for s in SAMPLERS:
            m = point.get(s, {})
            cells += [fmt(m.get("exact_match"), True), fmt(m.get("token_accuracy")), fmt(m.get("order_corr_unmask")),
                      f"{m.get('model_evals_per_seq', float('nan')):.1f}"]
        print("| " + " | ".join(cells) + " |")
        groups[(preset, model)].append(point)
    print()
    print("| preset | model | seeds | steps (mean) | " +
          " | ".join(f"{s}: exact (min-max) | order corr. (min-max)" for s in SAMPLERS) + " |")
    print("|" + "---|" * (4 + 2 * len(SAMPLERS)))
    for (preset, model), points in groups.items():
        cells = [preset, model, str(len(points)), f"{sum(p['step'] for p in points) / len(points):,.0f}"]
        for s in SAMPLERS:
            em = [p[s]["exact_match"] for p in points if s in p]
            oc = [p[s].get("order_corr_unmask", float("nan")) for p in points if s in p]
            oc = [v for v in oc if v == v]
            cells.append(f"{sum(em) / len(em):.1%} ({min(em):.1%}-{max(em):.1%})" if em else "—")
            cells.append(f"{sum(oc) / len(oc):.2f} ({min(oc):.2f} to {max(oc):.2f})" if oc else "n/a")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
