"""The maze study's table: one row per run of benchmarks/maze_learning.py.

    python benchmarks/maze_table.py runs-in-progress/mazes [--docs docs/learning-mazes.md] [--figure PNG]

Per run (a directory holding ``learning.json``; a ladder's rung directories are read one level deeper):
task, model, seed, the change (its ``--set`` options; "(preset)" for none), the last step, its training
FLOPs and minutes of training (one core, the run's own clock), success and optimal plans at the last point
(greedy decoding, the first 500 test problems), the best success and its step, the first step (FLOPs,
minutes) at which success reached 50% and 95%, the failure kinds at the last point (wall / jump / skipped
subgoal / too short / too long: the share of plans with each), the order statistic (Spearman's correlation of
decision step with distance to the nearest subgoal; positive = segments filled from their fixed ends) and
network evaluations per plan. With ``--docs`` the table replaces the text between ``<!-- maze-table:begin -->``
and ``<!-- maze-table:end -->``; ``--figure`` draws success against training FLOPs for every run.
"""

from __future__ import annotations

from pathlib import Path

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.maze_table
    from study_table import change, first_at, records, run_table_command
except ImportError:  # pragma: no cover
    from benchmarks.study_table import change, first_at, records, run_table_command

HEADER = ("| task | model | seed | change | steps | FLOPs | minutes | success | optimal | best (step) | "
          "50% success at | 95% success at | wall / jump / subgoal / short / long | order | evals / plan |")
FAILURES = ("wall", "jump", "subgoal", "too_short", "too_long")


def _when(point: dict | None) -> str:
    return "-" if point is None else f"{point['step']:,} ({point['flops']:.1e}, {point['seconds'] / 60:.0f} min)"


def row(record: dict) -> str:
    s, points = record["settings"], record["points"]
    last = points[-1]
    best = max(points, key=lambda p: p["success"])
    pct = lambda v: "-" if v is None else f"{v:.1%}"
    order = last.get("order_corr_unmask")
    return (f"| {s['task']} | {s['model']} | {s['seed']} | {change(s)} | {last['step']:,} | {last['flops']:.1e} | "
            f"{last['seconds'] / 60:.0f} | {pct(last['success'])} | {pct(last['optimal'])} | "
            f"{pct(best['success'])} ({best['step']:,}) | "
            f"{_when(first_at(points, 0.5, lambda p: p['success']))} | "
            f"{_when(first_at(points, 0.95, lambda p: p['success']))} | "
            + " / ".join(pct(last.get(f"failure_{k}")) for k in FAILURES)
            + f" | {'-' if order is None else f'{order:+.2f}'} | {last['model_evals_per_seq']:.1f} |")


def all_records(root: Path) -> list[dict]:
    """The runs under ``root``: its subdirectories' ``learning.json``, and a ladder's (``*/*/learning.json``)."""
    found = records(root)
    for ladder in sorted(p.parent for p in root.glob("*/ladder.json")):
        for rung in sorted(d for d in ladder.iterdir() if d.is_dir()):
            found += [{**r, "_dir": f"{ladder.name}/{rung.name}/{r['_dir']}"} for r in records(rung)]
    return found


def table(root: Path) -> str:
    rows = sorted(all_records(root), key=lambda r: (r["settings"]["task"], r["settings"]["model"],
                                                     change(r["settings"]), r["settings"]["seed"]))
    return "\n".join([HEADER, "|" + "---|" * HEADER.count(" | ") + "---|", *(row(r) for r in rows)])


def figure(root: Path, path: Path) -> Path:
    """Success against training FLOPs, one line per run named by its directory (solid: success; dotted:
    optimal)."""
    from insertgen.core.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 5))
    colors = plt.get_cmap("tab20")
    for k, record in enumerate(all_records(root)):
        points, color = record["points"], colors(k % 20)
        flops = [p["flops"] for p in points]
        ax.plot(flops, [p["success"] for p in points], color=color, marker=".", label=record["_dir"])
        ax.plot(flops, [p["optimal"] for p in points], color=color, ls=":")
    ax.set_xscale("symlog", linthresh=1e12)
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("valid plans (500 test problems, greedy)")
    ax.set_ylim(0, 1)
    ax.set_title("maze planning against compute (solid: success, dotted: optimal)", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    run_table_command(argv, __doc__, "maze-table", table, figure, "Also draw success against FLOPs here.")


if __name__ == "__main__":
    main()
