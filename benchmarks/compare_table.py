"""Markdown tables from accuracy-vs-time results: one row per (preset, seed) and the mean over seeds.

    python benchmarks/compare_table.py benchmarks/results/accuracy_vs_time-cmp600-*.json [--point -1]

For each result file it reports the chosen evaluation point (default: the last), for each sampler the
run was evaluated with (joint / insert_first tau-leaping for FlexMDM and LoFlexMDM, ancestral for IP and
AO-IP, left_to_right for ARM, random / top_prob for MDM): exact match, token accuracy, order correlation
(generation step against distance from the junction) and model evaluations per sequence, plus the
termination rate for IP and ARM; then the exact match and
order correlation averaged over the seeds of a preset (spread as min to max). One pair of tables per
sampler family.

    python benchmarks/compare_table.py benchmarks/results/accuracy_vs_time-cmp240-maze-*.json --maze

prints the maze tables instead: success / optimal / exact match per (task, model, sampler), and a grid
of task x model with each model's best sampler by success (mean over seeds).

    python benchmarks/compare_table.py benchmarks/results/accuracy_vs_time-mol600-*.json --molecules

prints the de novo molecule tables: validity, uniqueness, novelty, quality, diversity, IntDiv, KL score,
FCD (with its sample size) and lengths per (task, model, sampler), and the generation-order statistic
(mean normalised step of ring digits / branches / bonds / atoms / attachment points).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from insertgen.models.registry import model_ids

SAMPLERS = ("joint", "insert_first", "ancestral", "left_to_right", "random", "top_prob")  # see insertgen.apps.benchmarking.greedy_samplers
STOPPING = ("ancestral", "left_to_right")  # samplers whose sequences stop by themselves (termination rate)


def fmt(value, pct=False):
    if value is None:
        return "—"
    if isinstance(value, float) and value != value:  # NaN
        return "n/a"
    return f"{value:.1%}" if pct else f"{value:.2f}"


def tables(rows: list[tuple], samplers: tuple[str, ...]) -> list[str]:
    stopping = [s for s in samplers if s in STOPPING]
    out = ["| run name | model | seed | minutes | steps | " +
           " | ".join(f"{s}: exact | token acc. | order corr. | evals/seq" for s in samplers) +
           (" | terminated |" if stopping else " |"),
           "|" + "---|" * (5 + 4 * len(samplers) + bool(stopping))]
    groups = defaultdict(list)
    for preset, model, seed, point in rows:
        cells = [preset, model, str(seed), f"{point['train_seconds'] / 60:.0f}", f"{point['step']:,}"]
        for s in samplers:
            m = point[s]
            cells += [fmt(m["exact_match"], True), fmt(m["token_accuracy"]), fmt(m.get("order_corr_unmask")),
                      f"{m['model_evals_per_seq']:.1f}"]
        if stopping:
            cells.append(fmt(point[stopping[0]].get("termination_rate"), True))
        out.append("| " + " | ".join(cells) + " |")
        groups[(preset, model)].append(point)
    out += ["", "| run name | model | seeds | steps (mean) | " +
            " | ".join(f"{s}: exact (min-max) | order corr. (min to max)" for s in samplers) + " |",
            "|" + "---|" * (4 + 2 * len(samplers))]
    for (preset, model), points in groups.items():
        cells = [preset, model, str(len(points)), f"{sum(p['step'] for p in points) / len(points):,.0f}"]
        for s in samplers:
            em = [p[s]["exact_match"] for p in points]
            oc = [v for v in (p[s].get("order_corr_unmask", float("nan")) for p in points) if v == v]
            cells.append(f"{sum(em) / len(em):.1%} ({min(em):.1%}-{max(em):.1%})")
            cells.append(f"{sum(oc) / len(oc):.2f} ({min(oc):.2f} to {max(oc):.2f})" if oc else "n/a")
        out.append("| " + " | ".join(cells) + " |")
    return out


def combined(rows: list[tuple]) -> list[str]:
    """One table across all model families: a row per (task, model, sampler), means over seeds."""
    groups = defaultdict(list)
    for preset, model, seed, point in rows:
        for s in SAMPLERS:
            if s in point:
                groups[(preset, model, s)].append(point)
    out = ["| run name | model | sampler | seeds | steps (mean) | exact (min-max) | token acc. | order corr. | evals/seq | terminated |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for (name, model, s), points in sorted(groups.items()):
        em = [p[s]["exact_match"] for p in points]
        ta = [p[s]["token_accuracy"] for p in points]
        oc = [v for v in (p[s].get("order_corr_unmask", float("nan")) for p in points) if v == v]
        ev = [p[s]["model_evals_per_seq"] for p in points]
        term = [p[s]["termination_rate"] for p in points if p[s].get("termination_rate") is not None]
        out.append("| " + " | ".join([
            name, model, s, str(len(points)), f"{sum(p['step'] for p in points) / len(points):,.0f}",
            f"{sum(em) / len(em):.1%} ({min(em):.1%}-{max(em):.1%})", f"{sum(ta) / len(ta):.2f}",
            f"{sum(oc) / len(oc):.2f}" if oc else "n/a", f"{sum(ev) / len(ev):.1f}",
            f"{sum(term) / len(term):.1%}" if term else "—"]) + " |")
    return out


MODEL_ORDER = model_ids()  # the registry's order (the tables' columns)


def plot_maze_grid(best: dict, path: Path) -> None:
    """Grouped bars: success (solid) and optimal (hatched) of each model's best sampler per maze task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({t for t, _ in best})
    models = [m for m in MODEL_ORDER if any(m == mm for _, mm in best)]
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(1.6 * len(tasks) + 3, 4.2))
    for j, model in enumerate(models):
        xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(tasks))]
        succ = [best.get((t, model), (0.0, 0.0, ""))[0] for t in tasks]
        opt = [best.get((t, model), (0.0, 0.0, ""))[1] for t in tasks]
        bars = ax.bar(xs, succ, width, label=model, alpha=0.85)
        ax.bar(xs, opt, width, color="none", edgecolor="black", hatch="//", lw=0.5)
        for bar, value in zip(bars, succ):
            ax.text(bar.get_x() + bar.get_width() / 2, value + 0.01, f"{value:.0%}", ha="center", fontsize=6)
    ax.set_xticks(range(len(tasks)), [t.replace("maze-", "") for t in tasks])
    ax.set_ylabel("success (bars), optimal (hatched)")
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.legend(ncol=len(models), fontsize=8, loc="upper center")
    ax.set_title("maze planning at equal training wall-clock (best sampler per model)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def by_task_model_sampler(rows: list[tuple]) -> dict[tuple, list]:
    """(task, model, sampler) -> the evaluation points of its seeds; rows are (task, model, seed, point)."""
    groups = defaultdict(list)
    for task, model, _seed, point in rows:
        for s in SAMPLERS:
            if s in point:
                groups[(task, model, s)].append(point)
    return groups


def maze(rows: list[tuple], plot: Path | None = None) -> list[str]:
    """Maze tables: rows are (task, model, seed, point); ``plot`` also draws the grid as a PNG."""
    groups = by_task_model_sampler(rows)

    def mean(points, s, key):
        return sum(p[s][key] for p in points) / len(points)

    out = ["| task | model | sampler | seeds | steps (mean) | success | optimal | exact match | token acc. | evals/seq |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    best: dict[tuple, tuple] = {}
    for (task, model, s), points in sorted(groups.items(), key=lambda kv: (kv[0][0], MODEL_ORDER.index(kv[0][1]), kv[0][2])):
        succ, opt = mean(points, s, "success"), mean(points, s, "optimal")
        out.append("| " + " | ".join([
            task, model, s, str(len(points)), f"{sum(p['step'] for p in points) / len(points):,.0f}",
            fmt(succ, True), fmt(opt, True), fmt(mean(points, s, "exact_match"), True),
            fmt(mean(points, s, "token_accuracy")), f"{mean(points, s, 'model_evals_per_seq'):.1f}"]) + " |")
        if (task, model) not in best or succ > best[(task, model)][0]:
            best[(task, model)] = (succ, opt, s)
    tasks = sorted({t for t, _ in best})
    models = [m for m in MODEL_ORDER if any(m == mm for _, mm in best)]
    out += ["", "success (optimal), best sampler per model:", "",
            "| task | " + " | ".join(models) + " |", "|" + "---|" * (1 + len(models))]
    for task in tasks:
        cells = [f"{best[(task, m)][0]:.1%} ({best[(task, m)][1]:.1%})" if (task, m) in best else "—" for m in models]
        out.append(f"| {task} | " + " | ".join(cells) + " |")
    if plot is not None:
        plot_maze_grid(best, plot)
    return out


def molecules(rows: list[tuple]) -> list[str]:
    """De novo molecule tables: rows are (task, model, seed, point); one row per (task, model, sampler)
    with the means over seeds of the chemistry metrics and the generation-order statistic."""
    groups = by_task_model_sampler(rows)

    def mean(points, s, key):
        values = [p[s][key] for p in points if p[s].get(key) is not None]
        return sum(values) / len(values) if values else None

    out = ["| task | model | sampler | seeds | steps | validity | uniqueness | novelty | quality (all) | "
           "quality (unique) | diversity | IntDiv1 | KL score | FCD (n) | length: samples / data |",
           "|" + "---|" * 15]
    order = ["| task | model | sampler | ring digits | branches | bonds | atoms | attachment points |",
             "|---|---|---|---|---|---|---|---|"]
    for (task, model, s), points in sorted(groups.items(), key=lambda kv: (kv[0][0], MODEL_ORDER.index(kv[0][1]), kv[0][2])):
        fcd_n = mean(points, s, "fcd_n")
        out.append("| " + " | ".join([
            task, model, s, str(len(points)), f"{sum(p['step'] for p in points) / len(points):,.0f}",
            *(fmt(mean(points, s, k), True) for k in ("validity", "uniqueness", "novelty", "quality_all",
                                                      "quality_unique")),
            *(fmt(mean(points, s, k)) for k in ("diversity", "intdiv1", "kl_score")),
            f"{fmt(mean(points, s, 'fcd'))} ({fcd_n:.0f})" if fcd_n else "—",
            f"{fmt(mean(points, s, 'sample_length'))} / {fmt(mean(points, s, 'data_length'))}"]) + " |")
        order.append("| " + " | ".join([task, model, s, *(fmt(mean(points, s, f"order_step_{c}"))
                                                           for c in ("ring", "branch", "bond", "atom", "attachment"))]) + " |")
    return out + ["", "Mean normalised generation step (0 = first token placed, 1 = last) per token class:", "",
                  *order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--point", type=int, default=-1, help="which evaluation point (index) to report")
    parser.add_argument("--combined", action="store_true", help="one table across all model families")
    parser.add_argument("--maze", action="store_true", help="maze tables (success / optimal)")
    parser.add_argument("--molecules", action="store_true", help="de novo molecule tables (validity ... FCD)")
    parser.add_argument("--plot", type=Path, default=None, help="with --maze: also draw the grid to this PNG")
    args = parser.parse_args()
    if args.maze or args.molecules:
        from insertgen.engine.presets import get_preset

        rows = []
        for path in args.files:
            data = json.loads(path.read_text())
            rows.append((get_preset(data["preset"])["task"], data.get("model", "?"), data["seed"],
                         data["points"][args.point]))
        print("\n".join(maze(rows, args.plot) if args.maze else molecules(rows)))
        return
    families: dict[tuple, list] = defaultdict(list)
    for path in args.files:
        data = json.loads(path.read_text())
        point = data["points"][args.point]
        samplers = tuple(s for s in SAMPLERS if s in point)
        families[samplers].append((data.get("name", data["preset"]), data.get("model", "?"), data["seed"], point))
    if args.combined:
        print("\n".join(combined([r for rows in families.values() for r in rows])))
        return
    for samplers, rows in families.items():
        rows.sort(key=lambda r: (r[0], r[2]))
        print("\n".join(tables(rows, samplers)))
        print()


if __name__ == "__main__":
    main()
