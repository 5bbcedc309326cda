"""The molecule study's table: one row per run of benchmarks/molecule_learning.py.

    python benchmarks/molecule_table.py runs-in-progress/molecules [--docs docs/lab/learning-molecules.md]

Per run (a directory holding ``learning.json``): task, model, seed, the change (its ``--set`` options and
preset, evaluation settings left out), the last step and its training FLOPs, validity at the last point (at
temperature 1 and at each extra temperature), uniqueness and novelty there, the first step (and FLOPs) at
which validity reached 50% and 90% (temperature 1; then at the lowest extra temperature), the held-out nats
per token, the partial-progress signals and the order (``scaffold_minus_atom``) at the last point. With
``--docs`` the table replaces the text between ``<!-- molecule-table:begin -->`` and ``<!-- molecule-table:end -->``;
``--figure PNG`` draws validity and the order statistic against training FLOPs for every run.
"""

from __future__ import annotations

import json
from pathlib import Path

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.molecule_table
    from study_table import change, run_table_command
    from study_table import first_at as _first_point
except ImportError:  # pragma: no cover
    from benchmarks.study_table import change, run_table_command
    from benchmarks.study_table import first_at as _first_point
HEADER = ("| task | model | seed | change | steps | FLOPs | valid (T=1) | valid (low T) | unique / novel (low T) | "
          "50% / 90% valid at (T=1) | 50% / 90% at (low T) | nats/token | rings / branches / valences | "
          "skeleton - atoms |")


def first_at(points: list[dict], threshold: float, temperature: str | None = None) -> str:
    """The first step (and FLOPs) at which validity (at ``temperature``; None = 1) reached ``threshold``."""
    p = _first_point(points, threshold, lambda p: p["validity"] if temperature is None else
                     p.get("at_temperature", {}).get(temperature, {}).get("validity"))
    return "-" if p is None else f"{p['step']:,} ({p['flops']:.1e})"


def row(record: dict) -> str:
    s, points = record["settings"], record["points"]
    last = points[-1]
    temps = sorted({t for p in points for t in p.get("at_temperature", {})}, key=float)
    low = temps[0] if temps else None
    at_low = last.get("at_temperature", {}).get(low, {}) if low else {}
    pct = lambda v: "-" if v is None else f"{v:.1%}"
    signals = " / ".join(pct(last.get(k)) for k in ("rings_paired", "branches_balanced", "valences_legal"))
    order = last.get("scaffold_minus_atom")
    nats = last.get("nats_per_token")
    return (f"| {s['task']} | {s['model']} | {s['seed']} | {change(s)} | {last['step']:,} | {last['flops']:.1e} | "
            f"{pct(last['validity'])} | " + (f"{pct(at_low.get('validity'))} (T={low})" if low else "-") + " | "
            + (f"{pct(at_low.get('uniqueness'))} / {pct(at_low.get('novelty'))}" if low else
               f"{pct(last.get('uniqueness'))} / {pct(last.get('novelty'))}")
            + f" | {first_at(points, 0.5)} / {first_at(points, 0.9)} | "
            + (f"{first_at(points, 0.5, low)} / {first_at(points, 0.9, low)}" if low else "-")
            + f" | {'-' if nats is None else f'{nats:.3f}'} | {signals} | "
            + ("-" if order is None else f"{order:+.2f}") + " |")


def table(root: Path) -> str:
    records = [json.loads(p.read_text()) for p in sorted(root.glob("*/learning.json"))]
    records.sort(key=lambda r: (r["settings"]["task"], r["settings"]["model"], change(r["settings"]),
                                r["settings"]["seed"]))
    return "\n".join([HEADER, "|" + "---|" * HEADER.count(" | ") + "---|", *(row(r) for r in records)])


def figure(root: Path, path: Path) -> Path:
    """Validity against training FLOPs for every run (solid: temperature 1; dashed: its lowest extra
    temperature), and the order statistic (skeleton - atoms) against FLOPs; one legend entry per run, named by
    its directory."""
    from insertgen.core.figures import pyplot

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5))
    colors = plt.get_cmap("tab20")
    for k, path_k in enumerate(sorted(root.glob("*/learning.json"))):
        record = json.loads(path_k.read_text())
        points = record["points"]
        color = colors(k % 20)
        flops = [p["flops"] for p in points]
        left.plot(flops, [p["validity"] for p in points], color=color, label=path_k.parent.name)
        temps = sorted({t for p in points for t in p.get("at_temperature", {})}, key=float)
        if temps:
            low = [(p["flops"], p["at_temperature"][temps[0]]["validity"]) for p in points
                   if temps[0] in p.get("at_temperature", {})]
            left.plot(*zip(*low), color=color, ls="--", marker=".")
        right.plot(flops, [p.get("scaffold_minus_atom") if p.get("scaffold_minus_atom") is not None else float("nan")
                           for p in points], color=color)
    left.set_xlabel("training FLOPs")
    left.set_ylabel("valid molecules (500 samples)")
    left.set_ylim(0, 1)
    left.set_title("validity against compute (solid T = 1, dashed the run's lower T)", fontsize=10)
    right.axhline(0, color="grey", lw=0.6)
    right.set_xlabel("training FLOPs")
    right.set_ylabel("mean step: ring + branch tokens - atoms")
    right.set_title("generation order (negative: the skeleton first), T = 1", fontsize=10)
    fig.legend(*left.get_legend_handles_labels(), loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    run_table_command(argv, __doc__, "molecule-table", table, figure, "Also draw validity and order against FLOPs here.")


if __name__ == "__main__":
    main()
